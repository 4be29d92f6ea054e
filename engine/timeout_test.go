package engine

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Timeouts are tested twice over:
//
//   - TestTimeoutCauses runs one attempt's steps (run.execute) in a
//     synctest bubble, where fake time makes a five-minute timeout instant
//     and exact, so the test can say when each one fired. It needs no
//     store: execute only runs the steps, and the final write is finish's.
//   - TestTimeoutFailsExecution runs the whole engine on a real SQLite
//     store, which does not belong in a bubble (its I/O is not durably
//     blocking and its connections keep goroutines of their own), so it
//     uses real, short timeouts. Its handlers wait for their context, not
//     for time, and nothing checks how long anything took.

// waitDone is a step that waits for its context and returns why it ended.
func waitDone(ctx context.Context, _ *conveyor.Exec) error {
	<-ctx.Done()
	return ctx.Err()
}

// noStore is a Store no test in a bubble may call: every method panics.
type noStore struct{ conveyor.Store }

func TestTimeoutCauses(t *testing.T) {
	t.Parallel()
	var ranAfter atomic.Bool
	after := conveyor.Step{Name: "after", Run: func(context.Context, *conveyor.Exec) error { ranAfter.Store(true); return nil }}
	tests := []struct {
		name    string
		p       conveyor.Pipeline
		message string
		after   time.Duration // when the attempt ends, in fake time
	}{{
		name:    "step",
		p:       conveyor.Pipeline{Steps: []conveyor.Step{{Name: "stuck", Timeout: 5 * time.Minute, Run: waitDone}, after}},
		message: `step "stuck" timed out after 5m0s`,
		after:   5 * time.Minute,
	}, {
		// A step that ignores its context is waited for, and whatever it
		// returns, it timed out.
		name: "step ignores its context",
		p: conveyor.Pipeline{Steps: []conveyor.Step{{Name: "deaf", Timeout: 5 * time.Minute, Run: func(context.Context, *conveyor.Exec) error {
			time.Sleep(7 * time.Minute)
			return nil
		}}, after}},
		message: `step "deaf" timed out after 5m0s`,
		after:   7 * time.Minute,
	}, {
		name: "step within pipeline",
		p: conveyor.Pipeline{Timeout: time.Hour, Steps: []conveyor.Step{
			{Name: "short", Timeout: 30 * time.Second, Run: waitDone}, after,
		}},
		message: `step "short" timed out after 30s`,
		after:   30 * time.Second,
	}, {
		// The pipeline's time runs over steps: the second step has 20s
		// of its minute left, and its own longer timeout does not matter.
		name: "pipeline",
		p: conveyor.Pipeline{Timeout: time.Minute, Steps: []conveyor.Step{
			{Name: "first", Run: func(context.Context, *conveyor.Exec) error { time.Sleep(40 * time.Second); return nil }},
			{Name: "second", Timeout: 10 * time.Minute, Run: waitDone},
			after,
		}},
		message: "execution timed out after 1m0s",
		after:   time.Minute,
	}, {
		name:    "handler",
		p:       conveyor.Pipeline{Timeout: 90 * time.Second, Handler: waitDone},
		message: "execution timed out after 1m30s",
		after:   90 * time.Second,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ranAfter.Store(false)
				tt.p.Name = "p"
				e, err := New(Config{Store: noStore{}, Pipelines: map[string]*conveyor.Pipeline{"p": &tt.p}})
				if err != nil {
					t.Fatal(err)
				}
				// What Start would set up, without its store calls.
				e.runCtx, e.cancelRuns = context.WithCancelCause(t.Context())
				defer e.cancelRuns(nil)
				start := time.Now()
				r := e.newRun(conveyor.Claim{
					Execution: &conveyor.Execution{ID: "x", Pipeline: "p", Status: conveyor.StatusRunning, Attempt: 1, LastSeq: 1},
					Started:   conveyor.Event{Type: conveyor.EventStarted, ExecutionID: "x", Seq: 1, Time: start, Attempt: 1},
				})

				err = r.execute()

				if conveyor.ErrorCode(err) != conveyor.ETIMEOUT || conveyor.ErrorMessage(err) != tt.message {
					t.Errorf("execute: %v, want %s: %s", err, conveyor.ETIMEOUT, tt.message)
				}
				if took := time.Since(start); took != tt.after {
					t.Errorf("the attempt ended after %s, want %s", took, tt.after)
				}
				if ranAfter.Load() {
					t.Error("a step after the timeout ran")
				}
			})
		})
	}
}

// TestTimeoutFailsExecution: a step or pipeline that runs out of time
// fails its execution with code timeout and a message that says which,
// stored before it is published; with retries left, it is retried.
func TestTimeoutFailsExecution(t *testing.T) {
	t.Parallel()
	const timeout = 20 * time.Millisecond
	var ranAfter atomic.Bool
	// The steps ignore what their context says and claim success: a
	// timed-out step has not succeeded, whatever it returns.
	waitThenSucceed := func(ctx context.Context, _ *conveyor.Exec) error {
		<-ctx.Done()
		return nil
	}
	pipelines := map[string]*conveyor.Pipeline{
		"step": {Name: "step", Steps: []conveyor.Step{
			{Name: "stuck", Timeout: timeout, Run: waitThenSucceed},
			{Name: "after", Run: func(context.Context, *conveyor.Exec) error { ranAfter.Store(true); return nil }},
		}},
		"pipeline": {Name: "pipeline", Timeout: timeout, Handler: waitThenSucceed},
		// Times out on its first attempt only.
		"retried": {Name: "retried", Retries: 1, Steps: []conveyor.Step{{Name: "once", Timeout: timeout, Run: func(ctx context.Context, x *conveyor.Exec) error {
			if x.Attempt == 1 {
				<-ctx.Done()
			}
			return nil
		}}}},
	}
	store := openStore(t)
	e, pub := startEngine(t, Config{Store: store, Pipelines: pipelines, PollInterval: time.Hour})
	submit := func(p string) string {
		t.Helper()
		ex, err := e.Submit(t.Context(), p, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ex.ID
	}
	step, pipeline, retried := submit("step"), submit("pipeline"), submit("retried")

	for _, tt := range []struct{ id, message string }{
		{step, `step "stuck" timed out after 20ms`},
		{pipeline, "execution timed out after 20ms"},
	} {
		ev := pub.waitFinal(t, tt.id)
		if ev.Type != conveyor.EventFailed || ev.Status != conveyor.StatusFailed || ev.Error == nil ||
			ev.Error.Code != conveyor.ETIMEOUT || ev.Error.Message != tt.message {
			t.Errorf("published %s %s %+v, want failed with %s: %s", ev.Type, ev.Status, ev.Error, conveyor.ETIMEOUT, tt.message)
		}
		ex, err := store.GetExecution(t.Context(), tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Status != conveyor.StatusFailed || ex.Error == nil || *ex.Error != *ev.Error {
			t.Errorf("stored %s %+v, want what was published", ex.Status, ex.Error)
		}
	}
	if ranAfter.Load() {
		t.Error("the step after a timed-out one ran")
	}

	if ev := pub.waitFinal(t, retried); ev.Type != conveyor.EventCompleted || ev.Attempt != 2 {
		t.Errorf("retried: %s on attempt %d, want completed on attempt 2", ev.Type, ev.Attempt)
	}
	var types []conveyor.EventType
	for _, ev := range storedEvents(t, store, retried) {
		if ev.Type == conveyor.EventProgress {
			continue
		}
		types = append(types, ev.Type)
		if ev.Type == conveyor.EventRetrying && (ev.Error == nil || ev.Error.Code != conveyor.ETIMEOUT ||
			ev.Error.Message != `step "once" timed out after 20ms`) {
			t.Errorf("retrying event's error %+v, want the timeout", ev.Error)
		}
	}
	want := []conveyor.EventType{conveyor.EventStarted, conveyor.EventRetrying, conveyor.EventStarted, conveyor.EventCompleted}
	if !slices.Equal(types, want) {
		t.Errorf("retried: events %v, want %v", types, want)
	}
}
