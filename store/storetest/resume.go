package storetest

import (
	"encoding/json"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// Resume from a checkpoint: what SaveCheckpoints keeps, what it fences
// off, what a claim returns, and the progress a retry keeps.
var resumeCases = []testCase{
	{"CheckpointsAreKeptWithTheAttempt", func(f *fixture) {
		ex := f.start("alpha")
		cp1, cp2 := json.RawMessage(`{"row": 500, "file": "a.csv"}`), json.RawMessage(`{"row": 1000}`)
		writes := f.saveCheckpoints(checkpoint(ex, 1, ""), checkpoint(ex, 1, string(cp1)))
		checkCheckpointsDropped(f, writes, false, false)
		want := *ex
		want.ResumeStep, want.Checkpoint = 1, cp1
		checkExecution(f.t, f.get(ex.ID), &want)

		// A step that begins clears the last step's checkpoint; its own
		// replaces it. Neither is an event.
		f.saveCheckpoints(checkpoint(ex, 2, ""))
		want.ResumeStep, want.Checkpoint = 2, nil
		checkExecution(f.t, f.get(ex.ID), &want)
		f.saveCheckpoints(checkpoint(ex, 2, string(cp2)))
		want.Checkpoint = cp2
		checkExecution(f.t, f.get(ex.ID), &want)
		checkEvents(f.t, f.events(ex.ID), []conveyor.Event{startedEvent(ex)})

		// A handler's checkpoints are of step 0.
		h := f.start("agent")
		f.saveCheckpoints(checkpoint(h, 0, `"page-7"`))
		if got := f.get(h.ID); got.ResumeStep != 0 || string(got.Checkpoint) != `"page-7"` {
			f.t.Errorf("handler's checkpoint: step %d, %s; want 0, \"page-7\"", got.ResumeStep, got.Checkpoint)
		}
	}},

	{"TheClaimOfTheNextAttemptReturnsThem", func(f *fixture) {
		ex := f.start("alpha")
		p := progress(2, 3, 50)
		f.append(progressEvent(ex, 2, p))
		cp := `{"row": 500}`
		f.saveCheckpoints(checkpoint(ex, 2, ""), checkpoint(ex, 2, cp))
		// The retrying event of a resumable attempt carries its progress,
		// which the execution keeps for the next attempt.
		retry := finalEvent(ex, conveyor.EventRetrying, 3)
		retry.Error, retry.Progress = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky"), p
		f.append(retry)
		if got := f.get(ex.ID); got.Status != conveyor.StatusPending || !equalProgress(got.Progress, p) {
			f.t.Errorf("retrying: %s with progress %s; want pending with %s", got.Status, toJSON(got.Progress), toJSON(p))
		}

		c := f.claimOne(ex.ID, at(200))
		if got := c.Execution; got.Attempt != 2 || got.ResumeStep != 2 || !jsonEqual(got.Checkpoint, json.RawMessage(cp)) || !equalProgress(got.Progress, p) {
			f.t.Errorf("claimed: attempt %d, resume step %d, checkpoint %s, progress %s; want 2, 2, %s, %s",
				got.Attempt, got.ResumeStep, got.Checkpoint, toJSON(got.Progress), cp, toJSON(p))
		}
		// Nothing that a list shows carries the checkpoint.
		page := f.list(conveyor.ListFilter{WithInput: true, WithResult: true, WithData: true})
		if len(page.Executions) != 1 || page.Executions[0].Checkpoint != nil {
			f.t.Errorf("list: %d executions, checkpoint %s; want 1 without", len(page.Executions), page.Executions[0].Checkpoint)
		}
	}},

	{"StaleAttemptsAreFencedOff", func(f *fixture) {
		ex := f.start("alpha")
		f.saveCheckpoints(checkpoint(ex, 1, `{"n": 1}`))
		retry := finalEvent(ex, conveyor.EventRetrying, 2)
		retry.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")
		f.append(retry)
		// Pending: no attempt runs, so none writes.
		checkCheckpointsDropped(f, f.saveCheckpoints(checkpoint(ex, 1, `{"n": 2}`)), true)

		next := f.claimOne(ex.ID, at(200)).Execution
		done := f.start("alpha")
		f.append(finalEvent(done, conveyor.EventCompleted, 2))
		// In one batch: the stale attempt's write, the current one's, a
		// write of a final execution and one of an unknown execution.
		unknown := conveyor.Checkpoint{ExecutionID: executionID(999999), Attempt: 1, Step: 1, Data: json.RawMessage(`1`)}
		writes := f.saveCheckpoints(checkpoint(ex, 2, `{"n": 3}`), checkpoint(next, 1, `{"n": 4}`),
			checkpoint(done, 1, `{"n": 5}`), unknown)
		checkCheckpointsDropped(f, writes, true, false, true, true)
		if got := f.get(ex.ID); got.ResumeStep != 1 || !jsonEqual(got.Checkpoint, json.RawMessage(`{"n": 4}`)) {
			f.t.Errorf("after the batch: step %d, checkpoint %s; want 1, {\"n\": 4}", got.ResumeStep, got.Checkpoint)
		}
		if got := f.get(done.ID); got.ResumeStep != 0 || got.Checkpoint != nil {
			f.t.Errorf("completed execution: step %d, checkpoint %s; want none", got.ResumeStep, got.Checkpoint)
		}
	}},

	{"TheLastWriteOfABatchWins", func(f *fixture) {
		ex := f.start("alpha")
		writes := f.saveCheckpoints(checkpoint(ex, 1, `{"n": 1}`), checkpoint(ex, 2, ""), checkpoint(ex, 2, `{"n": 2}`),
			checkpoint(ex, 3, ""))
		checkCheckpointsDropped(f, writes, false, false, false, false)
		if got := f.get(ex.ID); got.ResumeStep != 3 || got.Checkpoint != nil {
			f.t.Errorf("after the batch: step %d, checkpoint %s; want 3, none", got.ResumeStep, got.Checkpoint)
		}
	}},

	{"BadCheckpointsAreRefused", func(f *fixture) {
		ex := f.start("alpha")
		good := checkpoint(ex, 1, `{"n": 1}`)
		for _, bad := range []conveyor.Checkpoint{
			checkpoint(ex, 1, `{"n": `),
			checkpoint(ex, 1, `null`),
			checkpoint(ex, 1, "\"\xff\""),
			checkpoint(ex, 1, `"`+strings.Repeat("x", conveyor.MaxCheckpointBytes)+`"`),
			checkpoint(ex, -1, `{}`),
			{ExecutionID: ex.ID, Attempt: 0, Step: 1},
			{Attempt: 1, Step: 1},
		} {
			err := f.s.SaveCheckpoints(f.ctx, []conveyor.Checkpoint{good, bad})
			wantCode(f.t, "SaveCheckpoints of "+conveyor.TruncateUTF8(string(bad.Data), 20), err, conveyor.EINVALID)
		}
		if got := f.get(ex.ID); got.ResumeStep != 0 || got.Checkpoint != nil {
			f.t.Errorf("after refused batches: step %d, checkpoint %s; want none written", got.ResumeStep, got.Checkpoint)
		}
		// The largest checkpoint fits.
		largest := `"` + strings.Repeat("x", conveyor.MaxCheckpointBytes-2) + `"`
		f.saveCheckpoints(checkpoint(ex, 1, largest))
		if got := f.get(ex.ID); len(got.Checkpoint) != conveyor.MaxCheckpointBytes {
			f.t.Errorf("the largest checkpoint: %d bytes kept, want %d", len(got.Checkpoint), conveyor.MaxCheckpointBytes)
		}
	}},

	{"RecoveryKeepsTheProgressOfResumableAttempts", func(f *fixture) {
		resumable, fresh := f.start("resume"), f.start("resume")
		for _, ex := range []*conveyor.Execution{resumable, fresh} {
			f.append(progressEvent(ex, 2, progress(2, 3, 45)))
		}
		f.saveCheckpoints(checkpoint(resumable, 2, ""))
		before := f.get(resumable.ID)
		evs, err := f.s.RecoverInterrupted(f.ctx, at(1000), retriesOf(map[string]int{"resume": 1}))
		if err != nil {
			f.t.Fatalf("RecoverInterrupted: %v", err)
		}
		checkResumedProgress(f, evs, before, fresh.ID)
	}},
}

// sharedResumeCases are the resume cases of conveyor.SharedStore.
var sharedResumeCases = []sharedCase{
	{"RescueKeepsTheProgressOfResumableAttempts", func(f *sharedFixture) {
		resumable, fresh := f.start("resume"), f.start("resume")
		for _, ex := range []*conveyor.Execution{resumable, fresh} {
			f.append(progressEvent(ex, 2, progress(2, 3, 45)))
		}
		f.saveCheckpoints(checkpoint(resumable, 0, `{"page": 7}`))
		before := f.get(resumable.ID)
		byID := f.wantRescued(f.b, at(100000), retriesOf(map[string]int{"resume": 1}), resumable.ID, fresh.ID)
		checkResumedProgress(f.fixture, []conveyor.Event{byID[resumable.ID], byID[fresh.ID]}, before, fresh.ID)
		// The other node claims it with where it got to.
		c := f.claimOneOn(f.b, resumable.ID, at(100000).Add(retryWait))
		if got := c.Execution; !jsonEqual(got.Checkpoint, before.Checkpoint) || !equalProgress(got.Progress, before.Progress) {
			f.t.Errorf("claimed on node b: checkpoint %s, progress %s; want %s, %s", got.Checkpoint, toJSON(got.Progress), before.Checkpoint, toJSON(before.Progress))
		}
	}},
}

// checkResumedProgress checks the retrying events of an interruption
// (evs) and the executions after it: the resumable one, before, keeps its
// progress in both; the one with nothing recorded, fresh, has it cleared.
func checkResumedProgress(f *fixture, evs []conveyor.Event, before *conveyor.Execution, fresh string) {
	f.t.Helper()
	if len(evs) != 2 {
		f.t.Fatalf("%d events, want 2", len(evs))
	}
	for _, ev := range evs {
		want := (*conveyor.Progress)(nil)
		if ev.ExecutionID == before.ID {
			want = before.Progress
		}
		if ev.Type != conveyor.EventRetrying || !equalProgress(ev.Progress, want) {
			f.t.Errorf("%s: %s event with progress %s; want retrying with %s", ev.ExecutionID, ev.Type, toJSON(ev.Progress), toJSON(want))
		}
		if got := f.get(ev.ExecutionID); got.Status != conveyor.StatusPending || !equalProgress(got.Progress, want) {
			f.t.Errorf("%s: %s with progress %s; want pending with %s", ev.ExecutionID, got.Status, toJSON(got.Progress), toJSON(want))
		}
	}
	if got := f.get(before.ID); got.ResumeStep != before.ResumeStep || !jsonEqual(got.Checkpoint, before.Checkpoint) {
		f.t.Errorf("interrupted: step %d, checkpoint %s; want %d, %s kept", got.ResumeStep, got.Checkpoint, before.ResumeStep, before.Checkpoint)
	}
	if got := f.get(fresh); got.Resumable() {
		f.t.Errorf("%s recorded nothing but is resumable", fresh)
	}
}

// checkpoint is a checkpoint write of ex's attempt in step; data "" is
// none (the step began).
func checkpoint(ex *conveyor.Execution, step int, data string) conveyor.Checkpoint {
	c := conveyor.Checkpoint{ExecutionID: ex.ID, Attempt: ex.Attempt, Step: step}
	if data != "" {
		c.Data = json.RawMessage(data)
	}
	return c
}

// saveCheckpoints saves writes in one call and returns them as
// SaveCheckpoints left them.
func (f *fixture) saveCheckpoints(writes ...conveyor.Checkpoint) []conveyor.Checkpoint {
	f.t.Helper()
	if err := f.s.SaveCheckpoints(f.ctx, writes); err != nil {
		f.t.Fatalf("SaveCheckpoints: %v", err)
	}
	return writes
}

// checkCheckpointsDropped fails unless SaveCheckpoints marked exactly
// the writes that want says as dropped.
func checkCheckpointsDropped(f *fixture, writes []conveyor.Checkpoint, want ...bool) {
	f.t.Helper()
	for i, c := range writes {
		if c.Dropped != want[i] {
			f.t.Errorf("checkpoint write %d (%s attempt %d): Dropped = %v, want %v", i, c.ExecutionID, c.Attempt, c.Dropped, want[i])
		}
	}
}
