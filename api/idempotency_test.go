package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store/postgres"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// postKeyed posts a JSON body with the given Idempotency-Key headers.
func (h *harness) postKeyed(t *testing.T, path, body string, keys ...string) rawAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readRawAnswer(t, resp)
}

// idOf is the id in an answer's body.
func idOf(t *testing.T, a rawAnswer) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(a.body), &v); err != nil || v.ID == "" {
		t.Fatalf("answer %d %s has no id: %v", a.status, a.body, err)
	}
	return v.ID
}

func errorCodeOf(a rawAnswer) string {
	var v struct {
		Error conveyor.Error `json:"error"`
	}
	_ = json.Unmarshal([]byte(a.body), &v)
	return v.Error.Code
}

// count is how many executions the store holds.
func (h *harness) count(t *testing.T) int {
	t.Helper()
	page, err := h.store.ListExecutions(t.Context(), conveyor.ListFilter{Limit: conveyor.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Executions)
}

func heldPipeline() *conveyor.Pipeline {
	return &conveyor.Pipeline{Name: "held", Handler: func(ctx context.Context, _ *conveyor.Exec) error {
		<-ctx.Done()
		return ctx.Err()
	}}
}

// TestIdempotentSubmit: the first request with a key creates (202), a
// repeat answers 200 with the same execution and its Location, and
// another request under the key is 422 idempotency_mismatch; none of the
// repeats creates anything.
func TestIdempotentSubmit(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, heldPipeline())
	first := h.postKeyed(t, "/executions", `{"pipeline": "held", "input": {"a": 1, "b": [2]}, "tags": {"x": "1", "y": "2"}}`, "order-17")
	if first.status != http.StatusAccepted {
		t.Fatalf("first submit: %d %s", first.status, first.body)
	}
	id := idOf(t, first)
	// The same values, spaced and ordered otherwise, are the same request.
	for _, body := range []string{
		`{"pipeline": "held", "input": {"a": 1, "b": [2]}, "tags": {"x": "1", "y": "2"}}`,
		`{ "tags": {"y": "2", "x": "1"},  "input": {"a":1,"b":[ 2 ]}, "pipeline": "held" }`,
	} {
		a := h.postKeyed(t, "/executions", body, "order-17")
		if a.status != http.StatusOK || idOf(t, a) != id || a.header.Get("Location") != "/executions/"+id {
			t.Errorf("repeat %s: %d %s (Location %q), want 200 with execution %s", body, a.status, a.body, a.header.Get("Location"), id)
		}
	}
	for _, body := range []string{
		`{"pipeline": "held", "input": {"a": 2, "b": [2]}, "tags": {"x": "1", "y": "2"}}`,
		`{"pipeline": "held", "input": {"a": 1, "b": [2]}}`,
	} {
		a := h.postKeyed(t, "/executions", body, "order-17")
		if a.status != http.StatusUnprocessableEntity || errorCodeOf(a) != conveyor.EIDEMPOTENCYMISMATCH || !strings.Contains(a.body, id) {
			t.Errorf("another request under the key: %d %s, want 422 %s naming %s", a.status, a.body, conveyor.EIDEMPOTENCYMISMATCH, id)
		}
	}
	// A batch is another request too.
	if a := h.postKeyed(t, "/batches", `{"executions": [{"pipeline": "held"}]}`, "order-17"); a.status != http.StatusUnprocessableEntity ||
		errorCodeOf(a) != conveyor.EIDEMPOTENCYMISMATCH {
		t.Errorf("a batch under an execution's key: %d %s", a.status, a.body)
	}
	// Another key is another submission.
	if a := h.postKeyed(t, "/executions", `{"pipeline": "held"}`, "order-18"); a.status != http.StatusAccepted || idOf(t, a) == id {
		t.Errorf("another key: %d %s", a.status, a.body)
	}
	if n := h.count(t); n != 2 {
		t.Errorf("%d executions stored, want 2", n)
	}
}

func TestIdempotentBatch(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, heldPipeline())
	body := `{"executions": [{"pipeline": "held"}, {"pipeline": "held", "input": {"n": 2}}], "tags": {"run": "nightly"}}`
	first := h.postKeyed(t, "/batches", body, "nightly-2026-12-02")
	if first.status != http.StatusAccepted {
		t.Fatalf("first batch: %d %s", first.status, first.body)
	}
	id := idOf(t, first)
	a := h.postKeyed(t, "/batches", body, "nightly-2026-12-02")
	if a.status != http.StatusOK || idOf(t, a) != id || a.header.Get("Location") != "/batches/"+id {
		t.Errorf("repeat: %d %s, want 200 with batch %s", a.status, a.body, id)
	}
	var b conveyor.Batch
	if err := json.Unmarshal([]byte(a.body), &b); err != nil || b.Total != 2 {
		t.Errorf("the replayed batch: %s (%v)", a.body, err)
	}
	a = h.postKeyed(t, "/batches", `{"executions": [{"pipeline": "held"}]}`, "nightly-2026-12-02")
	if a.status != http.StatusUnprocessableEntity || errorCodeOf(a) != conveyor.EIDEMPOTENCYMISMATCH {
		t.Errorf("another batch under the key: %d %s", a.status, a.body)
	}
	if n := h.count(t); n != 2 {
		t.Errorf("%d executions stored, want the first batch's 2", n)
	}
}

// TestIdempotencyKeyBadInput: a malformed key, or two, is 422 and
// creates nothing, on both submission endpoints.
func TestIdempotencyKeyBadInput(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, heldPipeline())
	bad := [][]string{
		{""},
		{strings.Repeat("k", conveyor.MaxIdempotencyKeyLen+1)},
		{"tab\there"},
		{"caf\u00e9"},
		{"a", "b"},
	}
	for _, path := range []string{"/executions", "/batches"} {
		body := `{"pipeline": "held"}`
		if path == "/batches" {
			body = `{"executions": [{"pipeline": "held"}]}`
		}
		for _, keys := range bad {
			a := h.postKeyed(t, path, body, keys...)
			if a.status != http.StatusUnprocessableEntity || errorCodeOf(a) != conveyor.EINVALID || !strings.Contains(a.body, "Idempotency-Key") {
				t.Errorf("POST %s with Idempotency-Key %q: %d %s, want 422 invalid naming the header", path, keys, a.status, a.body)
			}
		}
	}
	if n := h.count(t); n != 0 {
		t.Errorf("%d executions stored after bad keys, want 0", n)
	}
	// The longest key is fine.
	if a := h.postKeyed(t, "/executions", `{"pipeline": "held"}`, strings.Repeat("k", conveyor.MaxIdempotencyKeyLen)); a.status != http.StatusAccepted {
		t.Errorf("a key of %d characters: %d %s", conveyor.MaxIdempotencyKeyLen, a.status, a.body)
	}
}

// TestIdempotentConcurrentRepeats: requests with one key sent at once
// create one execution, on one node (SQLite, whose submissions share
// group commits) and on two nodes of one PostgreSQL database.
func TestIdempotentConcurrentRepeats(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		h := setup(t, 1, heldPipeline())
		concurrentRepeats(t, h, h)
	})
	t.Run("postgres two nodes", func(t *testing.T) {
		t.Parallel()
		_, dbURL := pgtest.NewDatabase(t)
		var hs [2]*harness
		for i := range hs {
			store, err := postgres.Open(t.Context(), dbURL, &postgres.Options{NodeID: []string{"a", "b"}[i]})
			if err != nil {
				t.Fatal(err)
			}
			hs[i] = setupStore(t, store, nil, 1, heldPipeline())
		}
		concurrentRepeats(t, hs[0], hs[1])
	})
}

func concurrentRepeats(t *testing.T, a, b *harness) {
	const n = 16
	answers := make([]rawAnswer, n)
	var wg sync.WaitGroup
	for i := range answers {
		h := []*harness{a, b}[i%2]
		wg.Go(func() { answers[i] = h.postKeyed(t, "/executions", `{"pipeline": "held"}`, "burst") })
	}
	wg.Wait()
	created, id := 0, ""
	for _, ans := range answers {
		switch ans.status {
		case http.StatusAccepted:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("a repeat: %d %s", ans.status, ans.body)
		}
		if id == "" {
			id = idOf(t, ans)
		}
		if got := idOf(t, ans); got != id {
			t.Errorf("answers name executions %s and %s", id, got)
		}
	}
	if created != 1 || a.count(t) != 1 {
		t.Errorf("%d answers 202 and %d executions stored, want 1 and 1", created, a.count(t))
	}
}
