package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestResumeOverTheAPI: GET /pipelines shows resume; the retrying
// message of a resume pipeline carries where it got to, and the next
// attempt's first progress continues from there; the checkpoint itself
// is the engine's and not shown.
func TestResumeOverTheAPI(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := setup(t, 1, &conveyor.Pipeline{Name: "resume", Retries: 1, Resume: true, Steps: []conveyor.Step{
		{Name: "prepare", Kind: "go", Run: func(context.Context, *conveyor.Exec) error { <-release; return nil }},
		{Name: "work", Kind: "go", Run: func(_ context.Context, x *conveyor.Exec) error {
			if x.Attempt == 1 {
				x.Progress(conveyor.Update{Done: 1, Total: 2})
				if err := x.Checkpoint(map[string]int{"row": 2}); err != nil {
					return err
				}
				return errors.New("connection reset")
			}
			var cp struct{ Row int }
			if ok, err := x.LastCheckpoint(&cp); !ok || err != nil || cp.Row != 2 {
				return errors.New("no checkpoint")
			}
			return nil
		}},
	}})
	var info conveyor.PipelineInfo
	h.getJSON("/pipelines/resume", http.StatusOK, &info)
	if !info.Resume {
		t.Errorf("GET /pipelines/resume: %+v, want resume true", info)
	}

	ex := h.submit("resume", nil)
	s := h.watch(ex.ID)
	nextOfType(t, s, conveyor.EventStatus) // subscribed: nothing is missed from here
	close(release)
	retrying := nextEvent(t, s)
	for retrying.Type == conveyor.EventStarted || retrying.Type == conveyor.EventProgress {
		retrying = nextEvent(t, s) // of attempt 1, which may have started before the stream opened
	}
	if retrying.Type != conveyor.EventRetrying {
		t.Fatalf("got %s message, want retrying", retrying.Type)
	}
	if p := retrying.Progress; p == nil || p.CurrentStep != 2 || p.Percentage == nil || *p.Percentage != 75 {
		t.Fatalf("retrying message with progress %+v, want step 2 at 75%%", p)
	}
	nextOfType(t, s, conveyor.EventStarted)
	if p := nextOfType(t, s, conveyor.EventProgress).Progress; p.CurrentStep != 2 || *p.Percentage < 75 {
		t.Errorf("attempt 2 began at step %d, %v%%; want step 2, at least 75%%", p.CurrentStep, *p.Percentage)
	}
	if ev := nextOfType(t, s, conveyor.EventCompleted); ev.Attempt != 2 {
		t.Errorf("completed on attempt %d, want 2", ev.Attempt)
	}
	var raw map[string]any
	h.getJSON("/executions/"+ex.ID, http.StatusOK, &raw)
	for _, field := range []string{"checkpoint", "resume_step"} {
		if _, ok := raw[field]; ok {
			t.Errorf("GET /executions/{id} shows %s: %v", field, raw)
		}
	}
}
