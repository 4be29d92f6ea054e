package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func TestBatchSubmitWatchCancel(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, 1, &conveyor.Pipeline{Name: "gated", Steps: []conveyor.Step{{Name: "wait", Run: g.run}}},
		&conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	ctx := context.Background()

	items := []conveyor.NewExecution{
		{Pipeline: "gated", Tags: conveyor.Tags{"kind": "slow"}},
		{Pipeline: "quick", Input: []byte(`{"n": 1}`)},
		{Pipeline: "quick"},
	}
	b, err := h.client.SubmitBatch(ctx, items, conveyor.Tags{"tenant": "acme", "kind": "batch"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Total != 3 || b.Status != conveyor.StatusPending || b.Counts.Pending != 3 || b.ID == "" {
		t.Fatalf("submitted batch = %+v", b)
	}
	members, err := h.client.List(ctx, conveyor.ListFilter{Batch: b.ID})
	if err != nil || len(members.Executions) != 3 {
		t.Fatalf("members = %+v, %v", members, err)
	}
	slow := members.Executions[2] // newest first: the first item is last
	if slow.Pipeline != "gated" || slow.Tags["kind"] != "slow" || slow.Tags["tenant"] != "acme" || slow.BatchID == nil || *slow.BatchID != b.ID {
		t.Fatalf("first member %+v: want its own tag to win and the batch's to be added", slow)
	}

	// With one slot, the gated member holds it; the others wait.
	recv(t, g.started)
	got, err := h.client.Batch(ctx, b.ID)
	if err != nil || got.Status != conveyor.StatusRunning || got.Counts.Running != 1 {
		t.Fatalf("batch while one member runs = %+v, %v", got, err)
	}

	got, err = h.client.CancelBatch(ctx, b.ID)
	if err != nil || got.Counts.Cancelled != 2 || got.Counts.Running != 1 {
		t.Fatalf("CancelBatch = %+v, %v; want 2 pending members cancelled at once, 1 running", got, err)
	}
	h.waitStatus(slow.ID, conveyor.StatusCancelled) // the gate sees its ctx cancelled
	got, err = h.client.Batch(ctx, b.ID)
	if err != nil || got.Status != conveyor.StatusCancelled || got.FinishedAt == nil || got.Progress.Percentage != 100 {
		t.Fatalf("batch after cancel = %+v, %v", got, err)
	}
	if _, err := h.client.CancelBatch(ctx, b.ID); code(err) != conveyor.ECONFLICT {
		t.Errorf("second CancelBatch: %v, want conflict", err)
	}

	page, err := h.client.Batches(ctx, conveyor.BatchFilter{Tags: []conveyor.Tag{{Key: "tenant", Value: "acme"}}, Status: conveyor.StatusCancelled})
	if err != nil || len(page.Batches) != 1 || page.Batches[0].ID != b.ID {
		t.Errorf("Batches(tenant:acme, cancelled) = %+v, %v", page, err)
	}
}

func TestBatchBadInputCreatesNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	ctx := context.Background()
	huge := `{"executions": [` + strings.Repeat(`{"pipeline":"quick"},`, conveyor.MaxBatchSize) + `{"pipeline":"quick"}]}`
	for _, tc := range []struct {
		name, body string
		status     int
		code, in   string
	}{
		{"unknown pipeline", `{"executions": [{"pipeline":"quick"}, {"pipeline":"nope"}]}`, 422, conveyor.EUNKNOWNPIPELINE, "executions[1]"},
		{"input not an object", `{"executions": [{"pipeline":"quick"}, {"pipeline":"quick"}, {"pipeline":"quick","input":[1]}]}`, 422, conveyor.EINVALID, "executions[2]"},
		{"bad item tag", `{"executions": [{"pipeline":"quick","tags":{"Bad":"x"}}]}`, 422, conveyor.EINVALID, "executions[0]"},
		{"missing pipeline", `{"executions": [{"input":{}}]}`, 422, conveyor.EINVALID, "executions[0]"},
		{"bad batch tag", `{"executions": [{"pipeline":"quick"}], "tags": {"Bad":"x"}}`, 422, conveyor.EINVALID, `"Bad"`},
		{"no items", `{"executions": []}`, 422, conveyor.EINVALID, "executions"},
		{"no executions field", `{}`, 422, conveyor.EINVALID, "executions"},
		{"too many items", huge, 413, conveyor.ETOOLARGE, "10000"},
		{"unknown field", `{"executions": [{"pipeline":"quick"}], "priority": 1}`, 400, conveyor.EBADREQUEST, "priority"},
		{"unknown item field", `{"executions": [{"pipeline":"quick","priority":1}]}`, 400, conveyor.EBADREQUEST, "priority"},
		{"bad item delay", `{"executions": [{"pipeline":"quick"}, {"pipeline":"quick","delay":"soon"}]}`, 422, conveyor.EINVALID, "executions[1]: delay"},
		{"bad item run_at", `{"executions": [{"pipeline":"quick","run_at":"tomorrow"}]}`, 422, conveyor.EINVALID, "executions[0]: run_at"},
		{"item run_at and delay", `{"executions": [{"pipeline":"quick","run_at":"2030-01-01T00:00:00Z","delay":"1s"}]}`, 422, conveyor.EINVALID, "executions[0]: run_at and delay"},
		{"item delay over a year", `{"executions": [{"pipeline":"quick","delay":"9000h"}]}`, 422, conveyor.EINVALID, "executions[0]: delay"},
		{"not json", `{"executions": `, 400, conveyor.EBADREQUEST, "malformed"},
	} {
		resp := h.post(t, "/batches", tc.body)
		if resp.status != tc.status || resp.err.Code != tc.code || !strings.Contains(resp.err.Message, tc.in) {
			t.Errorf("%s: %d %+v, want %d %s naming %s", tc.name, resp.status, resp.err, tc.status, tc.code, tc.in)
		}
	}
	if page, err := h.client.List(ctx, conveyor.ListFilter{}); err != nil || len(page.Executions) != 0 {
		t.Errorf("executions after refused batches: %d, %v", len(page.Executions), err)
	}
	if page, err := h.client.Batches(ctx, conveyor.BatchFilter{}); err != nil || len(page.Batches) != 0 {
		t.Errorf("batches after refused batches: %d, %v", len(page.Batches), err)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/batches/nope", 404},
		{"POST", "/batches/nope/cancel", 404},
		{"GET", "/batches?status=done", 400},
		{"GET", "/batches?tag=nocolon", 400},
		{"GET", "/batches?cursor=x", 400},
		{"GET", "/batches?limit=0", 400},
		{"GET", "/executions?batch=%00", 400},
	} {
		req, err := http.NewRequestWithContext(ctx, tc.method, h.url+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
}

// answer is the status and JSON error of a response.
type answer struct {
	status int
	err    conveyor.Error
}

// post sends a JSON body and reads the answer's status and error.
func (h *harness) post(t *testing.T, path, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	var e struct {
		Error conveyor.Error `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e) // success answers have no error
	a.status, a.err = resp.StatusCode, e.Error
	return a
}
