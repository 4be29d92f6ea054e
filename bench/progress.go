package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// dialers bounds how many WebSocket handshakes run at once: the listen
// backlog (net.core.somaxconn) is finite, and a burst of thousands of
// SYNs only makes some of them retry a second later.
const dialers = 64

// runProgressLatency starts cfg.ExecutionsRunning executions of
// bench.progress, opens one WebSocket subscriber to each, and from a start
// time that leaves room for that, has each report cfg.Rate updates a second
// for cfg.Duration, their phases spread evenly over one interval. Every
// update carries the wall clock of its x.Progress call (sent_ns); the
// subscriber subtracts it from the time it decoded the message.
//
// With several nodes each subscriber is on the node that runs its
// execution, or, for the cross-node scenario, on another one.
func runProgressLatency(ctx context.Context, cfg Config, t *target, res *Result, crossNode bool) error {
	// Room to submit, claim and subscribe to every execution before the
	// first update; an execution that starts later shifts its schedule.
	plan, err := planProgress(ctx, cfg, t, res, 300*time.Millisecond+time.Duration(cfg.ExecutionsRunning)*3*time.Millisecond)
	if err != nil {
		return err
	}
	m, start, interval := plan.m, plan.start, plan.interval
	ids := make([]string, m)
	err = parallel(ctx, m, cfg.Concurrency, func(ctx context.Context, i int) error {
		ex, err := t.clientFor(i).Submit(ctx, ProgressPipeline, plan.input(i))
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		ids[i] = ex.ID
		return nil
	})
	if err != nil {
		return err
	}

	subs := make([]*progressSubscriber, m)
	err = parallel(ctx, m, dialers, func(ctx context.Context, i int) error {
		c, err := t.subscriberClient(ctx, ids[i], crossNode)
		if err != nil {
			return err
		}
		s, err := subscribe(ctx, c, ids[i])
		subs[i] = s
		return err
	})
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.stream.Close()
			}
		}
	}()
	if err != nil {
		return err
	}
	late := 0
	for _, s := range subs {
		if s.ready.After(start) {
			late++
		}
	}
	if late > 0 {
		res.note("%d of %d subscribers connected after the first update was due; updates they missed are not counted as sent", late, m)
	}
	cfg.Logger.Info("subscribed", "executions", m, "late", late)

	// The readers start now and wait for the first update, so that
	// starting a goroutine per subscriber is not part of what the first
	// round of updates measures.
	end := start.Add(cfg.Duration + interval)
	readCtx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { s.read(readCtx) })
	}

	// Measure CPU from the first update to the last receipt.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(start)):
	}
	cpu0, cpuErr := cpuTime(t.pid)
	wall0 := time.Now()
	wg.Wait()
	wall := time.Since(wall0)
	cpu1, err := cpuTime(t.pid)
	cpuErr = errors.Join(cpuErr, err)

	if err := tallyProgress(subs, res); err != nil {
		return err
	}
	res.ServerCPU = serverCPU(t, cpu1-cpu0, cpuErr, wall, fmt.Sprintf("%d WebSocket clients", m))
	return nil
}

// progressPlan is when the executions of a progress scenario report: m
// executions of bench.progress, each count updates, interval apart, the
// i-th from start + i × interval / m, so that their phases spread evenly
// over one interval.
type progressPlan struct {
	m, count int
	rate     float64
	interval time.Duration
	start    time.Time
}

// planProgress records what a progress scenario was asked, waits for the
// target to be idle, and plans the first update room from now.
func planProgress(ctx context.Context, cfg Config, t *target, res *Result, room time.Duration) (progressPlan, error) {
	p := progressPlan{m: cfg.ExecutionsRunning, count: int(cfg.Rate * cfg.Duration.Seconds()), rate: cfg.Rate,
		interval: time.Duration(float64(time.Second) / cfg.Rate)}
	res.ExecutionsRunning, res.Rate, res.DurationSeconds = p.m, cfg.Rate, cfg.Duration.Seconds()
	if !t.embedded {
		res.note("send and receive times come from the server's clock and this process's: valid only if the server runs on this machine")
	}
	if err := waitIdle(ctx, t.client, ProgressPipeline); err != nil {
		return p, err
	}
	p.start = time.Now().Add(room)
	return p, nil
}

// input is the input of the plan's i-th execution.
func (p progressPlan) input(i int) ProgressInput {
	return ProgressInput{Rate: p.rate, Count: p.count, StartNS: p.start.Add(time.Duration(i) * p.interval / time.Duration(p.m)).UnixNano()}
}

// tallyProgress records what the subscribers of the progress scenario
// received, failing if one of them failed or did not see its execution
// complete.
func tallyProgress(subs []*progressSubscriber, res *Result) error {
	tallies := make([]*progressTally, 0, len(subs))
	for _, s := range subs {
		if s.err != nil {
			return fmt.Errorf("subscriber of %s: %w", s.id, s.err)
		}
		if s.completed {
			tallies = append(tallies, &s.progressTally)
		}
	}
	if unfinished := len(subs) - len(tallies); unfinished > 0 {
		return fmt.Errorf("%d of %d executions did not complete within 30s of their last update", unfinished, len(subs))
	}
	recordTallies(res, tallies)
	return nil
}

// recordTallies records in res the updates of tallies: their delays, and
// how many were sent and received.
func recordTallies(res *Result, tallies []*progressTally) {
	var (
		lat            []time.Duration
		sent, received int64
	)
	for _, t := range tallies {
		lat = append(lat, t.latencies...)
		sent += t.sent
		received += t.received
	}
	res.ProgressLatencyMS = latencyOf(lat)
	res.MessagesSent, res.MessagesReceived = &sent, &received
}

// serverCPU reports the CPU time the server used over wall, as read from
// /proc (or why not: err), and what it covers: with an embedded node, this
// whole process, the bench's own clients included.
func serverCPU(t *target, used time.Duration, err error, wall time.Duration, clients string) *CPU {
	cpu := &CPU{Cores: runtime.NumCPU()}
	switch {
	case t.pid == 0:
		cpu.Scope = "not measured: the server is another process; give its pid with --server-pid if it runs on this machine"
	case err != nil:
		cpu.Scope = "not measured: " + err.Error()
	default:
		cpu.Seconds = ptr(round3(used.Seconds()))
		cpu.Percent = ptr(round3(100 * used.Seconds() / wall.Seconds()))
		cpu.Scope = fmt.Sprintf("server process (pid %d) over %.1fs", t.pid, wall.Seconds())
		if t.embedded {
			cpu.Scope = fmt.Sprintf("this process over %.1fs: the embedded node(s) and the bench's own %s together", wall.Seconds(), clients)
			if t.backend == "postgres" {
				cpu.Scope += ", without the PostgreSQL server's"
			}
		}
	}
	return cpu
}

// progressSubscriber is one WebSocket subscriber of a bench.progress
// execution.
type progressSubscriber struct {
	id     string
	stream *client.Stream
	ready  time.Time // when the status message arrived
	progressTally
	err error
}

// progressTally is what a stream carried of one bench.progress execution.
type progressTally struct {
	first          int64 // the update number in the status message
	latencies      []time.Duration
	sent, received int64 // updates after the status message
	completed      bool
}

// take counts ev, received at now, and reports whether it ended the
// execution: completed, or an error for any other end.
func (t *progressTally) take(ev conveyor.Event, now time.Time) (final bool, err error) {
	switch {
	case ev.Type == conveyor.EventStatus:
		if ev.Progress != nil {
			t.first = int64(ev.Progress.Metrics[countMetric])
		}
	case ev.Type == conveyor.EventProgress && ev.Progress != nil:
		if sentNS, ok := ev.Progress.Metrics[progressMetric]; ok && int64(ev.Progress.Metrics[countMetric]) > t.first {
			t.latencies = append(t.latencies, now.Sub(time.Unix(0, int64(sentNS))))
			t.received++
		}
	case ev.Type == conveyor.EventCompleted:
		if ev.Progress != nil {
			t.sent = int64(ev.Progress.Metrics[countMetric]) - t.first
		}
		t.completed = true
		return true, nil
	case ev.Type.Final():
		// ev.Error is nil unless the execution failed: %w would put a
		// nil *conveyor.Error in the chain for errors.As to find.
		return true, fmt.Errorf("execution ended %s: %v", ev.Type, ev.Error) //nolint:errorlint // see above
	}
	return false, nil
}

// subscribe opens the stream and reads its status message.
func subscribe(ctx context.Context, c *client.Client, id string) (*progressSubscriber, error) {
	s, err := c.Watch(ctx, id)
	if err != nil {
		return nil, err
	}
	ev, err := s.Next(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("status message of %s: %w", id, err)
	}
	sub := &progressSubscriber{id: id, stream: s, ready: time.Now()}
	_, sub.err = sub.take(ev, sub.ready)
	return sub, sub.err
}

// read reads progress until the execution ends. It counts the updates
// sent after the status message from the final update number.
func (s *progressSubscriber) read(ctx context.Context) {
	for {
		ev, err := s.stream.Next(ctx)
		now := time.Now()
		if errors.Is(err, io.EOF) {
			s.err = errors.New("stream ended without a final message")
			return
		}
		if err != nil {
			s.err = err
			return
		}
		if final, err := s.take(ev, now); final {
			s.err = err
			return
		}
	}
}

// subscriberClient returns the client of the node that runs execution id
// or, for crossNode, of the next node after it.
func (t *target) subscriberClient(ctx context.Context, id string, crossNode bool) (*client.Client, error) {
	if len(t.clients) == 1 {
		return t.client, nil
	}
	// Started, not running: on a loaded machine a short execution may
	// have ended already, and Node still says where it ran.
	ex, err := waitStarted(ctx, t.client, id)
	if err != nil {
		return nil, err
	}
	i := slices.Index(t.nodes, ex.Node)
	if i < 0 {
		return nil, fmt.Errorf("execution %s runs on unknown node %q", id, ex.Node)
	}
	if crossNode {
		i++
	}
	return t.clientFor(i), nil
}
