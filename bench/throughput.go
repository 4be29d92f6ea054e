package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyor-run/conveyor"
)

// runThroughput submits cfg.Executions executions of bench.noop from
// cfg.Concurrency clients at once, waits for all to finish, and derives
// from their stored times (on this machine's clock):
//
//   - submits per second: executions / time to submit them all;
//   - executions per second: executions / (last finished_at − first submit);
//   - submit→start: started_at − the time the client sent the submit.
//
// Then it measures submit→start with idle workers: cfg.IdleSamples
// executions one after another, each waited for before the next.
func runThroughput(ctx context.Context, cfg Config, t *target, res *Result) error {
	res.Executions, res.Concurrency = cfg.Executions, cfg.Concurrency
	if !t.embedded {
		res.note("times come from the server's clock and this process's: valid only if the server runs on this machine")
	}
	if err := waitIdle(ctx, t.client, NoopPipeline); err != nil {
		return err
	}

	n := cfg.Executions
	ids := make([]string, n)
	sent := make([]time.Time, n)
	begin := time.Now()
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
		return err
	}
	submitted := time.Since(begin)
	res.SubmitsPerSecond = ptr(round3(float64(n) / submitted.Seconds()))
	cfg.Logger.Info("submitted", "executions", n, "seconds", submitted.Seconds())

	if err := waitIdle(ctx, t.client, NoopPipeline); err != nil {
		return err
	}
	index := make(map[string]int, n)
	for i, id := range ids {
		index[id] = i
	}
	exs, err := collect(ctx, t.client, NoopPipeline, index)
	if err != nil {
		return err
	}
	var (
		lastFinished time.Time
		toStart      = make([]time.Duration, 0, n)
		notCompleted int
	)
	for id, ex := range exs {
		if ex.Status != conveyor.StatusCompleted || ex.StartedAt == nil || ex.FinishedAt == nil {
			notCompleted++
			continue
		}
		toStart = append(toStart, ex.StartedAt.Sub(sent[index[id]]))
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
