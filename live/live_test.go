package live_test

import (
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/hub"
	"github.com/conveyor-run/conveyor/live"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

// setup returns a view over a real SQLite store and hub, and a running
// execution whose last stored event is its started event (seq 1).
func setup(t *testing.T) (*live.View[*hub.Subscription, *hub.Feed], *hub.Hub, conveyor.Store, *conveyor.Execution) {
	t.Helper()
	s, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now().UTC()
	ex := &conveyor.Execution{ID: "e1", Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: now}
	if err := s.CreateExecution(t.Context(), ex); err != nil {
		t.Fatal(err)
	}
	claims, err := s.ClaimPending(t.Context(), 1, func() time.Time { return now })
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %v, %v", claims, err)
	}
	h := hub.New()
	return live.New(s, h), h, s, claims[0].Execution
}

func progress(ex *conveyor.Execution, seq int64, step int) conveyor.Event {
	return conveyor.Event{Type: conveyor.EventProgress, ExecutionID: ex.ID, Seq: seq, Time: time.Now().UTC(),
		Attempt: ex.Attempt, Progress: &conveyor.Progress{CurrentStep: step, CurrentStepName: "s"}}
}

func TestNewerLiveProgressIsMerged(t *testing.T) {
	v, h, _, ex := setup(t)
	sub, _ := h.Subscribe(ex.ID) // the hub keeps the newest event while someone watches
	defer sub.Close()
	h.Publish(progress(ex, 2, 3))

	got, err := v.Execution(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastSeq != 2 || got.Progress == nil || got.Progress.CurrentStep != 3 {
		t.Errorf("Execution = seq %d, progress %+v; want the live progress at seq 2", got.LastSeq, got.Progress)
	}

	w, err := v.Watch(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Newer == nil || w.Newer.Seq != 2 || w.Execution.LastSeq != 2 {
		t.Errorf("Watch: newer %+v, execution seq %d; want the live progress at seq 2", w.Newer, w.Execution.LastSeq)
	}
}

func TestStoredStateWinsWhenNewer(t *testing.T) {
	v, h, s, ex := setup(t)
	sub, _ := h.Subscribe(ex.ID)
	defer sub.Close()
	h.Publish(progress(ex, 2, 1))
	done := conveyor.Event{Type: conveyor.EventCompleted, ExecutionID: ex.ID, Seq: 3, Time: time.Now().UTC(),
		Attempt: ex.Attempt, Status: conveyor.StatusCompleted}
	if err := s.Append(t.Context(), []conveyor.Event{done}); err != nil {
		t.Fatal(err)
	}
	h.Publish(progress(ex, 4, 9)) // a stale relay publish must not revive it

	w, err := v.Watch(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Newer != nil || w.Execution.Status != conveyor.StatusCompleted || w.Execution.LastSeq != 3 {
		t.Errorf("Watch of a completed execution: newer %+v, %s at seq %d", w.Newer, w.Execution.Status, w.Execution.LastSeq)
	}
}

func TestUnknownExecution(t *testing.T) {
	v, h, _, _ := setup(t)
	if _, err := v.Execution(t.Context(), "nope"); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("Execution(nope) = %v, want not found", err)
	}
	if _, err := v.Watch(t.Context(), "nope"); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("Watch(nope) = %v, want not found", err)
	}
	if _, ok := h.Last("nope"); ok {
		t.Error("a failed Watch left its subscription's topic in the hub")
	}
}
