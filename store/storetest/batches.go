package storetest

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// newBatch returns a batch of n new members (not stored), the batch
// tagged batchTags and member i tagged {"i": i}.
func (f *fixture) newBatch(n int, batchTags conveyor.Tags) (*conveyor.Batch, []*conveyor.Execution) {
	f.n++
	b := &conveyor.Batch{ID: fmt.Sprintf("b0000000-0000-7000-8000-%012d", f.n), CreatedAt: at(f.n), Tags: batchTags}
	es := make([]*conveyor.Execution, n)
	for i := range es {
		es[i] = f.newExecution("alpha")
		es[i].BatchID = &b.ID
		es[i].Tags = conveyor.MemberTags(batchTags, conveyor.Tags{"i": fmt.Sprint(i)})
	}
	return b, es
}

func (f *fixture) createBatch(n int, batchTags conveyor.Tags) (*conveyor.Batch, []*conveyor.Execution) {
	f.t.Helper()
	b, es := f.newBatch(n, batchTags)
	if err := f.s.CreateBatch(f.ctx, b, es); err != nil {
		f.t.Fatalf("CreateBatch: %v", err)
	}
	return b, es
}

func (f *fixture) getBatch(id string) *conveyor.Batch {
	f.t.Helper()
	b, err := f.s.GetBatch(f.ctx, id)
	if err != nil {
		f.t.Fatalf("GetBatch %s: %v", id, err)
	}
	return b
}

// checkBatch fails unless the stored batch has the counts, status and
// percentage (to 0.01).
func (f *fixture) checkBatch(id string, counts conveyor.Counts, status conveyor.Status, pct float64) *conveyor.Batch {
	f.t.Helper()
	b := f.getBatch(id)
	if b.Counts != counts || b.Status != status || math.Abs(b.Progress.Percentage-pct) > 0.01 {
		f.t.Errorf("batch: counts %+v, %s, %.2f%%; want %+v, %s, %.2f%%", b.Counts, b.Status, b.Progress.Percentage, counts, status, pct)
	}
	if (b.FinishedAt != nil) != status.Final() {
		f.t.Errorf("batch %s: finished at %v", status, b.FinishedAt)
	}
	return b
}

var batchCases = []testCase{
	{"RoundTrip", func(f *fixture) {
		b, es := f.createBatch(3, conveyor.Tags{"tenant": "acme", "i": "batch"})
		got := f.checkBatch(b.ID, conveyor.Counts{Pending: 3}, conveyor.StatusPending, 0)
		if got.ID != b.ID || got.Total != 3 || !got.CreatedAt.Equal(b.CreatedAt) || got.Tags["tenant"] != "acme" || len(got.Tags) != 2 {
			f.t.Errorf("GetBatch = %+v, want %+v with total 3", got, b)
		}
		for i, want := range es {
			ex := f.get(want.ID)
			checkExecution(f.t, ex, want)
			if ex.Tags["i"] != fmt.Sprint(i) || ex.Tags["tenant"] != "acme" {
				t := ex.Tags
				f.t.Errorf("member %d tags %v: want the batch's with its own winning", i, t)
			}
		}
		page := f.list(conveyor.ListFilter{Batch: b.ID})
		if got, want := executionIDs(page.Executions), reversed(es); !slices.Equal(got, want) {
			f.t.Errorf("members listed %v, want newest first %v", got, want)
		}
		f.create("alpha") // not a member
		if n := len(f.list(conveyor.ListFilter{Batch: b.ID}).Executions); n != 3 {
			f.t.Errorf("%d members listed, want 3", n)
		}
		if c := f.claim(10, at(60)); len(c) != 4 || c[0].Execution.ID != es[0].ID {
			f.t.Errorf("claimed %v, want the members first, in order", claimIDs(c))
		}
	}},

	{"AllOrNothing", func(f *fixture) {
		existing := f.create("alpha")
		b, es := f.newBatch(3, nil)
		es[2].ID = existing.ID
		wantCode(f.t, "CreateBatch with an existing execution id", f.s.CreateBatch(f.ctx, b, es), conveyor.ECONFLICT)

		b, es = f.newBatch(3, nil)
		es[1].Input = []byte(`[1]`)
		es[1].Tags = conveyor.Tags{"Bad": "x"}
		err := f.s.CreateBatch(f.ctx, b, es)
		wantCode(f.t, "CreateBatch with a bad member", err, conveyor.EINVALID)
		if msg := conveyor.ErrorMessage(err); !strings.HasPrefix(msg, "executions[1]: ") {
			f.t.Errorf("message %q does not name executions[1]", msg)
		}
		b, _ = f.newBatch(0, nil)
		wantCode(f.t, "CreateBatch with no members", f.s.CreateBatch(f.ctx, b, nil), conveyor.EINVALID)

		dup, _ := f.createBatch(1, nil)
		_, more := f.newBatch(1, nil)
		more[0].BatchID = &dup.ID
		wantCode(f.t, "CreateBatch with an existing batch id", f.s.CreateBatch(f.ctx, dup, more), conveyor.ECONFLICT)

		if page := f.list(conveyor.ListFilter{}); len(page.Executions) != 2 {
			f.t.Errorf("%d executions after refused batches, want 2 (one alone, one batch of one)", len(page.Executions))
		}
		if page, err := f.s.ListBatches(f.ctx, conveyor.BatchFilter{}); err != nil || len(page.Batches) != 1 {
			f.t.Errorf("ListBatches after refused batches = %v, %v; want only the one created", page, err)
		}
	}},

	{"CountsFollowEveryStatusChange", func(f *fixture) {
		b, es := f.createBatch(4, nil)
		claims := f.claim(2, at(60))
		f.checkBatch(b.ID, conveyor.Counts{Pending: 2, Running: 2}, conveyor.StatusRunning, 0)

		a, c := claims[0].Execution, claims[1].Execution
		f.append(progressEvent(a, 2, progress(1, 2, 50)))
		f.append(progressEvent(c, 2, &conveyor.Progress{CurrentStep: 1})) // unknown total: 0
		f.checkBatch(b.ID, conveyor.Counts{Pending: 2, Running: 2}, conveyor.StatusRunning, 50.0/4)

		f.append(finalEvent(a, conveyor.EventCompleted, 3))
		f.checkBatch(b.ID, conveyor.Counts{Pending: 2, Running: 1, Completed: 1}, conveyor.StatusRunning, 100.0/4)

		retry := finalEvent(c, conveyor.EventRetrying, 3)
		retry.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")
		f.append(retry)
		f.checkBatch(b.ID, conveyor.Counts{Pending: 3, Completed: 1}, conveyor.StatusRunning, 100.0/4)

		f.cancel(es[3].ID, at(70)) // pending: cancelled at once
		f.checkBatch(b.ID, conveyor.Counts{Pending: 2, Completed: 1, Cancelled: 1}, conveyor.StatusRunning, 200.0/4)

		for _, cl := range f.claim(2, at(80)) {
			failed := finalEvent(cl.Execution, conveyor.EventFailed, cl.Execution.LastSeq+1)
			failed.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "no")
			f.append(failed)
		}
		got := f.checkBatch(b.ID, conveyor.Counts{Completed: 1, Failed: 2, Cancelled: 1}, conveyor.StatusFailed, 100)
		if last := f.get(es[2].ID).FinishedAt; got.FinishedAt == nil || last == nil || !got.FinishedAt.Equal(*last) {
			f.t.Errorf("batch finished at %v, want when its last member did (%v)", got.FinishedAt, last)
		}
	}},

	{"CountsFollowRecovery", func(f *fixture) {
		b, _ := f.createBatch(2, nil)
		f.claim(2, at(60))
		if _, err := f.s.RecoverInterrupted(f.ctx, at(90), noRetries); err != nil {
			f.t.Fatal(err)
		}
		f.checkBatch(b.ID, conveyor.Counts{Failed: 2}, conveyor.StatusFailed, 100)
	}},

	{"Status", func(f *fixture) {
		for _, tc := range []struct {
			finals []conveyor.EventType
			want   conveyor.Status
		}{
			{[]conveyor.EventType{conveyor.EventCompleted, conveyor.EventCompleted}, conveyor.StatusCompleted},
			{[]conveyor.EventType{conveyor.EventCompleted, conveyor.EventCancelled}, conveyor.StatusCancelled},
			{[]conveyor.EventType{conveyor.EventCancelled, conveyor.EventFailed}, conveyor.StatusFailed},
		} {
			b, _ := f.createBatch(len(tc.finals), nil)
			for i, cl := range f.claim(len(tc.finals), at(60)) {
				f.append(finalEvent(cl.Execution, tc.finals[i], 2))
			}
			if got := f.getBatch(b.ID); got.Status != tc.want || got.FinishedAt == nil || got.Progress.Percentage != 100 {
				f.t.Errorf("members %v: batch %s at %v%%, finished %v; want %s", tc.finals, got.Status, got.Progress.Percentage, got.FinishedAt, tc.want)
			}
			page, err := f.s.ListBatches(f.ctx, conveyor.BatchFilter{Status: tc.want})
			if err != nil || len(page.Batches) != 1 || page.Batches[0].ID != b.ID {
				f.t.Errorf("ListBatches(status %s) = %v, %v; want %s", tc.want, page, err, b.ID)
			}
		}
	}},

	{"Cancel", func(f *fixture) {
		b, es := f.createBatch(3, nil)
		running := f.claimOne(es[0].ID, at(60)).Execution
		done, err := f.s.CancelBatch(f.ctx, b.ID, at(70))
		if err != nil {
			f.t.Fatal(err)
		}
		if !slices.Equal(done.Requested, []string{running.ID}) || len(done.Cancelled) != 2 {
			f.t.Fatalf("CancelBatch requested %v and cancelled %d, want %s and 2", done.Requested, len(done.Cancelled), running.ID)
		}
		for _, ev := range done.Cancelled {
			checkEvent(f.t, f.event(ev.ExecutionID, ev.Seq), ev)
			if ev.Type != conveyor.EventCancelled {
				f.t.Errorf("event %s, want cancelled", ev.Type)
			}
		}
		f.checkBatch(b.ID, conveyor.Counts{Running: 1, Cancelled: 2}, conveyor.StatusRunning, 200.0/3)
		if !f.get(running.ID).CancelRequested {
			f.t.Error("the running member got no cancel request")
		}
		if done.Batch == nil || done.Batch.Counts.Cancelled != 2 {
			f.t.Errorf("CancelBatch returned batch %+v", done.Batch)
		}

		// The runner then writes its final event; a completion after the
		// cancel was recorded becomes cancelled.
		f.append(finalEvent(running, conveyor.EventCompleted, 2))
		f.checkBatch(b.ID, conveyor.Counts{Cancelled: 3}, conveyor.StatusCancelled, 100)

		_, err = f.s.CancelBatch(f.ctx, b.ID, at(80))
		wantCode(f.t, "CancelBatch of a final batch", err, conveyor.ECONFLICT)
		_, err = f.s.CancelBatch(f.ctx, "no-such-batch", at(80))
		wantCode(f.t, "CancelBatch of an unknown batch", err, conveyor.ENOTFOUND)
		_, err = f.s.GetBatch(f.ctx, "no-such-batch")
		wantCode(f.t, "GetBatch of an unknown batch", err, conveyor.ENOTFOUND)
		_, err = f.s.GetBatch(f.ctx, "bad\x00id")
		wantCode(f.t, "GetBatch of an unstorable id", err, conveyor.ENOTFOUND)
	}},

	{"List", func(f *fixture) {
		var ids []string
		for i := range 5 {
			b, _ := f.createBatch(1, conveyor.Tags{"parity": []string{"even", "odd"}[i%2]})
			ids = append([]string{b.ID}, ids...)
		}
		var got []string
		bf := conveyor.BatchFilter{Limit: 2}
		for {
			page, err := f.s.ListBatches(f.ctx, bf)
			if err != nil {
				f.t.Fatal(err)
			}
			for _, b := range page.Batches {
				got = append(got, b.ID)
				if b.Total != 1 || b.Status != conveyor.StatusPending {
					f.t.Errorf("listed batch %+v", b)
				}
			}
			if page.NextCursor == nil {
				break
			}
			bf.Cursor = *page.NextCursor
		}
		if !slices.Equal(got, ids) {
			f.t.Errorf("listed %v, want newest first %v", got, ids)
		}
		page, err := f.s.ListBatches(f.ctx, conveyor.BatchFilter{Tags: []conveyor.Tag{tag("parity", "odd")}})
		if err != nil || len(page.Batches) != 2 || page.Batches[0].ID != ids[1] {
			f.t.Errorf("ListBatches by tag = %+v, %v; want the 2 odd ones, newest first", page, err)
		}
		page, err = f.s.ListBatches(f.ctx, conveyor.BatchFilter{Status: conveyor.StatusRunning})
		if err != nil || len(page.Batches) != 0 {
			f.t.Errorf("ListBatches(running) = %+v, %v; want none", page, err)
		}
		_, err = f.s.ListBatches(f.ctx, conveyor.BatchFilter{Cursor: "x"})
		wantCode(f.t, "ListBatches with a bad cursor", err, conveyor.EINVALID)
	}},
}
