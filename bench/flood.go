package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// refusedPause is how long a flooding client waits after a submit that
// got no 202, so that a refusing or unreachable server is not spun on
// and the errors counted stay a measure of the server, not of the loop.
const refusedPause = 100 * time.Millisecond

// transportError is the kind of a submit that got no answer from the
// server (connection refused or reset, an undecodable answer).
const transportError = "transport"

// runSubmitFlood has cfg.Concurrency clients submit one execution of
// bench.noop after another, each as soon as its last one was answered,
// for cfg.Duration, while the node's workers run them, and records:
//
//   - the latency of each accepted submit (send to 202), its
//     distribution and the accepted submits per second;
//   - the submits that failed, by error code (rate_limited is a 429) or
//     "transport";
//   - executions finished per second over the flood, and the backlog:
//     accepted executions that had not started when the flood ended, both
//     from GET /executions/throughput (started and finished per minute,
//     less what the minute the flood began held before it).
func runSubmitFlood(ctx context.Context, cfg Config, t *target, res *Result) error {
	res.Concurrency, res.DurationSeconds = cfg.Concurrency, cfg.Duration.Seconds()
	if !t.embedded {
		res.note("pending_at_end and executions_per_second count every execution the server started and finished during the flood, not only the bench's")
	}
	if err := waitIdle(ctx, t.client, NoopPipeline); err != nil {
		return err
	}
	before, err := t.client.Throughput(ctx, 1)
	if err != nil {
		return fmt.Errorf("read throughput: %w", err)
	}
	if len(before.Buckets) != 1 {
		return fmt.Errorf("read throughput: %d buckets, want 1", len(before.Buckets))
	}
	cpu0, cpuErr := cpuTime(t.pid)

	begin := time.Now()
	deadline := begin.Add(cfg.Duration)
	clients := make([]floodClient, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { clients[i].flood(ctx, t.clientFor(i), deadline) })
	}
	wg.Wait()
	took := time.Since(begin)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("flood: %w", err)
	}
	cpu1, err := cpuTime(t.pid)
	cpuErr = errors.Join(cpuErr, err)

	after, err := t.client.Throughput(ctx, int(time.Since(before.Buckets[0].Start)/time.Minute)+2)
	if err != nil {
		return fmt.Errorf("read throughput: %w", err)
	}
	started, finished := -before.Buckets[0].Started, -before.Buckets[0].Finished
	for _, b := range after.Buckets {
		if !b.Start.Before(before.Buckets[0].Start) {
			started += b.Started
			finished += b.Finished
		}
	}

	var (
		lat    []time.Duration
		errs   = map[string]int{}
		failed int
	)
	for _, c := range clients {
		lat = append(lat, c.latencies...)
		for kind, n := range c.errors {
			errs[kind] += n
			failed += n
		}
	}
	accepted := len(lat)
	res.SubmitLatencyMS = latencyOf(lat)
	res.SubmitsAccepted, res.SubmitsFailed = &accepted, &failed
	if failed > 0 {
		res.SubmitErrors = errs
	}
	res.SubmitsPerSecond = ptr(round3(float64(accepted) / took.Seconds()))
	res.ExecutionsPerSecond = ptr(round3(float64(finished) / took.Seconds()))
	res.PendingAtEnd = ptr(max(0, accepted-started))
	res.ServerCPU = serverCPU(t, cpu1-cpu0, cpuErr, took, fmt.Sprintf("%d HTTP clients", cfg.Concurrency))
	if n := errs[conveyor.ERATELIMITED]; n > 0 {
		res.note("%d submits refused with 429 (the server's rate limit or --max-pending): start it with --rate-limit 0 --max-pending 0 to measure the node, not its limits", n)
	}
	if failed > 0 {
		res.note("after a failed submit its client waits %s before the next", refusedPause)
	}
	cfg.Logger.Info("flooded", "accepted", accepted, "failed", failed, "seconds", took.Seconds(),
		"errors", formatCounts(errs))
	return nil
}

// floodClient is one client of the flood: the latency of each submit
// that was accepted, and the others counted by kind.
type floodClient struct {
	latencies []time.Duration
	errors    map[string]int
}

// flood submits until deadline, at least once, and stops early only if
// ctx ends. A submit under way at the deadline is waited for and counted.
func (f *floodClient) flood(ctx context.Context, c *client.Client, deadline time.Time) {
	f.errors = map[string]int{}
	for {
		sent := time.Now()
		_, err := c.Submit(ctx, NoopPipeline, nil)
		switch {
		case err == nil:
			f.latencies = append(f.latencies, time.Since(sent))
		case ctx.Err() != nil:
			return
		default:
			f.errors[submitErrorKind(err)]++
			select {
			case <-ctx.Done():
				return
			case <-time.After(refusedPause):
			}
		}
		if !time.Now().Before(deadline) {
			return
		}
	}
}

// submitErrorKind is the error code of a failed submit's answer, or
// "transport" when there was no answer.
func submitErrorKind(err error) string {
	var e *conveyor.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return transportError
}

// formatCounts lists counts by kind, in the order of the kinds' names.
func formatCounts(m map[string]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}
