package storetest

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/conveyor-run/conveyor"
)

var appendCases = []testCase{
	{"Progress", func(f *fixture) {
		ex := f.start("alpha")
		started := f.event(ex.ID, 1)

		p1 := progressEvent(ex, 2, progress(1, 3, 10))
		f.append(p1)
		want := *ex
		want.Progress, want.LastSeq = p1.Progress, 2
		checkExecution(f.t, f.get(ex.ID), &want)

		p2 := progressEvent(ex, 3, progress(2, 3, 50))
		f.append(p2)
		want.Progress, want.LastSeq = p2.Progress, 3
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvents(f.t, f.events(ex.ID), []conveyor.Event{started, p1, p2})
	}},

	{"ProgressUnknownTotal", func(f *fixture) {
		// Nil pointers and absent fields survive the round trip as such.
		ex := f.start("alpha")
		ev := progressEvent(ex, 2, &conveyor.Progress{CurrentStep: 4, CurrentStepName: "thinking"})
		f.append(ev)
		want := *ex
		want.Progress, want.LastSeq = ev.Progress, 2
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvent(f.t, f.event(ex.ID, 2), ev)
	}},

	{"Completed", func(f *fixture) {
		ex := f.start("alpha")
		f.append(progressEvent(ex, 2, progress(1, 2, 50)))
		done := finalEvent(ex, conveyor.EventCompleted, 3)
		done.Progress = progress(2, 2, 100)
		done.Result = json.RawMessage(`{"rows": 42, "files": ["a.csv", "b.csv"]}`)
		f.append(done)

		want := *ex
		want.Status, want.Progress, want.Result = conveyor.StatusCompleted, done.Progress, done.Result
		want.FinishedAt, want.LastSeq = ptr(done.Time), 3
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvent(f.t, f.event(ex.ID, 3), done)
	}},

	{"Failed", func(f *fixture) {
		// The error is recorded; a final event without progress keeps the
		// last progress, where the execution stopped.
		ex := f.start("alpha")
		p := progressEvent(ex, 2, progress(1, 2, 50))
		f.append(p)
		failed := finalEvent(ex, conveyor.EventFailed, 3)
		failed.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "step %q: exit status 3", "load")
		f.append(failed)

		want := *ex
		want.Status, want.Progress, want.Error = conveyor.StatusFailed, p.Progress, failed.Error
		want.FinishedAt, want.LastSeq = ptr(failed.Time), 3
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvent(f.t, f.event(ex.ID, 3), failed)
	}},

	{"Cancelled", func(f *fixture) {
		ex := f.start("alpha")
		cancelled := finalEvent(ex, conveyor.EventCancelled, 2)
		cancelled.Progress = progress(1, 4, 12.5)
		f.append(cancelled)

		want := *ex
		want.Status, want.Progress = conveyor.StatusCancelled, cancelled.Progress
		want.FinishedAt, want.LastSeq = ptr(cancelled.Time), 2
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvent(f.t, f.event(ex.ID, 2), cancelled)
	}},

	{"Retrying", func(f *fixture) {
		// Back to pending, the error kept, the progress cleared; the next
		// attempt completing clears the error.
		ex := f.start("alpha")
		f.append(progressEvent(ex, 2, progress(1, 2, 50)))
		retry := finalEvent(ex, conveyor.EventRetrying, 3)
		retry.Error = conveyor.Errorf(conveyor.ETIMEOUT, "step %q timed out after 1s", "fetch")
		f.append(retry)

		want := *ex
		want.Status, want.Error, want.LastSeq = conveyor.StatusPending, retry.Error, 3
		got := f.get(ex.ID)
		want.StartedAt = got.StartedAt // the interface leaves it open until the next claim
		checkExecution(f.t, got, &want)
		checkEvent(f.t, f.event(ex.ID, 3), retry)

		again := f.claimOne(ex.ID, at(300)).Execution
		done := finalEvent(again, conveyor.EventCompleted, 5)
		done.Progress = progress(2, 2, 100)
		f.append(done)
		got = f.get(ex.ID)
		if got.Status != conveyor.StatusCompleted || got.Error != nil || got.Attempt != 2 || got.LastSeq != 5 {
			f.t.Errorf("after a completed retry: status %s, error %v, attempt %d, last seq %d; want completed, nil, 2, 5",
				got.Status, got.Error, got.Attempt, got.LastSeq)
		}
	}},

	{"FinalOverwritesProgress", func(f *fixture) {
		// In one batch, progress before the final event applies, progress
		// after it is dropped: the final status and its progress stay.
		ex := f.start("alpha")
		p := progressEvent(ex, 2, progress(1, 2, 50))
		done := finalEvent(ex, conveyor.EventCompleted, 3)
		done.Progress = progress(2, 2, 100)
		late := progressEvent(ex, 4, progress(2, 2, 99))
		f.append(p, done, late)
		f.append(progressEvent(ex, 5, progress(2, 2, 98)))

		want := *ex
		want.Status, want.Progress, want.FinishedAt, want.LastSeq = conveyor.StatusCompleted, done.Progress, ptr(done.Time), 3
		checkExecution(f.t, f.get(ex.ID), &want)
		if got := eventSeqs(f.events(ex.ID)); !slices.Equal(got, []int64{1, 2, 3}) {
			f.t.Errorf("event seqs = %v, want 1..3", got)
		}
	}},

	{"FencesStaleAttempt", func(f *fixture) {
		// Attempt 1's writer is still alive after attempt 2 was claimed:
		// none of its writes lands.
		ex := f.start("alpha")
		retry := finalEvent(ex, conveyor.EventRetrying, 2)
		retry.Error = conveyor.Errorf(conveyor.EINTERRUPTED, "lease lost")
		f.append(retry)
		second := f.claimOne(ex.ID, at(300)).Execution
		before := f.get(ex.ID)

		stale := progressEvent(ex, 4, progress(1, 2, 50))
		staleFailed := finalEvent(ex, conveyor.EventFailed, 5)
		staleFailed.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "stale")
		checkDropped(f.t, f.append(stale, staleFailed), true, true)
		checkExecution(f.t, f.get(ex.ID), before)
		if got := eventSeqs(f.events(ex.ID)); !slices.Equal(got, []int64{1, 2, 3}) {
			f.t.Errorf("event seqs = %v after stale writes, want 1..3", got)
		}

		// The current attempt writes the same seqs.
		cur := progressEvent(second, 4, progress(1, 2, 50))
		checkDropped(f.t, f.append(cur), false)
		want := *before
		want.Progress, want.LastSeq = cur.Progress, 4
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvent(f.t, f.event(ex.ID, 4), cur)
	}},

	{"FencesNotRunning", func(f *fixture) {
		for _, final := range []conveyor.EventType{conveyor.EventCompleted, conveyor.EventFailed, conveyor.EventCancelled} {
			ex := f.start("alpha")
			f.append(finalEvent(ex, final, 2))
			before := f.get(ex.ID)
			checkDropped(f.t, f.append(progressEvent(ex, 3, progress(1, 2, 50)), finalEvent(ex, conveyor.EventCompleted, 4), finalEvent(ex, conveyor.EventRetrying, 5)),
				true, true, true)
			checkExecution(f.t, f.get(ex.ID), before)
			if got := eventSeqs(f.events(ex.ID)); !slices.Equal(got, []int64{1, 2}) {
				f.t.Errorf("%s execution: event seqs = %v after more writes, want 1, 2", final, got)
			}
		}

		pending := f.create("alpha")
		checkDropped(f.t, f.append(
			progressEvent(pending, 1, progress(1, 2, 50)),
			conveyor.Event{Type: conveyor.EventProgress, ExecutionID: pending.ID, Seq: 1, Time: at(101), Attempt: 1, Progress: progress(1, 2, 50)},
			conveyor.Event{Type: conveyor.EventCompleted, ExecutionID: pending.ID, Seq: 1, Time: at(101), Attempt: 1},
		), true, true, true)
		checkExecution(f.t, f.get(pending.ID), pending)
		if evs := f.events(pending.ID); len(evs) != 0 {
			f.t.Errorf("pending execution got events %v", eventSeqs(evs))
		}
	}},

	{"DropsUnknownExecution", func(f *fixture) {
		ex := f.start("alpha")
		var writes []conveyor.Event
		for _, id := range unknownIDs {
			writes = append(writes, conveyor.Event{Type: conveyor.EventProgress, ExecutionID: id, Seq: 2, Time: at(102), Attempt: 1, Progress: progress(1, 2, 50)})
		}
		ok := progressEvent(ex, 2, progress(1, 2, 50))
		dropped := make([]bool, len(writes)+1) // all but ok, the last
		for i := range writes {
			dropped[i] = true
		}
		checkDropped(f.t, f.append(append(writes, ok)...), dropped...)
		if got := f.get(ex.ID); got.LastSeq != 2 {
			f.t.Errorf("LastSeq = %d, want 2: a write for an unknown execution must not sink the batch", got.LastSeq)
		}
		for _, id := range unknownIDs {
			if evs := f.events(id); len(evs) != 0 {
				f.t.Errorf("unknown execution %s got events %v", id, eventSeqs(evs))
			}
		}
	}},

	{"DropsReplayedSeq", func(f *fixture) {
		// A write whose seq is not after LastSeq is a replay: dropped, not
		// an error, so it cannot sink the rest of its batch.
		ex := f.start("alpha")
		first := progressEvent(ex, 2, progress(1, 2, 25))
		f.append(first)
		next := progressEvent(ex, 3, progress(1, 2, 40))
		// The same seq twice in one batch: the second is a replay too.
		again := progressEvent(ex, 4, progress(1, 2, 50))
		checkDropped(f.t, f.append(progressEvent(ex, 2, progress(1, 2, 30)), progressEvent(ex, 1, progress(1, 2, 35)), next, again, again),
			true, true, false, false, true)

		want := *ex
		want.Progress, want.LastSeq = again.Progress, 4
		checkExecution(f.t, f.get(ex.ID), &want)
		evs := f.events(ex.ID)
		if got := eventSeqs(evs); !slices.Equal(got, []int64{1, 2, 3, 4}) {
			f.t.Fatalf("event seqs = %v, want 1..4", got)
		}
		checkEvent(f.t, evs[1], first)
	}},

	{"Batch", func(f *fixture) {
		// One call carries interleaved writes for several executions.
		exs := []*conveyor.Execution{f.start("alpha"), f.start("beta"), f.start("alpha")}
		var writes []conveyor.Event
		for seq := int64(2); seq <= 11; seq++ {
			for _, ex := range exs {
				writes = append(writes, progressEvent(ex, seq, progress(int(seq), 11, float64(seq)*9)))
			}
		}
		f.append(writes...)
		for _, ex := range exs {
			got := f.get(ex.ID)
			if got.LastSeq != 11 || got.Progress == nil || got.Progress.CurrentStep != 11 {
				f.t.Errorf("%s: last seq %d, progress %s; want 11 at step 11", ex.ID, got.LastSeq, toJSON(got.Progress))
			}
			if n := len(f.events(ex.ID)); n != 11 {
				f.t.Errorf("%s: %d events, want 11", ex.ID, n)
			}
		}
	}},

	{"Invalid", func(f *fixture) {
		// A malformed write rejects the whole batch before anything is
		// written, even the valid writes in it.
		ex := f.start("alpha")
		cases := []struct {
			name   string
			change func(ev *conveyor.Event)
		}{
			{"no execution id", func(ev *conveyor.Event) { ev.ExecutionID = "" }},
			{"no type", func(ev *conveyor.Event) { ev.Type = "" }},
			{"status type", func(ev *conveyor.Event) { ev.Type = conveyor.EventStatus }},
			{"error type", func(ev *conveyor.Event) { ev.Type = conveyor.EventError }},
			{"seq 0", func(ev *conveyor.Event) { ev.Seq = 0 }},
			{"negative seq", func(ev *conveyor.Event) { ev.Seq = -1 }},
			{"result not JSON", func(ev *conveyor.Event) { ev.Result = json.RawMessage(`{"a":`) }},
			{"no time", func(ev *conveyor.Event) { ev.Time = time.Time{} }},
		}
		for _, c := range cases {
			bad := progressEvent(ex, 3, progress(1, 2, 60))
			c.change(&bad)
			err := f.s.Append(f.ctx, []conveyor.Event{progressEvent(ex, 2, progress(1, 2, 50)), bad})
			wantCode(f.t, "Append with "+c.name, err, conveyor.EINVALID)
		}
		checkExecution(f.t, f.get(ex.ID), ex)
		if n := len(f.events(ex.ID)); n != 1 {
			f.t.Errorf("%d events after rejected batches, want 1", n)
		}
	}},

	{"Empty", func(f *fixture) {
		f.append()
	}},
}

var eventsCases = []testCase{
	{"AfterAndLimit", func(f *fixture) {
		ex := f.start("alpha")
		all := f.events(ex.ID)
		for seq := int64(2); seq <= 10; seq++ {
			ev := progressEvent(ex, seq, progress(int(seq), 10, float64(seq)*9.5))
			f.append(ev)
			all = append(all, ev)
		}
		checkEvents(f.t, f.events(ex.ID), all)

		cases := []struct {
			after int64
			limit int
			want  []conveyor.Event
		}{
			{0, 100, all},
			{0, 3, all[:3]},
			{3, 4, all[3:7]},
			{8, 100, all[8:]},
			{9, 1, all[9:]},
			{10, 5, nil},
			{50, 5, nil},
		}
		for _, c := range cases {
			got, err := f.s.Events(f.ctx, ex.ID, c.after, c.limit)
			if err != nil {
				f.t.Fatalf("Events(after %d, limit %d): %v", c.after, c.limit, err)
			}
			if !slices.Equal(eventSeqs(got), eventSeqs(c.want)) {
				f.t.Errorf("Events(after %d, limit %d) = seqs %v, want %v", c.after, c.limit, eventSeqs(got), eventSeqs(c.want))
				continue
			}
			checkEvents(f.t, got, c.want)
		}
	}},

	{"OnlyOwn", func(f *fixture) {
		a, b := f.start("alpha"), f.start("alpha")
		f.append(progressEvent(a, 2, progress(1, 2, 50)), progressEvent(b, 2, progress(1, 2, 10)), progressEvent(b, 3, progress(1, 2, 20)))
		for ex, n := range map[*conveyor.Execution]int{a: 2, b: 3} {
			evs := f.events(ex.ID)
			if len(evs) != n {
				f.t.Errorf("%s: %d events, want %d", ex.ID, len(evs), n)
			}
			for _, ev := range evs {
				if ev.ExecutionID != ex.ID {
					f.t.Errorf("Events(%s) returned an event of %s", ex.ID, ev.ExecutionID)
				}
			}
		}
	}},

	{"Unknown", func(f *fixture) {
		f.start("alpha")
		for _, id := range unknownIDs {
			evs, err := f.s.Events(f.ctx, id, 0, 10)
			if err != nil || len(evs) != 0 {
				f.t.Errorf("Events(%s) = %v, %v; want none, nil", id, eventSeqs(evs), err)
			}
		}
	}},
}
