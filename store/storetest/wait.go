package storetest

import (
	"slices"
	"time"

	"github.com/conveyor-run/conveyor"
)

// createDelayed creates an execution that may start at runAt at the
// earliest.
func (f *fixture) createDelayed(pipeline string, runAt time.Time) *conveyor.Execution {
	f.t.Helper()
	ex := f.newExecution(pipeline)
	ex.RunAt = &runAt
	if err := f.s.CreateExecution(f.ctx, ex); err != nil {
		f.t.Fatalf("CreateExecution %s: %v", ex.ID, err)
	}
	return ex
}

// retryingEvent is the retrying event of running ex that waits until
// retryAt.
func retryingEvent(ex *conveyor.Execution, seq int64, retryAt time.Time) conveyor.Event {
	ev := finalEvent(ex, conveyor.EventRetrying, seq)
	ev.Status, ev.Error, ev.RetryAt = conveyor.StatusPending, conveyor.Errorf(conveyor.ESTEPFAILED, "flaky"), &retryAt
	return ev
}

// nextDue is NextDue(after), failing the test on an error.
func (f *fixture) nextDue(after time.Time) time.Time {
	f.t.Helper()
	due, err := f.s.NextDue(f.ctx, after)
	if err != nil {
		f.t.Fatalf("NextDue(%s): %v", after.Format(time.RFC3339Nano), err)
	}
	return due
}

var waitCases = []testCase{
	{"RunAtNotClaimedBefore", func(f *fixture) {
		runAt := at(100)
		delayed := f.createDelayed("alpha", runAt)
		checkExecution(f.t, f.get(delayed.ID), delayed)
		ready := f.create("alpha")

		if got := claimIDs(f.claim(10, runAt.Add(-time.Microsecond))); !slices.Equal(got, []string{ready.ID}) {
			f.t.Fatalf("claims before run_at = %v, want only %s", got, ready.ID)
		}
		claims := f.claim(10, runAt)
		if got := claimIDs(claims); !slices.Equal(got, []string{delayed.ID}) {
			f.t.Fatalf("claims at run_at = %v, want %s", got, delayed.ID)
		}
		// RunAt stays: it says when the execution was to start.
		want := *delayed
		want.Status, want.Attempt, want.StartedAt, want.LastSeq = conveyor.StatusRunning, 1, &runAt, 1
		checkExecution(f.t, claims[0].Execution, &want)
		checkExecution(f.t, f.get(delayed.ID), &want)
	}},

	{"DueGoFirst", func(f *fixture) {
		older := f.create("alpha")
		late := f.createDelayed("alpha", at(70))
		early := f.createDelayed("alpha", at(60))
		newer := f.create("alpha")
		later := f.createDelayed("alpha", at(1000))
		now := at(80)
		// The due ones first, the earliest due first, then the others
		// oldest first; claims are returned oldest first.
		if got := claimIDs(f.claim(1, now)); !slices.Equal(got, []string{early.ID}) {
			f.t.Fatalf("claim of 1 = %v, want the earliest due, %s", got, early.ID)
		}
		if got := claimIDs(f.claim(2, now)); !slices.Equal(got, []string{older.ID, late.ID}) {
			f.t.Fatalf("claim of 2 = %v, want %s (due) and %s (the oldest), oldest first", got, late.ID, older.ID)
		}
		if got := claimIDs(f.claim(10, now)); !slices.Equal(got, []string{newer.ID}) {
			f.t.Fatalf("claim of 10 = %v, want only %s, not %s (due later)", got, newer.ID, later.ID)
		}
	}},

	{"ManyWaiting", func(f *fixture) {
		// Executions waiting far ahead, however many, do not keep a claim
		// from those that may start.
		es := make([]*conveyor.Execution, 300)
		for i := range es {
			es[i] = f.newExecution("alpha")
			es[i].RunAt = ptr(at(100000 + i))
		}
		if err := f.s.CreateExecutions(f.ctx, es); err != nil {
			f.t.Fatalf("CreateExecutions: %v", err)
		}
		ready := f.create("alpha")
		if got := claimIDs(f.claim(5, at(1000))); !slices.Equal(got, []string{ready.ID}) {
			f.t.Fatalf("claims = %v, want only %s", got, ready.ID)
		}
		if got := f.nextDue(at(1000)); !got.Equal(at(100000)) {
			f.t.Errorf("NextDue = %v, want %v", got, at(100000))
		}
	}},

	{"BatchMembers", func(f *fixture) {
		b, es := f.newBatch(2, nil)
		es[1].RunAt = ptr(at(500))
		if err := f.s.CreateBatch(f.ctx, b, es); err != nil {
			f.t.Fatalf("CreateBatch: %v", err)
		}
		checkExecution(f.t, f.get(es[1].ID), es[1])
		if got := claimIDs(f.claim(10, at(499))); !slices.Equal(got, []string{es[0].ID}) {
			f.t.Fatalf("claims before run_at = %v, want only %s", got, es[0].ID)
		}
		if got := claimIDs(f.claim(10, at(500))); !slices.Equal(got, []string{es[1].ID}) {
			f.t.Fatalf("claims at run_at = %v, want %s", got, es[1].ID)
		}
	}},

	{"RetryWaits", func(f *fixture) {
		ex := f.start("alpha")
		retryAt := at(200)
		ev := f.append(retryingEvent(ex, 2, retryAt))[0]
		checkEvents(f.t, f.eventsAfter(ex.ID, 1), []conveyor.Event{ev})
		want := *ex
		want.Status, want.LastSeq, want.Error, want.RetryAt = conveyor.StatusPending, 2, ev.Error, &retryAt
		checkExecution(f.t, f.get(ex.ID), &want)

		if claims := f.claim(10, retryAt.Add(-time.Microsecond)); len(claims) != 0 {
			f.t.Fatalf("claims before retry_at = %v, want none", claimIDs(claims))
		}
		c := f.claimOne(ex.ID, retryAt)
		want.Status, want.Attempt, want.StartedAt, want.LastSeq, want.RetryAt = conveyor.StatusRunning, 2, &retryAt, 3, nil
		checkExecution(f.t, c.Execution, &want)
		checkExecution(f.t, f.get(ex.ID), &want)
	}},

	{"RetryOfDelayedRun", func(f *fixture) {
		// A delayed execution that retries waits for its retry, not for
		// its run_at, which it keeps.
		ex := f.createDelayed("alpha", at(10))
		ex = f.claimOne(ex.ID, at(10)).Execution
		f.append(retryingEvent(ex, 2, at(300)))
		if claims := f.claim(10, at(299)); len(claims) != 0 {
			f.t.Fatalf("claims before retry_at = %v, want none", claimIDs(claims))
		}
		if c := f.claimOne(ex.ID, at(300)); c.Execution.RunAt == nil || !c.Execution.RunAt.Equal(at(10)) {
			f.t.Errorf("run_at after the retry = %v, want %v", c.Execution.RunAt, at(10))
		}
	}},

	{"FinalClearsRetryAt", func(f *fixture) {
		// A completed write after a retry and a cancel of a waiting retry
		// both leave no retry_at.
		done := f.start("alpha")
		f.append(retryingEvent(done, 2, at(200)))
		done = f.claimOne(done.ID, at(200)).Execution
		f.append(finalEvent(done, conveyor.EventCompleted, 4))
		if got := f.get(done.ID); got.RetryAt != nil || got.Status != conveyor.StatusCompleted {
			f.t.Errorf("completed after a retry: status %s, retry at %v; want completed, nil", got.Status, got.RetryAt)
		}

		waiting := f.start("alpha")
		f.append(retryingEvent(waiting, 2, at(400)))
		ex, ev := f.cancel(waiting.ID, at(300))
		if ev == nil || ex.RetryAt != nil {
			f.t.Fatalf("Cancel of a waiting retry = %+v, %+v; want cancelled, no retry at", ex, ev)
		}
		checkExecution(f.t, f.get(waiting.ID), ex)
		if claims := f.claim(10, at(400)); len(claims) != 0 {
			f.t.Errorf("claims after the cancel = %v, want none", claimIDs(claims))
		}
	}},

	{"CancelWhileDelayed", func(f *fixture) {
		ex := f.createDelayed("alpha", at(100))
		got, ev := f.cancel(ex.ID, at(50))
		if ev == nil || got.Status != conveyor.StatusCancelled {
			f.t.Fatalf("Cancel of a delayed execution = %+v, %+v; want cancelled", got, ev)
		}
		checkExecution(f.t, f.get(ex.ID), got)
		if claims := f.claim(10, at(100)); len(claims) != 0 {
			f.t.Errorf("claims after the cancel = %v, want none", claimIDs(claims))
		}
		if due := f.nextDue(at(0)); !due.IsZero() {
			f.t.Errorf("NextDue after the cancel = %v, want none", due)
		}
	}},

	{"NextDue", func(f *fixture) {
		if due := f.nextDue(at(0)); !due.IsZero() {
			f.t.Errorf("NextDue of an empty store = %v, want zero", due)
		}
		retry := f.start("alpha")
		f.append(retryingEvent(retry, 2, at(70)))
		f.create("alpha")
		f.createDelayed("alpha", at(100))
		early := f.createDelayed("alpha", at(50))

		for _, tc := range []struct{ after, want time.Time }{
			{at(0), at(50)},
			{at(50).Add(-time.Microsecond), at(50)},
			{at(50), at(70)}, // after, not at
			{at(70), at(100)},
			{at(100), time.Time{}},
		} {
			if got := f.nextDue(tc.after); !got.Equal(tc.want) || !got.IsZero() && got.Location() != time.UTC {
				f.t.Errorf("NextDue(%s) = %v, want %v in UTC", tc.after.Format(time.RFC3339Nano), got, tc.want)
			}
		}
		// Claimed ones wait no more.
		f.claim(10, at(70))
		if got := f.nextDue(at(0)); !got.Equal(at(100)) {
			f.t.Errorf("NextDue once %s and %s were claimed = %v, want %v", early.ID, retry.ID, got, at(100))
		}
	}},

	{"Invalid", func(f *fixture) {
		ex := f.newExecution("alpha")
		ex.RunAt = ptr(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
		wantCode(f.t, "CreateExecution with run_at in 3000", f.s.CreateExecution(f.ctx, ex), conveyor.EINVALID)
		if _, err := f.s.GetExecution(f.ctx, ex.ID); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
			f.t.Errorf("GetExecution after a refused create: %v, want not found", err)
		}

		running := f.start("alpha")
		p := progressEvent(running, 2, progress(1, 2, 50))
		p.RetryAt = ptr(at(500))
		wantCode(f.t, "Append of a progress event with retry_at", f.s.Append(f.ctx, []conveyor.Event{p}), conveyor.EINVALID)
		if got := f.get(running.ID); got.LastSeq != 1 {
			f.t.Errorf("last seq after a refused append = %d, want 1", got.LastSeq)
		}
	}},
}
