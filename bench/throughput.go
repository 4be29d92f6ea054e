package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyor-run/conveyor"
)

// runThroughput submits cfg.Executions executions of bench.noop from
// cfg.Concurrency clients at once, one POST /executions each or, with
// cfg.Batch, one POST /batches per cfg.Batch of them; waits for all to
// finish, and derives from their stored times (on this machine's clock):
//
//   - submits per second: executions / time to submit them all;
//   - executions per second: executions / (last finished_at − first submit);
//   - submit→start: started_at − the time the client sent the submit (of
//     its batch, with cfg.Batch).
//
// Then it measures submit→start with idle workers: cfg.IdleSamples
// executions one after another, each waited for before the next (single
// submits, with or without cfg.Batch).
func runThroughput(ctx context.Context, cfg Config, t *target, res *Result) error {
	res.Executions, res.Concurrency, res.Batch = cfg.Executions, cfg.Concurrency, cfg.Batch
	if !t.embedded {
		res.note("times come from the server's clock and this process's: valid only if the server runs on this machine")
	}
	if err := waitIdle(ctx, t.client, NoopPipeline); err != nil {
		return err
	}

	n := cfg.Executions
	begin := time.Now()
	var (
		sub submitted
		err error
	)
	if cfg.Batch > 0 {
		sub, err = submitBatches(ctx, cfg, t)
		res.note("submitted in %d POST /batches of up to %d executions; submit→start counts from the send of the execution's batch", len(sub.batchSent), cfg.Batch)
	} else {
		sub, err = submitSingly(ctx, cfg, t)
	}
	if err != nil {
		return err
	}
	took := time.Since(begin)
	res.SubmitsPerSecond = ptr(round3(float64(n) / took.Seconds()))
	cfg.Logger.Info("submitted", "executions", n, "batch", cfg.Batch, "seconds", took.Seconds())

	if err := waitIdle(ctx, t.client, NoopPipeline); err != nil {
		return err
	}
	exs, err := collect(ctx, t.client, NoopPipeline, n, sub.ours)
	if err != nil {
		return err
	}
	var (
		lastFinished time.Time
		toStart      = make([]time.Duration, 0, n)
		notCompleted int
	)
	for _, ex := range exs {
		if ex.Status != conveyor.StatusCompleted || ex.StartedAt == nil || ex.FinishedAt == nil {
			notCompleted++
			continue
		}
		toStart = append(toStart, ex.StartedAt.Sub(sub.sentAt(ex)))
		if ex.FinishedAt.After(lastFinished) {
			lastFinished = *ex.FinishedAt
		}
	}
	if notCompleted > 0 {
		return fmt.Errorf("%d of %d executions did not complete", notCompleted, n)
	}
	res.ExecutionsPerSecond = ptr(round3(float64(n) / lastFinished.Sub(begin).Seconds()))
	res.SubmitToStartMS = latencyOf(toStart)

	idle, err := idleSubmitToStart(ctx, cfg, t)
	if err != nil {
		return fmt.Errorf("idle submit→start: %w", err)
	}
	res.IdleSubmitToStartMS = latencyOf(idle)
	return nil
}

// submitted is what the throughput scenario sent: the send time of each
// execution (single submits) or of each batch.
type submitted struct {
	sent      map[string]time.Time // by execution id
	batchSent map[string]time.Time // by batch id
}

// ours reports whether ex is one of the executions submitted.
func (s submitted) ours(ex *conveyor.Execution) bool {
	if ex.BatchID != nil {
		_, ok := s.batchSent[*ex.BatchID]
		return ok
	}
	_, ok := s.sent[ex.ID]
	return ok
}

// sentAt is when the client sent ex, or its batch.
func (s submitted) sentAt(ex *conveyor.Execution) time.Time {
	if ex.BatchID != nil {
		return s.batchSent[*ex.BatchID]
	}
	return s.sent[ex.ID]
}

// submitSingly submits cfg.Executions executions, one POST /executions
// each, from cfg.Concurrency clients.
func submitSingly(ctx context.Context, cfg Config, t *target) (submitted, error) {
	n := cfg.Executions
	ids, sent := make([]string, n), make([]time.Time, n)
	err := parallel(ctx, n, cfg.Concurrency, func(ctx context.Context, i int) error {
		c := t.clientFor(i)
		sent[i] = time.Now()
		ex, err := c.Submit(ctx, NoopPipeline, nil)
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		ids[i] = ex.ID
		return nil
	})
	if err != nil {
		return submitted{}, err
	}
	sub := submitted{sent: make(map[string]time.Time, n)}
	for i, id := range ids {
		sub.sent[id] = sent[i]
	}
	return sub, nil
}

// submitBatches submits cfg.Executions executions in batches of
// cfg.Batch (the last one smaller if need be), one POST /batches each,
// from up to cfg.Concurrency clients.
func submitBatches(ctx context.Context, cfg Config, t *target) (submitted, error) {
	n, size := cfg.Executions, cfg.Batch
	batches := (n + size - 1) / size
	ids, sent := make([]string, batches), make([]time.Time, batches)
	err := parallel(ctx, batches, cfg.Concurrency, func(ctx context.Context, i int) error {
		items := make([]conveyor.NewExecution, min(size, n-i*size))
		for j := range items {
			items[j] = conveyor.NewExecution{Pipeline: NoopPipeline}
		}
		c := t.clientFor(i)
		sent[i] = time.Now()
		b, err := c.SubmitBatch(ctx, items, nil)
		if err != nil {
			return fmt.Errorf("submit batch: %w", err)
		}
		if b.Total != len(items) {
			return fmt.Errorf("submit batch: %d executions taken, %d sent", b.Total, len(items))
		}
		ids[i] = b.ID
		return nil
	})
	if err != nil {
		return submitted{}, err
	}
	sub := submitted{batchSent: make(map[string]time.Time, batches)}
	for i, id := range ids {
		sub.batchSent[id] = sent[i]
	}
	return sub, nil
}

// idleSubmitToStart submits executions one at a time to idle workers and
// returns each one's submit→start time.
func idleSubmitToStart(ctx context.Context, cfg Config, t *target) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, cfg.IdleSamples)
	for i := range cfg.IdleSamples {
		c := t.clientFor(i)
		sent := time.Now()
		ex, err := c.Submit(ctx, NoopPipeline, nil)
		if err != nil {
			return nil, err
		}
		// Poll for the end: noop executions take about a millisecond, and
		// a 1 ms poll costs the idle server less than opening a stream.
		for polls := 0; !ex.Status.Final(); polls++ {
			if polls == 10_000 {
				return nil, fmt.Errorf("execution %s still %s after 10,000 polls", ex.ID, ex.Status)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Millisecond):
			}
			if ex, err = c.Get(ctx, ex.ID); err != nil {
				return nil, err
			}
		}
		if ex.Status != conveyor.StatusCompleted || ex.StartedAt == nil {
			return nil, fmt.Errorf("execution %s ended %s", ex.ID, ex.Status)
		}
		lat = append(lat, ex.StartedAt.Sub(sent))
	}
	return lat, nil
}
