package storetest

import (
	"slices"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// startedEvent is the event ClaimPending appends for the claimed ex: the
// lifecycle's, which a backend may build in SQL (PostgreSQL does, to claim
// in one round trip), so this pins the two together.
func startedEvent(ex *conveyor.Execution) conveyor.Event {
	return conveyor.StartedEvent(ex, *ex.StartedAt)
}

var claimCases = []testCase{
	{"OldestFirst", func(f *fixture) {
		exs := f.createN(5, "alpha")
		now := at(60)

		claims := f.claim(2, now)
		if got, want := claimIDs(claims), executionIDs(exs[:2]); !slices.Equal(got, want) {
			f.t.Fatalf("first claim = %v, want %v", got, want)
		}
		claims = append(claims, f.claim(10, now)...)
		if got, want := claimIDs(claims), executionIDs(exs); !slices.Equal(got, want) {
			f.t.Fatalf("claims = %v, want %v", got, want)
		}
		if more := f.claim(10, now); len(more) != 0 {
			f.t.Errorf("claim with nothing pending = %v, want none", claimIDs(more))
		}

		for i, c := range claims {
			want := *exs[i]
			want.Status, want.Attempt, want.StartedAt, want.LastSeq = conveyor.StatusRunning, 1, ptr(now), 1
			checkExecution(f.t, c.Execution, &want)
			checkEvent(f.t, c.Started, startedEvent(&want))
			checkExecution(f.t, f.get(want.ID), &want)
			checkEvents(f.t, f.events(want.ID), []conveyor.Event{startedEvent(&want)})
		}
	}},

	{"NeverBeforeCreated", func(f *fixture) {
		// A claim reads its clock before its statement runs, so it can
		// take an execution committed after that read: the start is then
		// when the execution was created, not before.
		early, late := f.create("alpha"), f.newExecution("alpha")
		late.CreatedAt = at(90)
		if err := f.s.CreateExecution(f.ctx, late); err != nil {
			f.t.Fatal(err)
		}
		claims := f.claim(2, at(60))
		if got := claimIDs(claims); !slices.Equal(got, []string{early.ID, late.ID}) {
			f.t.Fatalf("claims = %v, want %s and %s", got, early.ID, late.ID)
		}
		for i, want := range []*conveyor.Execution{early, late} {
			w := *want
			w.Status, w.Attempt, w.StartedAt, w.LastSeq = conveyor.StatusRunning, 1, ptr(at(60)), 1
			if i == 1 {
				w.StartedAt = ptr(at(90))
			}
			checkExecution(f.t, claims[i].Execution, &w)
			checkEvent(f.t, claims[i].Started, startedEvent(&w))
			checkEvents(f.t, f.events(w.ID), []conveyor.Event{startedEvent(&w)})
		}
	}},

	{"LimitZero", func(f *fixture) {
		ex := f.create("alpha")
		if claims := f.claim(0, at(60)); len(claims) != 0 {
			f.t.Errorf("ClaimPending(0) = %v, want none", claimIDs(claims))
		}
		checkExecution(f.t, f.get(ex.ID), ex)
	}},

	{"NotClaimedTwice", func(f *fixture) {
		exs := f.createN(3, "alpha")
		f.claim(3, at(60))
		if claims := f.claim(3, at(61)); len(claims) != 0 {
			f.t.Errorf("second claim = %v, want none", claimIDs(claims))
		}
		for _, ex := range exs {
			if got := f.get(ex.ID); got.Attempt != 1 || got.LastSeq != 1 || !got.StartedAt.Equal(at(60)) {
				f.t.Errorf("%s: attempt %d, last seq %d, started %v after a second claim; want 1, 1, %v",
					ex.ID, got.Attempt, got.LastSeq, got.StartedAt, at(60))
			}
		}
	}},

	{"OnlyPending", func(f *fixture) {
		cancelled := f.create("alpha")
		f.cancel(cancelled.ID, at(70))
		running := f.start("alpha")
		done := f.start("alpha")
		f.append(finalEvent(done, conveyor.EventCompleted, 2))
		pending := f.create("alpha")

		claims := f.claim(10, at(80))
		if got := claimIDs(claims); !slices.Equal(got, []string{pending.ID}) {
			f.t.Errorf("claims = %v, want only %s (not %s, %s or %s)", got, pending.ID, cancelled.ID, running.ID, done.ID)
		}
	}},

	{"Retry", func(f *fixture) {
		// A retried execution is claimed again as its next attempt, its
		// started event following the events of the first.
		ex := f.start("alpha")
		f.append(progressEvent(ex, 2, progress(1, 2, 50)))
		retry := finalEvent(ex, conveyor.EventRetrying, 3)
		retry.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")
		f.append(retry)

		now := at(200)
		c := f.claimOne(ex.ID, now)
		if c.Execution.Attempt != 2 || c.Execution.LastSeq != 4 || c.Execution.Status != conveyor.StatusRunning {
			f.t.Errorf("claimed retry: attempt %d, last seq %d, status %s; want 2, 4, running",
				c.Execution.Attempt, c.Execution.LastSeq, c.Execution.Status)
		}
		if c.Execution.StartedAt == nil || !c.Execution.StartedAt.Equal(now) {
			f.t.Errorf("claimed retry: started at %v, want %v", c.Execution.StartedAt, now)
		}
		if c.Execution.Progress != nil {
			f.t.Errorf("claimed retry: progress %s, want none", toJSON(c.Execution.Progress))
		}
		want := conveyor.Event{Type: conveyor.EventStarted, ExecutionID: ex.ID, Seq: 4, Time: now, Attempt: 2, Status: conveyor.StatusRunning}
		checkEvent(f.t, c.Started, want)
		evs := f.events(ex.ID)
		if got := eventSeqs(evs); !slices.Equal(got, []int64{1, 2, 3, 4}) {
			f.t.Fatalf("event seqs = %v, want 1..4", got)
		}
		checkEvent(f.t, evs[3], want)
	}},

	{"Concurrent", func(f *fixture) {
		// Claimers racing over the same executions never share one.
		const executions, claimers = 200, 8
		exs := f.createN(executions, "alpha")
		var (
			mu      sync.Mutex
			claimed = map[string]int{}
			wg      sync.WaitGroup
		)
		for range claimers {
			wg.Go(func() {
				for {
					claims, err := f.s.ClaimPending(f.ctx, 3, func() time.Time { return at(500) })
					if err != nil {
						f.t.Errorf("ClaimPending: %v", err)
						return
					}
					if len(claims) == 0 {
						return
					}
					mu.Lock()
					for _, c := range claims {
						claimed[c.Execution.ID]++
						if c.Execution.Attempt != 1 || c.Started.Seq != 1 {
							f.t.Errorf("%s claimed with attempt %d, started seq %d; want 1, 1", c.Execution.ID, c.Execution.Attempt, c.Started.Seq)
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, ex := range exs {
			if n := claimed[ex.ID]; n != 1 {
				f.t.Errorf("%s claimed %d times, want once", ex.ID, n)
			}
		}
		if len(claimed) != executions {
			f.t.Errorf("claimed %d executions, want %d", len(claimed), executions)
		}
	}},
}
