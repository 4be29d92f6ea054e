package storetest

import (
	"slices"
	"time"

	"github.com/conveyor-run/conveyor"
)

var cancelCases = []testCase{
	{"Pending", func(f *fixture) {
		ex := f.create("alpha")
		now := at(40)
		got, ev := f.cancel(ex.ID, now)

		want := *ex
		want.Status, want.FinishedAt, want.LastSeq = conveyor.StatusCancelled, ptr(now), 1
		checkExecution(f.t, got, &want)
		checkExecution(f.t, f.get(ex.ID), &want)
		if ev == nil {
			f.t.Fatal("Cancel of a pending execution returned no event")
		}
		wantEv := conveyor.Event{Type: conveyor.EventCancelled, ExecutionID: ex.ID, Seq: 1, Time: now, Status: conveyor.StatusCancelled}
		checkEvent(f.t, *ev, wantEv)
		checkEvents(f.t, f.events(ex.ID), []conveyor.Event{wantEv})
		if claims := f.claim(10, at(41)); len(claims) != 0 {
			f.t.Errorf("claimed %v after cancel, want none", claimIDs(claims))
		}
	}},

	{"PendingRetry", func(f *fixture) {
		// A pending retry is cancelled as its last attempt, after its events.
		ex := f.start("alpha")
		retry := finalEvent(ex, conveyor.EventRetrying, 2)
		retry.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")
		f.append(retry)
		now := at(200)
		got, ev := f.cancel(ex.ID, now)
		if got.Status != conveyor.StatusCancelled || got.LastSeq != 3 || got.Attempt != 1 || got.FinishedAt == nil || !got.FinishedAt.Equal(now) {
			f.t.Errorf("cancelled retry: status %s, last seq %d, attempt %d, finished %v; want cancelled, 3, 1, %v",
				got.Status, got.LastSeq, got.Attempt, got.FinishedAt, now)
		}
		if ev == nil {
			f.t.Fatal("Cancel of a pending retry returned no event")
		}
		wantEv := conveyor.Event{Type: conveyor.EventCancelled, ExecutionID: ex.ID, Seq: 3, Time: now, Attempt: 1, Status: conveyor.StatusCancelled}
		checkEvent(f.t, *ev, wantEv)
		checkEvent(f.t, f.event(ex.ID, 3), wantEv)
	}},

	{"Running", func(f *fixture) {
		// The store only records the request; the runner writes the final
		// event, which is still accepted.
		ex := f.start("alpha")
		for range 2 { // asking twice is the same as asking once
			got, ev := f.cancel(ex.ID, at(40))
			if ev != nil {
				f.t.Errorf("Cancel of a running execution returned event %+v, want nil", *ev)
			}
			want := *ex
			want.CancelRequested = true
			checkExecution(f.t, got, &want)
			checkExecution(f.t, f.get(ex.ID), &want)
			if n := len(f.events(ex.ID)); n != 1 {
				f.t.Errorf("%d events after cancel requested, want 1", n)
			}
		}

		f.append(finalEvent(ex, conveyor.EventCancelled, 2))
		if got := f.get(ex.ID); got.Status != conveyor.StatusCancelled || got.LastSeq != 2 {
			f.t.Errorf("after the runner's cancelled event: status %s, last seq %d; want cancelled, 2", got.Status, got.LastSeq)
		}
	}},

	{"RequestSurvivesRetry", func(f *fixture) {
		// The attempt failed before it saw the cancel: the next claim
		// carries the request, so the runner cancels at once.
		ex := f.start("alpha")
		f.cancel(ex.ID, at(40))
		retry := finalEvent(ex, conveyor.EventRetrying, 2)
		retry.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")
		f.append(retry)
		if c := f.claimOne(ex.ID, at(300)); !c.Execution.CancelRequested {
			f.t.Error("claimed retry lost CancelRequested")
		}
	}},

	{"Final", func(f *fixture) {
		for _, final := range []conveyor.EventType{conveyor.EventCompleted, conveyor.EventFailed, conveyor.EventCancelled} {
			ex := f.start("alpha")
			f.append(finalEvent(ex, final, 2))
			before := f.get(ex.ID)
			got, ev, err := f.s.Cancel(f.ctx, ex.ID, at(400))
			wantCode(f.t, "Cancel of a "+string(final)+" execution", err, conveyor.ECONFLICT)
			if got != nil || ev != nil {
				f.t.Errorf("Cancel of a %s execution returned %+v, %+v; want nil, nil", final, got, ev)
			}
			checkExecution(f.t, f.get(ex.ID), before)
			if n := len(f.events(ex.ID)); n != 2 {
				f.t.Errorf("%s execution: %d events after a refused cancel, want 2", final, n)
			}
		}
	}},

	{"Unknown", func(f *fixture) {
		f.create("alpha")
		for _, id := range unknownIDs {
			_, _, err := f.s.Cancel(f.ctx, id, at(40))
			wantCode(f.t, "Cancel("+id+")", err, conveyor.ENOTFOUND)
		}
	}},
}

var recoverCases = []testCase{
	{"RetryOrFail", func(f *fixture) {
		retriesFunc := retriesOf(map[string]int{"retry-once": 1, "no-retries": 0})

		// Running attempt 1 with a retry left: back to pending.
		again := f.start("retry-once")
		f.append(progressEvent(again, 2, progress(1, 3, 20)))
		// Running with no retries: failed.
		noRetries := f.start("no-retries")
		noRetriesProgress := progress(2, 3, 60)
		f.append(progressEvent(noRetries, 2, noRetriesProgress))
		// Running attempt 2 of a pipeline with one retry: none left.
		lastTry := f.start("retry-once")
		f.append(finalEvent(lastTry, conveyor.EventRetrying, 2))
		lastTry = f.claimOne(lastTry.ID, at(90)).Execution
		// A pipeline this node does not know has no retries.
		unknownPipeline := f.start("gone")
		// Not running: untouched.
		done := f.start("no-retries")
		f.append(finalEvent(done, conveyor.EventCompleted, 2))
		pending := f.create("retry-once")
		untouched := []*conveyor.Execution{f.get(done.ID), f.get(pending.ID)}
		before := map[string]*conveyor.Execution{}
		for _, ex := range []*conveyor.Execution{again, noRetries, lastTry, unknownPipeline} {
			before[ex.ID] = f.get(ex.ID)
		}

		now := at(1000)
		evs, err := f.s.RecoverInterrupted(f.ctx, now, retriesFunc)
		if err != nil {
			f.t.Fatalf("RecoverInterrupted: %v", err)
		}
		byID := map[string]conveyor.Event{}
		for _, ev := range evs {
			byID[ev.ExecutionID] = ev
		}
		if len(evs) != 4 || len(byID) != 4 {
			f.t.Fatalf("RecoverInterrupted returned %d events for %d executions, want 4 for 4", len(evs), len(byID))
		}

		// The retried execution: pending, error interrupted, progress
		// cleared, waiting to retry as the policy says.
		b := before[again.ID]
		ev := byID[again.ID]
		if ev.Type != conveyor.EventRetrying || ev.Error == nil || ev.Error.Code != conveyor.EINTERRUPTED || ev.Error.Message == "" {
			f.t.Errorf("retried execution: event %s", toJSON(ev))
		}
		retryAt := now.Add(retryWait)
		wantEv := conveyor.Event{Type: conveyor.EventRetrying, ExecutionID: again.ID, Seq: interruptSeq(b), Time: now, Attempt: 1, Status: conveyor.StatusPending, Error: ev.Error,
			RetryAt: &retryAt}
		checkEvent(f.t, ev, wantEv)
		checkEvents(f.t, f.eventsAfter(again.ID, b.LastSeq), []conveyor.Event{wantEv})
		want := *b
		want.Status, want.Progress, want.Error, want.LastSeq, want.RetryAt = conveyor.StatusPending, nil, ev.Error, interruptSeq(b), &retryAt
		got := f.get(again.ID)
		want.StartedAt = got.StartedAt // left open until the next claim
		checkExecution(f.t, got, &want)

		// The failed ones: failed with EINTERRUPTED, finished now.
		for _, ex := range []*conveyor.Execution{noRetries, lastTry, unknownPipeline} {
			b := before[ex.ID]
			ev := byID[ex.ID]
			if ev.Type != conveyor.EventFailed || ev.Error == nil || ev.Error.Code != conveyor.EINTERRUPTED || ev.Error.Message == "" {
				f.t.Errorf("%s: event %s, want failed with code %s", ex.Pipeline, toJSON(ev), conveyor.EINTERRUPTED)
				continue
			}
			wantEv := conveyor.Event{Type: conveyor.EventFailed, ExecutionID: ex.ID, Seq: interruptSeq(b), Time: now, Attempt: b.Attempt, Status: conveyor.StatusFailed, Progress: ev.Progress, Error: ev.Error}
			checkEvent(f.t, ev, wantEv)
			checkEvents(f.t, f.eventsAfter(ex.ID, b.LastSeq), []conveyor.Event{wantEv})
			want := *b
			want.Status, want.Error, want.FinishedAt, want.LastSeq = conveyor.StatusFailed, ev.Error, ptr(now), interruptSeq(b)
			checkExecution(f.t, f.get(ex.ID), &want)
		}
		if got := f.get(noRetries.ID).Progress; !equalProgress(got, noRetriesProgress) {
			f.t.Errorf("failed execution's progress = %s, want the last one, %s", toJSON(got), toJSON(noRetriesProgress))
		}

		for _, ex := range untouched {
			checkExecution(f.t, f.get(ex.ID), ex)
		}

		// Nothing is left running, so a second pass finds nothing.
		if evs, err := f.s.RecoverInterrupted(f.ctx, at(1001), retriesFunc); err != nil || len(evs) != 0 {
			f.t.Errorf("second RecoverInterrupted = %d events, %v; want none", len(evs), err)
		}
		// The retried execution waits until its retry_at, then is claimed
		// again.
		if claims := f.claim(10, retryAt.Add(-time.Microsecond)); !slices.Equal(claimIDs(claims), []string{pending.ID}) {
			f.t.Fatalf("claims before the retry is due = %v, want only %s", claimIDs(claims), pending.ID)
		}
		claims := f.claim(10, retryAt)
		if got := claimIDs(claims); !slices.Equal(got, []string{again.ID}) {
			f.t.Fatalf("claims once the retry is due = %v, want %s", got, again.ID)
		}
		if c := claims[0]; c.Execution.Attempt != 2 || c.Started.Seq != interruptSeq(b)+1 || c.Execution.RetryAt != nil {
			f.t.Errorf("recovered execution claimed with attempt %d, started seq %d, retry at %v; want 2, %d, nil",
				c.Execution.Attempt, c.Started.Seq, c.Execution.RetryAt, interruptSeq(b)+1)
		}
	}},

	{"NothingRunning", func(f *fixture) {
		f.create("alpha")
		evs, err := f.s.RecoverInterrupted(f.ctx, at(1000), retriesOf(map[string]int{"alpha": 3}))
		if err != nil || len(evs) != 0 {
			f.t.Errorf("RecoverInterrupted = %d events, %v; want none", len(evs), err)
		}
	}},
}

func equalProgress(a, b *conveyor.Progress) bool {
	return toJSON(a) == toJSON(b)
}

// interruptSeq is the seq of the event that interrupts running ex: after
// the seqs its lease reserved on a shared store (the shared tests pin
// those), or SeqReservation after its last on a store without leases.
func interruptSeq(ex *conveyor.Execution) int64 {
	if ex.SeqReserved == 0 {
		return ex.LastSeq + conveyor.SeqReservation + 1
	}
	return max(ex.LastSeq, ex.SeqReserved) + 1
}
