package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
)

// postAs sends body (none when empty) to path with contentType (none
// when empty) and returns the whole answer.
func (h *harness) postAs(t *testing.T, path, contentType, body string) rawAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readRawAnswer(t, resp)
}

// TestRetryAnswers202WithLocation: a failed execution retried as new is
// a new pending execution of the same pipeline, input, tags and own
// webhook that names it in retry_of; the original is unchanged.
func TestRetryAnswers202WithLocation(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "broken", Steps: []conveyor.Step{{Name: "only", Kind: "go",
		Run: func(context.Context, *conveyor.Exec) error { return errors.New("boom") }}}})
	a := h.postAs(t, "/executions", "application/json", `{"pipeline": "broken", "input": {"a": 1}, "tags": {"env": "test"},
		"webhook": {"url": "https://hooks.example.com/x", "events": ["execution.completed"]}}`)
	if a.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", a.status, a.body)
	}
	var orig conveyor.Execution
	if err := json.Unmarshal([]byte(a.body), &orig); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.body, `"retry_of":null`) {
		t.Errorf("a submitted execution has no retry_of null: %s", a.body)
	}
	h.waitStatus(orig.ID, conveyor.StatusFailed)

	for _, body := range []string{"", "{}", " { } "} {
		a := h.postAs(t, "/executions/"+orig.ID+"/retry", "application/json", body)
		if a.status != http.StatusAccepted {
			t.Fatalf("retry with body %q: %d %s", body, a.status, a.body)
		}
		var ex conveyor.Execution
		if err := json.Unmarshal([]byte(a.body), &ex); err != nil {
			t.Fatal(err)
		}
		if loc := a.header.Get("Location"); loc != "/executions/"+ex.ID {
			t.Errorf("Location = %q, want /executions/%s", loc, ex.ID)
		}
		if ex.ID == orig.ID || ex.RetryOf == nil || *ex.RetryOf != orig.ID || ex.Status != conveyor.StatusPending ||
			ex.Pipeline != "broken" || string(ex.Input) != `{"a":1}` || ex.Tags["env"] != "test" || ex.BatchID != nil ||
			ex.Webhook == nil || ex.Webhook.URL != "https://hooks.example.com/x" {
			t.Errorf("retry: %s", a.body)
		}
		got, err := h.client.Get(t.Context(), ex.ID)
		if err != nil || got.RetryOf == nil || *got.RetryOf != orig.ID || got.Webhook == nil {
			t.Errorf("the retry as stored: %+v, %v", got, err)
		}
		// A retry runs like any execution: this one fails too.
		h.waitStatus(ex.ID, conveyor.StatusFailed)
	}
	if got, err := h.client.Get(t.Context(), orig.ID); err != nil || got.RetryOf != nil || got.Status != conveyor.StatusFailed {
		t.Errorf("the original after its retries: %+v, %v", got, err)
	}
}

// TestRetryRefusals: only a final execution is retried; bodies are
// read as a cancel's are.
func TestRetryRefusals(t *testing.T) {
	t.Parallel()
	h, _, running := runGated(t)
	pending := h.submit("gated", nil)
	for _, ex := range []*conveyor.Execution{running, pending} {
		if a := h.postAs(t, "/executions/"+ex.ID+"/retry", "", ""); a.status != http.StatusConflict || !strings.Contains(a.body, `"conflict"`) {
			t.Errorf("retry of a %s execution: %d %s, want 409 conflict", ex.Status, a.status, a.body)
		}
	}
	if a := h.postAs(t, "/executions/nope/retry", "", ""); a.status != http.StatusNotFound {
		t.Errorf("retry of an unknown execution: %d %s, want 404", a.status, a.body)
	}
	if _, err := h.client.Cancel(t.Context(), pending.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		contentType, body string
		want              int
	}{
		{"application/json", `{"pipeline": "gated"}`, http.StatusBadRequest},
		{"application/json", `[]`, http.StatusBadRequest},
		{"application/json", `null`, http.StatusBadRequest},
		{"application/json", `{} {}`, http.StatusBadRequest},
		{"text/plain", `{}`, http.StatusUnsupportedMediaType},
		{"", `{}`, http.StatusUnsupportedMediaType},
	} {
		if a := h.postAs(t, "/executions/"+pending.ID+"/retry", c.contentType, c.body); a.status != c.want {
			t.Errorf("retry with %q (%s): %d %s, want %d", c.body, c.contentType, a.status, a.body, c.want)
		}
	}
	if page, err := h.client.List(t.Context(), conveyor.ListFilter{}); err != nil || len(page.Executions) != 2 {
		t.Errorf("a refused retry submitted something: %+v, %v", page, err)
	}
}

// TestRetryIsASubmission: a retry counts toward the rate limit like
// POST /executions, and a batch member's retry is in no batch.
func TestRetryIsASubmission(t *testing.T) {
	t.Parallel()
	clk := newClock()
	h := setupWith(t, func(cfg *api.Config) { cfg.RateLimit, cfg.Now = 1, clk.Now }, 1,
		&conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "only", Kind: "go", Run: noop}}})
	ctx := t.Context()
	b, err := h.client.SubmitBatch(ctx, []conveyor.NewExecution{{Pipeline: "quick"}}, conveyor.Tags{"kind": "batch"})
	if err != nil {
		t.Fatal(err)
	}
	page, err := h.client.List(ctx, conveyor.ListFilter{Batch: b.ID})
	if err != nil || len(page.Executions) != 1 {
		t.Fatalf("batch members: %+v, %v", page, err)
	}
	member := h.waitStatus(page.Executions[0].ID, conveyor.StatusCompleted)
	retry, err := h.client.Retry(ctx, member.ID)
	if err != nil {
		t.Fatal(err)
	}
	if retry.BatchID != nil || retry.Tags["kind"] != "batch" || *retry.RetryOf != member.ID {
		t.Errorf("retry of a batch member: %+v, want no batch, the member's tags", retry)
	}
	// The batch and the retry took the burst of two.
	_, err = h.client.Retry(ctx, member.ID)
	wantRateLimited(t, "a retry after the burst", err)
	clk.advance(1e9)
	if _, err := h.client.Retry(ctx, member.ID); err != nil {
		t.Errorf("a retry a second later: %v", err)
	}
}
