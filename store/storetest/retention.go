package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// kept makes an execution with something in every table an execution
// has rows in: tags, events (started, progress, data, final), log
// lines, data, and webhook deliveries of sub and of its own webhook. It
// ends with an event of type end at t (cancelled: a cancel while
// pending, at t).
func (f *fixture) kept(sub *conveyor.Webhook, end conveyor.EventType, t time.Time) *conveyor.Execution {
	f.t.Helper()
	ex := f.newExecution("alpha")
	ex.Tags = conveyor.Tags{"tenant": "acme", "n": fmt.Sprint(f.n)}
	ex.Webhook = &conveyor.ExecutionWebhook{URL: "https://own.example/hook", Events: allExecutionEvents}
	if err := f.s.CreateExecution(f.ctx, ex); err != nil {
		f.t.Fatalf("CreateExecution: %v", err)
	}
	if end == conveyor.EventCancelled {
		f.cancel(ex.ID, t)
	} else {
		ex = f.claimOne(ex.ID, t.Add(-time.Minute)).Execution
		f.append(progressEvent(ex, ex.LastSeq+1, progress(1, 2, 50)), dataEvent(ex, ex.LastSeq+2, `{"rows": 7}`))
		f.appendLogs(logLines(ex.ID, 0, 3))
		f.finishAt(ex.ID, end, t)
	}
	if ds := f.executionDeliveries(sub.ID, ex.ID); len(ds) == 0 {
		f.t.Fatalf("execution %s has no deliveries of %s to delete", ex.ID, sub.ID)
	}
	return f.get(ex.ID)
}

// executionDeliveries are the deliveries of subscription webhookID that
// report execution id.
func (f *fixture) executionDeliveries(webhookID, id string) []*conveyor.Delivery {
	f.t.Helper()
	var ds []*conveyor.Delivery
	for _, d := range f.deliveries(webhookID) {
		if d.ExecutionID != nil && *d.ExecutionID == id {
			ds = append(ds, d)
		}
	}
	return ds
}

// wantDeleted fails unless nothing is left of the executions exs, in any
// table: not the execution, its events, log lines, tags, nor webhook
// deliveries of sub or of its own webhook.
func (f *fixture) wantDeleted(sub *conveyor.Webhook, exs ...*conveyor.Execution) {
	f.t.Helper()
	own := map[string]bool{}
	for _, d := range f.claimDeliveries(fmt.Sprintf("check-%d", f.n), 1000, 1000) {
		if d.ExecutionID != nil && d.WebhookID == nil {
			own[*d.ExecutionID] = true
		}
	}
	for _, ex := range exs {
		if _, err := f.s.GetExecution(f.ctx, ex.ID); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
			f.t.Errorf("GetExecution %s after its delete: %v, want ENOTFOUND", ex.ID, err)
		}
		if evs := f.events(ex.ID); len(evs) > 0 {
			f.t.Errorf("execution %s: %d events left after its delete", ex.ID, len(evs))
		}
		if lines := f.logs(ex.ID); len(lines) > 0 {
			f.t.Errorf("execution %s: %d log lines left after its delete", ex.ID, len(lines))
		}
		if page := f.list(conveyor.ListFilter{Tags: []conveyor.Tag{tag("n", ex.Tags["n"])}}); len(page.Executions) > 0 {
			f.t.Errorf("execution %s: its tag still lists %v", ex.ID, executionIDs(page.Executions))
		}
		if ds := f.executionDeliveries(sub.ID, ex.ID); len(ds) > 0 {
			f.t.Errorf("execution %s: %d deliveries of %s left after its delete", ex.ID, len(ds), sub.ID)
		}
		if own[ex.ID] {
			f.t.Errorf("execution %s: deliveries of its own webhook left after its delete", ex.ID)
		}
	}
}

// wantKept fails unless the executions exs are as they were, with their
// events, log lines, tags and deliveries.
func (f *fixture) wantKept(sub *conveyor.Webhook, exs ...*conveyor.Execution) {
	f.t.Helper()
	for _, ex := range exs {
		checkExecution(f.t, f.get(ex.ID), ex)
		if evs := f.events(ex.ID); int64(len(evs)) != ex.LastSeq {
			f.t.Errorf("execution %s: %d events, want %d", ex.ID, len(evs), ex.LastSeq)
		}
		if page := f.list(conveyor.ListFilter{Tags: []conveyor.Tag{tag("n", ex.Tags["n"])}}); len(page.Executions) != 1 {
			f.t.Errorf("execution %s: its tag lists %v", ex.ID, executionIDs(page.Executions))
		}
		if sub != nil && len(f.executionDeliveries(sub.ID, ex.ID)) == 0 {
			f.t.Errorf("execution %s: its deliveries are gone", ex.ID)
		}
	}
}

// prune calls PruneExecutions and fails unless it deleted want.
func (f *fixture) prune(cutoff time.Time, limit, want int) {
	f.t.Helper()
	n, err := f.s.PruneExecutions(f.ctx, cutoff, limit)
	if err != nil {
		f.t.Fatalf("PruneExecutions(%s, %d): %v", cutoff.Format(time.RFC3339Nano), limit, err)
	}
	if n != want {
		f.t.Errorf("PruneExecutions(%s, %d) = %d, want %d", cutoff.Format(time.RFC3339Nano), limit, n, want)
	}
}

// existing returns the ids of exs that GetExecution still finds.
func (f *fixture) existing(exs ...*conveyor.Execution) []string {
	f.t.Helper()
	var ids []string
	for _, ex := range exs {
		_, err := f.s.GetExecution(f.ctx, ex.ID)
		switch conveyor.ErrorCode(err) {
		case "":
			ids = append(ids, ex.ID)
		case conveyor.ENOTFOUND:
		default:
			f.t.Fatalf("GetExecution %s: %v", ex.ID, err)
		}
	}
	return ids
}

var retentionCases = []testCase{
	{"DeleteFinal", func(f *fixture) {
		sub := f.subscribe("a.example", "", nil, allExecutionEvents...)
		var gone, kept []*conveyor.Execution
		for i, end := range []conveyor.EventType{conveyor.EventCompleted, conveyor.EventFailed, conveyor.EventCancelled} {
			gone = append(gone, f.kept(sub, end, at(1000+i)))
			kept = append(kept, f.kept(sub, end, at(1000+i)))
		}
		for _, ex := range gone {
			if err := f.s.DeleteExecution(f.ctx, ex.ID); err != nil {
				f.t.Fatalf("DeleteExecution %s (%s): %v", ex.ID, ex.Status, err)
			}
		}
		f.wantDeleted(sub, gone...)
		f.wantKept(sub, kept...)
		for _, ex := range gone {
			wantCode(f.t, "DeleteExecution again", f.s.DeleteExecution(f.ctx, ex.ID), conveyor.ENOTFOUND)
		}
	}},
	{"DeleteRefusesNotFinal", func(f *fixture) {
		running := f.start("alpha")
		pending := f.create("alpha")
		f.append(progressEvent(running, running.LastSeq+1, progress(1, 2, 50)))
		running = f.get(running.ID)
		for _, ex := range []*conveyor.Execution{pending, running} {
			wantCode(f.t, "DeleteExecution of a "+string(ex.Status)+" execution", f.s.DeleteExecution(f.ctx, ex.ID), conveyor.ECONFLICT)
			checkExecution(f.t, f.get(ex.ID), ex)
			if evs := f.events(ex.ID); int64(len(evs)) != ex.LastSeq {
				f.t.Errorf("execution %s: %d events after a refused delete, want %d", ex.ID, len(evs), ex.LastSeq)
			}
		}
		for _, id := range unknownIDs {
			wantCode(f.t, "DeleteExecution "+id, f.s.DeleteExecution(f.ctx, id), conveyor.ENOTFOUND)
		}
	}},
	{"PruneDeletesEverything", func(f *fixture) {
		sub := f.subscribe("a.example", "", nil, allExecutionEvents...)
		old := []*conveyor.Execution{
			f.kept(sub, conveyor.EventCompleted, at(1000)),
			f.kept(sub, conveyor.EventFailed, at(1001)),
			f.kept(sub, conveyor.EventCancelled, at(1002)),
		}
		recent := f.kept(sub, conveyor.EventCompleted, at(2000))
		f.prune(at(1500), 100, len(old))
		f.wantDeleted(sub, old...)
		f.wantKept(sub, recent)
	}},
	{"PruneOnlyFinalAndExpired", func(f *fixture) {
		done := f.createN(3, "alpha")
		for i, ex := range done {
			f.claimOne(ex.ID, at(500))
			f.finishAt(ex.ID, conveyor.EventCompleted, at(1000+i))
		}
		// Created and started long before every cutoff, but not final.
		running := f.start("alpha")
		pending := f.create("alpha")
		// Finished exactly at the cutoff is not finished before it.
		f.prune(at(1001), 100, 1)
		if got, want := f.existing(done...), executionIDs(done[1:]); !slices.Equal(got, want) {
			f.t.Errorf("after pruning before %s: %v left, want %v", at(1001), got, want)
		}
		f.prune(at(5000), 100, 2)
		f.prune(at(5000), 100, 0)
		if got, want := f.existing(running, pending), []string{running.ID, pending.ID}; !slices.Equal(got, want) {
			f.t.Errorf("pending and running executions left: %v, want %v", got, want)
		}
	}},
	{"PruneInBatchesOldestFirst", func(f *fixture) {
		exs := f.createN(5, "alpha")
		// Finished in the reverse order of creation: pruning goes by the
		// finish.
		for i, ex := range exs {
			f.claimOne(ex.ID, at(500))
			f.finishAt(ex.ID, conveyor.EventCompleted, at(1000-i))
		}
		for _, n := range []int{2, 2, 1, 0} {
			f.prune(at(2000), 2, n)
		}
		if got := f.existing(exs...); len(got) > 0 {
			f.t.Errorf("left after pruning: %v", got)
		}

		exs = f.createN(5, "alpha")
		for i, ex := range exs {
			f.claimOne(ex.ID, at(500))
			f.finishAt(ex.ID, conveyor.EventCompleted, at(1000-i))
		}
		f.prune(at(2000), 2, 2)
		if got, want := f.existing(exs...), executionIDs(exs[:3]); !slices.Equal(got, want) {
			f.t.Errorf("after a batch of 2: %v left, want the 3 that finished last, %v", got, want)
		}
		f.prune(at(2000), 0, 0)
	}},
	{"BatchGoesWithLastMember", func(f *fixture) {
		b, es := f.createBatch(3, conveyor.Tags{"tenant": "acme"})
		for _, ex := range es {
			f.claimOne(ex.ID, at(500))
		}
		f.finishAt(es[0].ID, conveyor.EventCompleted, at(1000))
		f.finishAt(es[1].ID, conveyor.EventFailed, at(1001))
		if err := f.s.DeleteExecution(f.ctx, es[0].ID); err != nil {
			f.t.Fatalf("DeleteExecution: %v", err)
		}
		f.prune(at(5000), 100, 1)
		// The counts are of the batch as it ran: a deleted member still
		// counts.
		f.checkBatch(b.ID, conveyor.Counts{Running: 1, Completed: 1, Failed: 1}, conveyor.StatusRunning, 66.67)
		if page := f.list(conveyor.ListFilter{Batch: b.ID}); !slices.Equal(executionIDs(page.Executions), []string{es[2].ID}) {
			f.t.Errorf("members listed: %v, want %s", executionIDs(page.Executions), es[2].ID)
		}

		f.finishAt(es[2].ID, conveyor.EventCompleted, at(1002))
		if err := f.s.DeleteExecution(f.ctx, es[2].ID); err != nil {
			f.t.Fatalf("DeleteExecution of the last member: %v", err)
		}
		if _, err := f.s.GetBatch(f.ctx, b.ID); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
			f.t.Errorf("GetBatch after its last member was deleted: %v, want ENOTFOUND", err)
		}

		// Members pruned together take their batch with them; another
		// batch with a member left stays.
		b1, es1 := f.createBatch(2, nil)
		b2, es2 := f.createBatch(2, nil)
		for _, ex := range slices.Concat(es1, es2) {
			f.claimOne(ex.ID, at(500))
			f.finishAt(ex.ID, conveyor.EventCompleted, at(3000))
		}
		if err := f.s.DeleteExecution(f.ctx, es2[1].ID); err != nil {
			f.t.Fatalf("DeleteExecution: %v", err)
		}
		f.prune(at(3000).Add(time.Microsecond), 100, 3)
		for _, id := range []string{b1.ID, b2.ID} {
			if _, err := f.s.GetBatch(f.ctx, id); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
				f.t.Errorf("GetBatch %s after every member was deleted: %v, want ENOTFOUND", id, err)
			}
		}
		page, err := f.s.ListBatches(f.ctx, conveyor.BatchFilter{})
		if err != nil {
			f.t.Fatalf("ListBatches: %v", err)
		}
		if len(page.Batches) > 0 {
			f.t.Errorf("%d batches left, want none", len(page.Batches))
		}
	}},
}

// FinalExecution stores a final execution with rows in every table the
// suite knows an execution to have rows in (see kept), for a backend's
// own test that deleting it leaves no row in any table behind.
func FinalExecution(t *testing.T, s conveyor.Store) *conveyor.Execution {
	t.Helper()
	f := &fixture{t: t, ctx: t.Context(), s: s}
	return f.kept(f.subscribe("a.example", "", nil, allExecutionEvents...), conveyor.EventCompleted, at(1000))
}
