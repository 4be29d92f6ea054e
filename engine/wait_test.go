package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Waits are checked as lower bounds only ("not started before"): how
// soon after its due time an execution starts depends on the machine's
// load. A PollInterval of an hour shows that the due time itself woke
// the claim loop.

// exactJitter stands for the ±10 % jitter in tests: the most it adds.
func exactJitter(d time.Duration) time.Duration { return d + d/10 }

// TestRetriesBackOff: each retry waits its policy's wait, doubled per
// attempt up to the max, jittered by RetryJitterFunc, and its attempt
// starts no earlier.
func TestRetriesBackOff(t *testing.T) {
	t.Parallel()
	p := &conveyor.Pipeline{Name: "flaky", Retries: 3, RetryDelay: 100 * time.Millisecond, RetryMaxDelay: 250 * time.Millisecond,
		Handler: func(_ context.Context, x *conveyor.Exec) error {
			if x.Attempt <= 3 {
				return errors.New("not yet")
			}
			return nil
		}}
	e, pub := startEngine(t, Config{Pipelines: map[string]*conveyor.Pipeline{"flaky": p}, PollInterval: time.Hour,
		RetryJitterFunc: exactJitter})
	ex, err := e.Submit(t.Context(), "flaky", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if final := pub.waitFinal(t, ex.ID); final.Type != conveyor.EventCompleted || final.Attempt != 4 {
		t.Fatalf("final %s on attempt %d, want completed on attempt 4", final.Type, final.Attempt)
	}
	var retries, starts []conveyor.Event
	pub.mu.Lock()
	defer pub.mu.Unlock()
	for _, ev := range pub.events {
		switch {
		case ev.ExecutionID != ex.ID:
		case ev.Type == conveyor.EventRetrying:
			retries = append(retries, ev)
		case ev.Type == conveyor.EventStarted:
			starts = append(starts, ev)
		}
	}
	if len(retries) != 3 || len(starts) != 4 {
		t.Fatalf("%d retrying and %d started events, want 3 and 4", len(retries), len(starts))
	}
	for i, want := range []time.Duration{110 * time.Millisecond, 220 * time.Millisecond, 275 * time.Millisecond} {
		ev := retries[i]
		if ev.RetryAt == nil || !ev.RetryAt.Equal(ev.Time.Add(want).Truncate(time.Microsecond)) {
			t.Errorf("retry %d: retry_at %v, want %s after %s", i+1, ev.RetryAt, want, ev.Time)
			continue
		}
		if next := starts[i+1]; next.Time.Before(*ev.RetryAt) {
			t.Errorf("attempt %d started at %s, before its retry_at %s", next.Attempt, next.Time, ev.RetryAt)
		}
	}
	if got, err := e.cfg.Store.GetExecution(t.Context(), ex.ID); err != nil || got.RetryAt != nil {
		t.Errorf("completed execution: retry_at %v, %v; want nil", got.RetryAt, err)
	}
}

// TestDelayedSubmitStartsWhenDue: an execution submitted to run later
// is pending until then; the claim loop wakes for it without a poll.
func TestDelayedSubmitStartsWhenDue(t *testing.T) {
	t.Parallel()
	e, pub := startEngine(t, Config{Pipelines: noopPipeline(), PollInterval: time.Hour})
	ex, _, err := e.SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "noop", Delay: "300ms"})
	if err != nil {
		t.Fatal(err)
	}
	if ex.RunAt == nil || ex.Status != conveyor.StatusPending {
		t.Fatalf("submitted: %s, run_at %v; want pending with run_at", ex.Status, ex.RunAt)
	}
	started := pub.waitFor(t, "the delayed execution's start", func(ev conveyor.Event) bool {
		return ev.ExecutionID == ex.ID && ev.Type == conveyor.EventStarted
	})
	if started.Time.Before(*ex.RunAt) {
		t.Errorf("started at %s, before its run_at %s", started.Time, ex.RunAt)
	}
	pub.waitFinal(t, ex.ID)
}

// TestClaimLoopFindsStoredWaits: executions that wait in the store
// without this engine knowing (another node's, or from before a
// restart) are found by asking the store, at start and at each poll.
func TestClaimLoopFindsStoredWaits(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	early, late := newExecution("noop"), newExecution("noop")
	early.RunAt = ptr(time.Now().Add(300 * time.Millisecond).UTC())
	late.RunAt = ptr(time.Now().Add(600 * time.Millisecond).UTC())
	if err := s.CreateExecutions(t.Context(), []*conveyor.Execution{late, early}); err != nil {
		t.Fatal(err)
	}
	_, pub := startEngine(t, Config{Store: s, Pipelines: noopPipeline(), PollInterval: time.Hour})
	// The second is found when the first is due, without a poll.
	for _, ex := range []*conveyor.Execution{early, late} {
		started := pub.waitFor(t, "the start of "+ex.ID, func(ev conveyor.Event) bool {
			return ev.ExecutionID == ex.ID && ev.Type == conveyor.EventStarted
		})
		if started.Time.Before(*ex.RunAt) {
			t.Errorf("%s started at %s, before its run_at %s", ex.ID, started.Time, ex.RunAt)
		}
	}
}

// TestRecoveryWaitsToRetry: an execution a crash left running retries
// after the wait of its pipeline's policy, as after a failure.
func TestRecoveryWaitsToRetry(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	c := runningExecutions(t, s, 1)[0] // "crashed" while running attempt 1
	p := &conveyor.Pipeline{Name: "p", Retries: 1, RetryDelay: 400 * time.Millisecond,
		Handler: func(context.Context, *conveyor.Exec) error { return nil }}
	_, pub := startEngine(t, Config{Store: s, Pipelines: map[string]*conveyor.Pipeline{"p": p}, PollInterval: time.Hour,
		RetryJitterFunc: exactJitter})
	retrying := pub.waitFor(t, "the recovery's retrying event", func(ev conveyor.Event) bool {
		return ev.ExecutionID == c.Execution.ID && ev.Type == conveyor.EventRetrying
	})
	if retrying.RetryAt == nil || !retrying.RetryAt.Equal(retrying.Time.Add(440*time.Millisecond).Truncate(time.Microsecond)) {
		t.Fatalf("recovery's retry_at %v, want 440ms after %s", retrying.RetryAt, retrying.Time)
	}
	started := pub.waitFor(t, "the second attempt", func(ev conveyor.Event) bool {
		return ev.ExecutionID == c.Execution.ID && ev.Type == conveyor.EventStarted && ev.Attempt == 2
	})
	if started.Time.Before(*retrying.RetryAt) {
		t.Errorf("second attempt started at %s, before its retry_at %s", started.Time, retrying.RetryAt)
	}
	if final := pub.waitFinal(t, c.Execution.ID); final.Type != conveyor.EventCompleted {
		t.Errorf("final %s, want completed", final.Type)
	}
}

func ptr[T any](v T) *T { return &v }
