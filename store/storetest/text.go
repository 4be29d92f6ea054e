package storetest

import (
	"encoding/json"

	"github.com/conveyor-run/conveyor"
)

// badTexts are strings no store keeps as text: PostgreSQL refuses a NUL in
// text and in jsonb (as \u0000) and invalid UTF-8 anywhere. Every store
// refuses them the same way, so an embedder learns it on SQLite too.
var badTexts = map[string]string{"NUL": "boom\x00here", "invalid UTF-8": "boom\xffhere"}

var textCases = []testCase{
	{"AppendRefusesUnstorableText", func(f *fixture) {
		for what, bad := range badTexts {
			ex := f.start("alpha")
			p := progress(1, 2, 10)
			p.Message = bad
			failed := finalEvent(ex, conveyor.EventFailed, 3)
			failed.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "%s", bad)
			named := progress(1, 2, 10)
			named.CurrentStepName = bad
			metric := progress(1, 2, 10)
			metric.Metrics = map[string]float64{bad: 1}
			for _, ev := range []conveyor.Event{
				progressEvent(ex, 2, p), failed, progressEvent(ex, 2, named), progressEvent(ex, 2, metric),
			} {
				err := f.s.Append(f.ctx, []conveyor.Event{ev})
				wantCode(f.t, "Append of a "+string(ev.Type)+" event with "+what, err, conveyor.EINVALID)
			}
			if got := f.get(ex.ID); got.Status != conveyor.StatusRunning || got.LastSeq != 1 {
				f.t.Errorf("%s: after refused writes: status %s, last seq %d; want running, 1", what, got.Status, got.LastSeq)
			}
		}
	}},

	{"AppendLogsRefusesUnstorableText", func(f *fixture) {
		ex := f.start("alpha")
		for what, bad := range badTexts {
			err := f.s.AppendLogs(f.ctx, []conveyor.LogLine{
				{ExecutionID: ex.ID, Time: at(50), Step: "s", Stream: "stdout", Line: "fine"},
				{ExecutionID: ex.ID, Time: at(50), Step: "s", Stream: "stdout", Line: bad},
			})
			wantCode(f.t, "AppendLogs with "+what, err, conveyor.EINVALID)
		}
		if lines := f.logs(ex.ID); len(lines) != 0 {
			f.t.Errorf("Logs after refused batches = %d lines, want none", len(lines))
		}
	}},

	{"CreateRefusesInvalidUTF8Input", func(f *fixture) {
		ex := f.newExecution("alpha")
		ex.Input = json.RawMessage("{\"s\": \"\xff\"}")
		wantCode(f.t, "CreateExecution with invalid UTF-8 input", f.s.CreateExecution(f.ctx, ex), conveyor.EINVALID)
		good := f.newExecution("alpha")
		err := f.s.CreateExecutions(f.ctx, []*conveyor.Execution{good, ex})
		wantCode(f.t, "CreateExecutions with one invalid UTF-8 input", err, conveyor.EINVALID)
		if _, err := f.s.GetExecution(f.ctx, good.ID); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
			f.t.Errorf("GetExecution of the good half of a refused batch: %v, want not found", err)
		}
		// A NUL escaped in JSON is valid JSON text, and kept byte for byte.
		nul := f.newExecution("alpha")
		nul.Input = json.RawMessage(`{"s": "a\u0000b"}`)
		if err := f.s.CreateExecution(f.ctx, nul); err != nil {
			f.t.Fatalf("CreateExecution with \\u0000 in input: %v", err)
		}
		if got := f.get(nul.ID); string(got.Input) != string(nul.Input) {
			f.t.Errorf("input = %s, want %s", got.Input, nul.Input)
		}
	}},

	{"LookupsOfUnstorableIDsAreNotFound", func(f *fixture) {
		f.start("alpha")
		for _, id := range badTexts {
			_, err := f.s.GetExecution(f.ctx, id)
			wantCode(f.t, "GetExecution", err, conveyor.ENOTFOUND)
			_, _, err = f.s.Cancel(f.ctx, id, at(40))
			wantCode(f.t, "Cancel", err, conveyor.ENOTFOUND)
			if evs, err := f.s.Events(f.ctx, id, 0, 10); err != nil || len(evs) != 0 {
				f.t.Errorf("Events(%q) = %d events, %v; want none, nil", id, len(evs), err)
			}
			if page, err := f.s.Logs(f.ctx, id, 0, conveyor.MaxLogPageBytes); err != nil || len(page.Lines) != 0 || page.More {
				f.t.Errorf("Logs(%q) = %+v, %v; want no lines", id, page, err)
			}
			_, err = f.s.ListExecutions(f.ctx, conveyor.ListFilter{Pipeline: id})
			wantCode(f.t, "ListExecutions by an unstorable pipeline name", err, conveyor.EINVALID)
		}
	}},
}

var cancelWinsCases = []testCase{
	{"CompletedAfterCancelIsCancelled", func(f *fixture) {
		// A cancel recorded before the runner's completed event wins: the
		// store keeps a cancelled event instead and says so in the write.
		ex := f.start("alpha")
		f.cancel(ex.ID, at(40))
		done := finalEvent(ex, conveyor.EventCompleted, 2)
		done.Status = conveyor.StatusCompleted
		done.Progress = progress(2, 2, 100)
		done.Result = json.RawMessage(`{"ok": true}`)
		writes := []conveyor.Event{done}
		if err := f.s.Append(f.ctx, writes); err != nil {
			f.t.Fatal(err)
		}
		want := done
		want.CancelInstead()
		checkEvent(f.t, writes[0], want)
		if pct := *writes[0].Progress.Percentage; pct >= 100 {
			f.t.Errorf("cancelled event at %v%%, want below 100", pct)
		}
		checkEvents(f.t, f.events(ex.ID)[1:], []conveyor.Event{want})
		got := f.get(ex.ID)
		if got.Status != conveyor.StatusCancelled || got.Result != nil || got.LastSeq != 2 {
			f.t.Errorf("execution: status %s, result %s, last seq %d; want cancelled, none, 2", got.Status, got.Result, got.LastSeq)
		}
	}},

	{"CompletedInBatchAfterCancel", func(f *fixture) {
		// The same in a batch with others' writes, which are untouched.
		cancelled, other := f.start("alpha"), f.start("alpha")
		f.cancel(cancelled.ID, at(40))
		writes := []conveyor.Event{
			progressEvent(cancelled, 2, progress(1, 2, 40)),
			finalEvent(cancelled, conveyor.EventCompleted, 3),
			finalEvent(other, conveyor.EventCompleted, 2),
		}
		if err := f.s.Append(f.ctx, writes); err != nil {
			f.t.Fatal(err)
		}
		if writes[1].Type != conveyor.EventCancelled || writes[2].Type != conveyor.EventCompleted || writes[0].Type != conveyor.EventProgress {
			f.t.Errorf("writes after Append are %s, %s, %s; want progress, cancelled, completed", writes[0].Type, writes[1].Type, writes[2].Type)
		}
		if got := f.get(cancelled.ID).Status; got != conveyor.StatusCancelled {
			f.t.Errorf("cancelled execution is %s", got)
		}
		if got := f.get(other.ID).Status; got != conveyor.StatusCompleted {
			f.t.Errorf("other execution is %s", got)
		}
	}},

	{"FencedCompletedStaysCompletedInWrites", func(f *fixture) {
		// A stale attempt's completed write is dropped, not rewritten.
		ex := f.start("alpha")
		f.cancel(ex.ID, at(40))
		stale := finalEvent(ex, conveyor.EventCompleted, 2)
		stale.Attempt = ex.Attempt + 1
		writes := []conveyor.Event{stale}
		if err := f.s.Append(f.ctx, writes); err != nil {
			f.t.Fatal(err)
		}
		if writes[0].Type != conveyor.EventCompleted {
			f.t.Errorf("a fenced write became %s", writes[0].Type)
		}
		if got := f.get(ex.ID); got.Status != conveyor.StatusRunning {
			f.t.Errorf("execution is %s after a fenced write, want running", got.Status)
		}
	}},
}
