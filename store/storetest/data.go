package storetest

import (
	"encoding/json"
	"time"

	"github.com/conveyor-run/conveyor"
)

var dataCases = []testCase{
	{"DataEventsKeepTheWholeData", func(f *fixture) {
		// A data event carries all of the data: the store keeps the
		// newest whole, and progress events leave it alone.
		ex := f.start("alpha")
		d1 := dataEvent(ex, 2, `{"rows": 1200, "phase": "load"}`)
		d2 := dataEvent(ex, 3, `{"rows": 2400, "phase": "load", "url": "https://example.com/r"}`)
		p := progressEvent(ex, 4, progress(1, 2, 25))
		f.append(d1, d2, p)
		want := *ex
		want.Data, want.Progress, want.LastSeq = d2.Data, p.Progress, 4
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvents(f.t, f.eventsAfter(ex.ID, 1), []conveyor.Event{d1, d2, p})

		// The data outlives the attempt: a retry and the next attempt
		// keep it, and so does the final event.
		f.append(finalEvent(ex, conveyor.EventRetrying, 5))
		again := f.claimOne(ex.ID, at(50)).Execution
		if !jsonEqual(again.Data, d2.Data) {
			f.t.Errorf("claimed again: data = %s, want %s", again.Data, d2.Data)
		}
		done := finalEvent(again, conveyor.EventCompleted, 7)
		f.append(done)
		if got := f.get(ex.ID); !jsonEqual(got.Data, d2.Data) || got.Status != conveyor.StatusCompleted {
			f.t.Errorf("completed: status %s, data %s; want completed, %s", got.Status, got.Data, d2.Data)
		}
	}},

	{"StalledUntilTheNextReport", func(f *fixture) {
		ex := f.start("alpha")
		since := at(3)
		stalled := stalledEvent(ex, 2, "load", since)
		f.append(stalled)
		want := *ex
		want.LastSeq, want.StalledSince = 2, &since
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvent(f.t, f.event(ex.ID, 2), stalled)

		// Any report ends the stall: a progress event here.
		p := progressEvent(ex, 3, progress(1, 2, 30))
		f.append(p)
		want.LastSeq, want.Progress, want.StalledSince = 3, p.Progress, nil
		checkExecution(f.t, f.get(ex.ID), &want)

		// A data event too; and the end of the attempt.
		f.append(stalledEvent(ex, 4, "load", at(6)))
		d := dataEvent(ex, 5, `{"phase": "upload"}`)
		f.append(d)
		want.LastSeq, want.Data = 5, d.Data
		checkExecution(f.t, f.get(ex.ID), &want)
		f.append(stalledEvent(ex, 6, "load", at(8)))
		failed := finalEvent(ex, conveyor.EventFailed, 7)
		failed.Error = conveyor.Errorf(conveyor.ESTALLED, "step %q reported nothing for 30s", "load")
		f.append(failed)
		if got := f.get(ex.ID); got.StalledSince != nil || got.Status != conveyor.StatusFailed {
			f.t.Errorf("failed: status %s, stalled since %v; want failed, nil", got.Status, got.StalledSince)
		}
	}},

	{"RecoveryEndsAStall", func(f *fixture) {
		ex := f.start("alpha")
		f.append(stalledEvent(ex, 2, "load", at(3)))
		if _, err := f.s.RecoverInterrupted(f.ctx, at(100), retriesOf(map[string]int{"alpha": 1})); err != nil {
			f.t.Fatalf("RecoverInterrupted: %v", err)
		}
		if got := f.get(ex.ID); got.StalledSince != nil || got.Status != conveyor.StatusPending {
			f.t.Errorf("recovered: status %s, stalled since %v; want pending, nil", got.Status, got.StalledSince)
		}
	}},

	{"ListsLeaveDataOutUnlessAsked", func(f *fixture) {
		ex := f.start("alpha")
		d := dataEvent(ex, 2, `{"rows": 1}`)
		f.append(d)
		if got := f.list(conveyor.ListFilter{}).Executions; len(got) != 1 || got[0].Data != nil {
			f.t.Fatalf("list: %d executions, data %s; want 1 without data", len(got), dataOf(got))
		}
		if got := f.list(conveyor.ListFilter{WithData: true}).Executions; len(got) != 1 || !jsonEqual(got[0].Data, d.Data) {
			f.t.Fatalf("list with data: %d executions, data %s; want 1 with %s", len(got), dataOf(got), d.Data)
		}
	}},

	{"BadDataIsRefused", func(f *fixture) {
		ex := f.start("alpha")
		for _, ev := range []conveyor.Event{
			dataEvent(ex, 2, `{"rows": `),
			dataEvent(ex, 2, "{\"a\": \"\xff\"}"),
			{Type: conveyor.EventStalled, ExecutionID: ex.ID, Seq: 2, Time: at(2), Attempt: ex.Attempt, Step: "load"}, // no since
		} {
			if err := f.s.Append(f.ctx, []conveyor.Event{ev}); conveyor.ErrorCode(err) != conveyor.EINVALID {
				f.t.Errorf("Append(%s %q) = %v, want EINVALID", ev.Type, ev.Data, err)
			}
		}
		if got := f.get(ex.ID); got.LastSeq != ex.LastSeq || got.Data != nil {
			f.t.Errorf("after refused writes: last seq %d, data %s; want %d, none", got.LastSeq, got.Data, ex.LastSeq)
		}
	}},
}

func dataEvent(ex *conveyor.Execution, seq int64, data string) conveyor.Event {
	return conveyor.Event{Type: conveyor.EventData, ExecutionID: ex.ID, Seq: seq, Time: at(int(seq)), Attempt: ex.Attempt, Data: json.RawMessage(data)}
}

func stalledEvent(ex *conveyor.Execution, seq int64, step string, since time.Time) conveyor.Event {
	return conveyor.Event{Type: conveyor.EventStalled, ExecutionID: ex.ID, Seq: seq, Time: at(int(seq)), Attempt: ex.Attempt, Step: step, Since: &since}
}

func dataOf(exs []*conveyor.Execution) []string {
	var d []string
	for _, ex := range exs {
		d = append(d, string(ex.Data))
	}
	return d
}
