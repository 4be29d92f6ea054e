package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/retention"
)

// claimBatch is how many executions FillFinished runs to the end per
// claim and per Append.
const claimBatch = 1000

// FillFinished adds n executions to s as FillTagged does and runs each
// to completed at finished: each then has a row in executions, two tags
// and two events (started, completed). n is as FillTagged takes it, and
// s must hold no other pending execution.
func FillFinished(ctx context.Context, s conveyor.Store, n int, finished time.Time) error {
	if err := FillTagged(ctx, s, n); err != nil {
		return err
	}
	for done := 0; done < n; {
		claims, err := s.ClaimPending(ctx, claimBatch, func() time.Time { return finished.Add(-time.Second) })
		if err != nil {
			return fmt.Errorf("fill: claim: %w", err)
		}
		if len(claims) == 0 {
			return fmt.Errorf("fill: %d of %d executions claimed, then none", done, n)
		}
		evs := make([]conveyor.Event, len(claims))
		for i, c := range claims {
			evs[i] = conveyor.Event{Type: conveyor.EventCompleted, ExecutionID: c.Execution.ID, Seq: c.Started.Seq + 1,
				Time: finished, Attempt: c.Execution.Attempt, Status: conveyor.StatusCompleted,
				Result: []byte(`{"rows": 100000}`)}
		}
		if err := s.Append(ctx, evs); err != nil {
			return fmt.Errorf("fill: complete: %w", err)
		}
		done += len(claims)
	}
	return nil
}

// Settings of BenchProgressWhilePruning.
const (
	// progressEvery is how often the running execution writes progress:
	// a node whose 50 running executions each store progress twice a
	// second, as the engine does (server.ProgressStoreInterval).
	progressEvery = 10 * time.Millisecond
	// idleWrites is how many writes the Idle sub-benchmark measures.
	idleWrites = 1000
	// benchRetention is the retention the pruner applies; FillFinished's
	// executions must have finished before it.
	benchRetention = 24 * time.Hour
)

// PrunedBefore is a time to give FillFinished for executions that
// BenchProgressWhilePruning's retention has expired.
func PrunedBefore() time.Time { return time.Now().Add(-2 * benchRetention) }

// BenchProgressWhilePruning measures how long the store write of a
// running execution's progress (Append of one progress event, as the
// engine's writer stores it) takes while a retention.Pruner, with its
// default batch sizing and pauses, deletes every execution of s, which
// FillFinished filled with executions finished at PrunedBefore.
//
// Idle measures idleWrites writes, one every progressEvery, with nothing
// else running; Pruning measures one every progressEvery from the start
// of the pruner's round to its end. Each reports the p50 and p99 of the
// writes, and their max; Pruning also how many executions went, in how
// long, and how many writes it measured. Each runs once whatever b.N:
// run with -benchtime 1x.
func BenchProgressWhilePruning(b *testing.B, s conveyor.Store) {
	ctx := context.Background()
	ex := &conveyor.Execution{ID: "progress-writer", Pipeline: "bench", Status: conveyor.StatusPending, CreatedAt: time.Now()}
	if err := s.CreateExecution(ctx, ex); err != nil {
		b.Fatal(err)
	}
	claims, err := s.ClaimPending(ctx, 1, time.Now)
	if err != nil || len(claims) != 1 {
		b.Fatalf("claim the progress writer: %v, %v", claims, err)
	}
	w := &progressWriter{s: s, ex: claims[0].Execution, seq: claims[0].Started.Seq}

	b.Run("Idle", func(b *testing.B) {
		lat := make([]time.Duration, 0, idleWrites)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for range idleWrites {
			<-tick.C
			lat = append(lat, w.write(b))
		}
		reportWrites(b, lat)
	})

	b.Run("Pruning", func(b *testing.B) {
		deleted := 0
		var batches []time.Duration // how long each took
		p, err := retention.New(retention.Config{
			Tasks: []retention.Task{{Name: "executions", PruneFunc: func(ctx context.Context, now time.Time, limit int) (int, error) {
				start := time.Now()
				n, err := s.PruneExecutions(ctx, now.Add(-benchRetention), limit)
				batches = append(batches, time.Since(start))
				return n, err
			}}},
			DeletedFunc: func(_ string, n int) { deleted += n },
		})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- p.Round(ctx) }()
		lat := make([]time.Duration, 0, 1<<16)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case err := <-done:
				took := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				reportWrites(b, lat)
				slices.Sort(batches)
				b.ReportMetric(float64(batches[len(batches)/2])/float64(time.Millisecond), "batch-p50-ms")
				b.ReportMetric(float64(batches[len(batches)*99/100])/float64(time.Millisecond), "batch-p99-ms")
				b.ReportMetric(float64(deleted)/float64(len(batches)), "executions/batch")
				b.ReportMetric(float64(deleted), "executions-deleted")
				b.ReportMetric(took.Seconds(), "prune-s")
				b.ReportMetric(float64(deleted)/took.Seconds(), "deleted/s")
				return
			case <-tick.C:
				lat = append(lat, w.write(b))
			}
		}
	})
}

// progressWriter writes the progress of one running execution.
type progressWriter struct {
	s   conveyor.Store
	ex  *conveyor.Execution
	seq int64
}

// write appends the next progress event and returns how long it took.
func (w *progressWriter) write(b *testing.B) time.Duration {
	w.seq++
	pct := float64(w.seq%100) * 0.99
	ev := conveyor.Event{Type: conveyor.EventProgress, ExecutionID: w.ex.ID, Seq: w.seq, Time: time.Now(), Attempt: w.ex.Attempt,
		Progress: &conveyor.Progress{CurrentStep: 1, TotalSteps: ptr(1), Percentage: &pct, CurrentStepName: "work"}}
	start := time.Now()
	evs := []conveyor.Event{ev}
	err := w.s.Append(context.Background(), evs)
	took := time.Since(start)
	if err != nil || evs[0].Dropped {
		b.Fatalf("write progress #%d: %v (dropped: %t)", w.seq, err, evs[0].Dropped)
	}
	return took
}

// reportWrites reports the p50, p99 and max of lat, and how many.
func reportWrites(b *testing.B, lat []time.Duration) {
	b.Helper()
	ReportLatencies(b, lat) // sorts lat
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
	b.ReportMetric(float64(len(lat)), "writes")
}
