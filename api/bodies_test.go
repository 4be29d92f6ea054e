package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// knownCodes are the error codes a request can be refused with.
var knownCodes = map[string]bool{
	conveyor.ENOTFOUND: true, conveyor.ECONFLICT: true, conveyor.EINVALID: true,
	conveyor.EUNKNOWNPIPELINE: true, conveyor.EBADREQUEST: true, conveyor.ETOOLARGE: true,
	conveyor.EUNSUPPORTED: true, conveyor.EMETHOD: true, conveyor.EUNAUTHORIZED: true,
}

// FuzzRequestBodies posts each input as the body of POST /executions,
// POST /batches and POST /executions/{id}/cancel to one real node per
// fuzz process. It is never a 5xx; a refusal is a 4xx JSON error with a
// known code and changes nothing stored; an acceptance is of a JSON
// object and stores what it says it did.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"pipeline":"hold"}`, `{"pipeline":"hold","input":{"n":1},"tags":{"tenant":"acme"}}`,
		`{"pipeline":"hold","input":null}`, `{"pipeline":"hold","input":[1]}`, `{"pipeline":"nope"}`,
		`{"pipeline":"hold","tags":{"k":null}}`, `{"pipeline":"hold","tags":{"K":"v"}}`, `{"Pipeline":"hold"}`,
		`{"pipeline":"hold","input":{"s":"\u0000"}}`, `{"pipeline":"hold","input":{"s":"\ud800"}}`,
		`{"executions":[{"pipeline":"hold"},{"pipeline":"hold","tags":{"k":"v"}}],"tags":{"run":"1"}}`,
		`{"executions":[]}`, `{"executions":[{"pipeline":"nope"}]}`, `{"executions":[null]}`,
		`{}`, ` { } `, ``, " \t\r\n", "\u00a0", "\v", `null`, `[]`, `"x"`, `1`, `{} {}`, `{"force":true}`,
		"{\"pipeline\":\"\xff\"}", `{"pipeline":"hold"`,
		`{"pipeline":"hold","delay":"1h"}`, `{"pipeline":"hold","delay":"-1s"}`, `{"pipeline":"hold","run_at":"x"}`,
		`{"pipeline":"hold","run_at":"2030-01-01T00:00:00Z","delay":"1s"}`, `{"pipeline":"hold","run_at":"1999-01-01T00:00:00Z"}`,
		`{"executions":[{"pipeline":"hold","delay":"90s"},{"pipeline":"hold","run_at":"9999-12-31T23:59:59Z"}]}`,
	} {
		f.Add([]byte(s))
	}
	release := make(chan struct{})
	hold := &conveyor.Pipeline{Name: "hold", Handler: func(ctx context.Context, _ *conveyor.Exec) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-release:
			return nil
		}
	}}
	// One execution at a time runs, and the first one holds that place
	// to the end: what the fuzzer submits stays pending, so the store
	// grows by rows, not by work, and nothing but a cancel changes the
	// execution a cancel is aimed at.
	h := setup(f, 1, hold)
	f.Cleanup(func() { close(release) }) // before setup's cleanup stops the engine
	bf := &bodyFuzzer{h: h, client: &http.Client{}}
	h.waitStatus(bf.newVictim(f), conveyor.StatusRunning)
	bf.victim = bf.newVictim(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		bf.createExecution(t, body)
		bf.createBatch(t, body)
		bf.cancel(t, body)
	})
}

type bodyFuzzer struct {
	h      *harness
	client *http.Client
	victim string // a pending execution that no cancel reached
}

// newVictim submits an execution (the first one runs, the others stay
// pending).
func (bf *bodyFuzzer) newVictim(t testing.TB) string {
	t.Helper()
	ex, err := bf.h.engine.Submit(context.Background(), "hold", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ex.ID
}

// heads is what a refused request must leave alone: the newest execution
// and the newest batch.
type heads struct{ execution, batch string }

func (bf *bodyFuzzer) heads(t *testing.T) heads {
	t.Helper()
	var hd heads
	es, err := bf.h.store.ListExecutions(t.Context(), conveyor.ListFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(es.Executions) > 0 {
		hd.execution = es.Executions[0].ID
	}
	bs, err := bf.h.store.ListBatches(t.Context(), conveyor.BatchFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs.Batches) > 0 {
		hd.batch = bs.Batches[0].ID
	}
	return hd
}

// post sends body and checks what every answer must be: a 2xx, or a 4xx
// with a JSON error of a known code that matches the status. It returns
// whether it was accepted, and the answer's body.
func (bf *bodyFuzzer) post(t *testing.T, path string, body []byte) (bool, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", bf.h.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := bf.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return true, answer
	case resp.StatusCode < 400 || resp.StatusCode >= 500:
		t.Fatalf("POST %s %q: %s %s", path, body, resp.Status, answer)
	}
	var e struct{ Error *conveyor.Error }
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err := json.Unmarshal(answer, &e); mt != "application/json" || err != nil || e.Error == nil {
		t.Fatalf("POST %s %q: %s with %q %s, not a JSON error", path, body, resp.Status, mt, answer)
	}
	if !knownCodes[e.Error.Code] || conveyor.HTTPStatus(e.Error.Code) != resp.StatusCode || e.Error.Message == "" {
		t.Fatalf("POST %s %q: %s with error %+v", path, body, resp.Status, e.Error)
	}
	return false, answer
}

// submit posts body to path and reads what was stored around it. A
// refused body must have stored nothing; an accepted one must be a JSON
// object, whose answer is decoded into v.
func (bf *bodyFuzzer) submit(t *testing.T, path string, body []byte, v any) (before, after heads, answer []byte, accepted bool) {
	t.Helper()
	before = bf.heads(t)
	accepted, answer = bf.post(t, path, body)
	after = bf.heads(t)
	if !accepted {
		if after != before {
			t.Fatalf("refused %q, yet stored %+v (before %+v)", body, after, before)
		}
		return before, after, answer, false
	}
	if !isObject(body) {
		t.Fatalf("accepted %q, not a JSON object", body)
	}
	if err := json.Unmarshal(answer, v); err != nil {
		t.Fatalf("accepted %q with %s: %v", body, answer, err)
	}
	return before, after, answer, true
}

func (bf *bodyFuzzer) createExecution(t *testing.T, body []byte) {
	var ex conveyor.Execution
	before, after, answer, ok := bf.submit(t, "/executions", body, &ex)
	if !ok {
		return
	}
	if after.execution != ex.ID || after.batch != before.batch || ex.Status != conveyor.StatusPending || ex.BatchID != nil {
		t.Fatalf("accepted %q as %s; stored %+v (before %+v)", body, answer, after, before)
	}
	stored, err := bf.h.store.GetExecution(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Pipeline != ex.Pipeline || !equalJSON(stored.Input, ex.Input) || stored.Tags.Validate() != nil || len(stored.Tags) != len(ex.Tags) {
		t.Fatalf("accepted %q as %s, stored %+v", body, answer, stored)
	}
}

func (bf *bodyFuzzer) createBatch(t *testing.T, body []byte) {
	var b conveyor.Batch
	before, after, answer, ok := bf.submit(t, "/batches", body, &b)
	if !ok {
		return
	}
	if after.batch != b.ID || after.execution == before.execution || b.Total < 1 || b.Total > conveyor.MaxBatchSize {
		t.Fatalf("accepted %q as %s; stored %+v (before %+v)", body, answer, after, before)
	}
	newest, err := bf.h.store.GetExecution(t.Context(), after.execution)
	if err != nil {
		t.Fatal(err)
	}
	if newest.BatchID == nil || *newest.BatchID != b.ID {
		t.Fatalf("accepted %q as batch %s; the newest execution is %+v", body, b.ID, newest)
	}
}

// cancel posts body to cancel the victim, which always can be cancelled:
// whether it is must depend on the body alone.
func (bf *bodyFuzzer) cancel(t *testing.T, body []byte) {
	before, err := bf.h.store.GetExecution(t.Context(), bf.victim)
	if err != nil {
		t.Fatal(err)
	}
	ok, answer := bf.post(t, "/executions/"+bf.victim+"/cancel", body)
	if want := isEmptyObject(body) || len(jsonSpace(body)) == 0; ok != want {
		t.Fatalf("cancel with %q: accepted %v, want %v: %s", body, ok, want, answer)
	}
	after, err := bf.h.store.GetExecution(t.Context(), bf.victim)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		if after.Status != before.Status || after.CancelRequested != before.CancelRequested || after.LastSeq != before.LastSeq {
			t.Fatalf("refused cancel with %q, yet %+v became %+v", body, before, after)
		}
		return
	}
	if after.Status != conveyor.StatusCancelled {
		t.Fatalf("accepted cancel with %q, yet the execution is %+v", body, after)
	}
	bf.victim = bf.newVictim(t)
}

// jsonSpace is b without the whitespace JSON allows around values; other
// Unicode spaces are not JSON's.
func jsonSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// isObject reports whether b is one JSON object.
func isObject(b []byte) bool {
	b = jsonSpace(b)
	return json.Valid(b) && len(b) > 0 && b[0] == '{'
}

// isEmptyObject reports whether b is a JSON object without members.
func isEmptyObject(b []byte) bool {
	b = jsonSpace(b)
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}' && len(jsonSpace(b[1:len(b)-1])) == 0
}

func equalJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}
