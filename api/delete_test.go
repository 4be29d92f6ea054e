package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestDeleteExecution: DELETE /executions/{id} deletes a final execution
// at once (204), with its events and logs, and nothing else; a pending
// or running one is 409 and stays as it was, an unknown one 404, a body
// with fields 400. A stream opened on a deleted execution is told it is
// not found, and its batch goes with its last member.
func TestDeleteExecution(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, 1, twoSteps("gated", g), &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "only", Kind: "go", Run: noop}}})
	ctx := t.Context()
	done, kept := h.submit("quick", nil), h.submit("quick", nil)
	h.waitStatus(done.ID, conveyor.StatusCompleted)
	h.waitStatus(kept.ID, conveyor.StatusCompleted)
	for _, body := range []any{nil, "{}", ""} {
		if status, answer := h.call("DELETE", "/executions/"+done.ID, body); status != http.StatusNoContent || answer != nil {
			t.Errorf("DELETE a completed execution (body %q): %d %v, want 204 and no body", body, status, answer)
		}
		for _, path := range []string{"", "/events", "/logs", "/progress"} {
			if status, _ := h.call("GET", "/executions/"+done.ID+path, nil); status != http.StatusNotFound {
				t.Errorf("GET /executions/{id}%s after the delete: %d, want 404", path, status)
			}
		}
		if err := h.client.Delete(ctx, done.ID); code(err) != conveyor.ENOTFOUND {
			t.Errorf("a second delete: %v, want not_found", err)
		}
		done = h.submit("quick", nil)
		h.waitStatus(done.ID, conveyor.StatusCompleted)
	}
	if err := h.client.Delete(ctx, done.ID); err != nil {
		t.Errorf("client.Delete: %v", err)
	}
	if _, err := h.client.Get(ctx, done.ID); code(err) != conveyor.ENOTFOUND {
		t.Errorf("GET after client.Delete: %v, want not_found", err)
	}

	s, err := h.client.Watch(ctx, done.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ev, err := s.Next(wait); code(err) != conveyor.ENOTFOUND || ev.Type != conveyor.EventError {
		t.Errorf("stream of a deleted execution: %+v, %v; want an error message, not_found", ev, err)
	}

	running := h.submit("gated", nil)
	recv(t, g.started)
	pending := h.submit("quick", nil) // the one slot is taken
	t.Cleanup(func() { send(t, g.release, nil) })

	for _, ex := range []*conveyor.Execution{running, pending} {
		before, err := h.client.Get(ctx, ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		status, body := h.call("DELETE", "/executions/"+ex.ID, nil)
		if status != http.StatusConflict || body["error"].(map[string]any)["code"] != conveyor.ECONFLICT {
			t.Errorf("DELETE a %s execution: %d %v, want 409 conflict", before.Status, status, body)
		}
		if after, err := h.client.Get(ctx, ex.ID); err != nil || after.Status != before.Status {
			t.Errorf("after a refused DELETE: %+v, %v; want it %s", after, err, before.Status)
		}
	}
	if status, body := h.call("DELETE", "/executions/"+kept.ID, `{"force": true}`); status != http.StatusBadRequest {
		t.Errorf("DELETE with a body: %d %v, want 400", status, body)
	}
	if status, _ := h.call("DELETE", "/executions/nope", nil); status != http.StatusNotFound {
		t.Errorf("DELETE an unknown execution: %d, want 404", status)
	}

	page, err := h.client.List(ctx, conveyor.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, ex := range page.Executions {
		left = append(left, ex.ID)
	}
	if want := []string{pending.ID, running.ID, kept.ID}; !slices.Equal(left, want) {
		t.Errorf("executions left: %v, want %v", left, want)
	}
	if evs, err := h.client.Events(ctx, kept.ID, 0); err != nil || len(evs) == 0 {
		t.Errorf("the events of an execution not deleted: %d, %v", len(evs), err)
	}
}

// TestDeleteLastMemberDeletesBatch: a batch goes with its last member.
func TestDeleteLastMemberDeletesBatch(t *testing.T) {
	t.Parallel()
	h := setup(t, 2, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "only", Kind: "go", Run: noop}}})
	ctx := t.Context()
	b, err := h.client.SubmitBatch(ctx, []conveyor.NewExecution{{Pipeline: "quick"}, {Pipeline: "quick"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := h.client.List(ctx, conveyor.ListFilter{Batch: b.ID})
	if err != nil || len(page.Executions) != 2 {
		t.Fatalf("members: %+v, %v", page, err)
	}
	for i, ex := range page.Executions {
		h.waitStatus(ex.ID, conveyor.StatusCompleted)
		if err := h.client.Delete(ctx, ex.ID); err != nil {
			t.Fatal(err)
		}
		_, err := h.client.Batch(ctx, b.ID)
		if last := i == len(page.Executions)-1; last != (code(err) == conveyor.ENOTFOUND) {
			t.Errorf("GET the batch after deleting member %d of 2: %v", i+1, err)
		}
	}
}
