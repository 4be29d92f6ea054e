package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// runFanout starts cfg.FanoutExecutions executions of bench.hold, opens
// cfg.Subscribers subscribers (WebSocket or SSE streams, cfg.Transport)
// spread evenly over them, and measures:
//
//   - the server's RSS growth per idle subscriber: VmRSS after every
//     subscriber has its status message, less VmRSS before the first
//     connected (both after a GC when the server is this process);
//   - the time from each execution's final event (its timestamp) until
//     each of its subscribers has decoded it, when all executions are
//     cancelled at once; fanout_final_ms is the largest.
func runFanout(ctx context.Context, cfg Config, t *target, res *Result) error {
	k, e := cfg.Subscribers, min(cfg.FanoutExecutions, cfg.Subscribers)
	res.Subscribers, res.FanoutExecutions, res.Transport = k, e, cfg.Transport
	ids, err := startHolds(ctx, cfg, t, e)
	if err != nil {
		return err
	}

	var before int64
	var rssErr error
	if t.pid != 0 {
		before, rssErr = rssKiB(t.pid)
	}
	goroutines := runtime.NumGoroutine()
	subs := make([]*fanoutSubscriber, k)
	dialStart := time.Now()
	err = parallel(ctx, k, dialers, func(ctx context.Context, i int) error {
		s, err := t.watch(ctx, cfg.Transport, i, ids[i%e])
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i+1, err)
		}
		subs[i] = &fanoutSubscriber{stream: s}
		ev, err := s.Next(ctx)
		if err != nil {
			return fmt.Errorf("status message of subscriber %d: %w", i+1, err)
		}
		if ev.Type != conveyor.EventStatus || ev.Status != conveyor.StatusRunning {
			return fmt.Errorf("subscriber %d: got %s %s, want status running", i+1, ev.Type, ev.Status)
		}
		return nil
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
	cfg.Logger.Info("subscribed", "subscribers", k, "seconds", time.Since(dialStart).Seconds())
	if t.embedded {
		res.GoroutinesPerSubscriber = ptr(round3(float64(runtime.NumGoroutine()-goroutines) / float64(k)))
	}
	if cfg.HeapProfile != nil {
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(cfg.HeapProfile, 0); err != nil {
			return fmt.Errorf("write heap profile: %w", err)
		}
	}

	recordRSS(res, t, before, rssErr, k)

	readCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { s.waitFinal(readCtx) })
	}
	if err := parallel(ctx, e, e, func(ctx context.Context, i int) error {
		_, err := t.client.Cancel(ctx, ids[i])
		return err
	}); err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	wg.Wait()

	lat := make([]time.Duration, 0, k)
	for i, s := range subs {
		if s.err != nil {
			return fmt.Errorf("subscriber %d: %w", i+1, s.err)
		}
		lat = append(lat, s.received.Sub(s.final.Time))
	}
	res.FanoutFinalLatency = latencyOf(lat)
	res.FanoutFinalMS = ptr(res.FanoutFinalLatency.Max)
	res.FinalReceived = ptr(len(lat))
	if !t.embedded {
		res.note("final event times come from the server's clock: valid only if the server runs on this machine")
	}
	return nil
}

// startHolds starts e executions of bench.hold, once the server runs no
// other, and waits until every one is running.
func startHolds(ctx context.Context, cfg Config, t *target, e int) ([]string, error) {
	if err := waitIdle(ctx, t.client, HoldPipeline); err != nil {
		return nil, err
	}
	ids := make([]string, e)
	for i := range ids {
		ex, err := t.client.Submit(ctx, HoldPipeline, HoldInput{Seconds: min(cfg.Timeout, maxHold).Seconds()})
		if err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
		ids[i] = ex.ID
	}
	for _, id := range ids {
		if err := waitRunning(ctx, t.client, id); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// recordRSS reads the server's RSS now that its k subscribers are
// connected and records the growth per subscriber since before (read, or
// failed with beforeErr, before the first one connected), or why it could
// not be measured.
func recordRSS(res *Result, t *target, before int64, beforeErr error, k int) {
	switch {
	case t.pid == 0:
		res.note("RSS not measured: the server is another process; give its pid with --server-pid if it runs on this machine")
		return
	case beforeErr != nil:
		res.note("RSS not measured: %v", beforeErr)
		return
	}
	after, err := rssKiB(t.pid)
	if err != nil {
		res.note("RSS not measured: %v", err)
		return
	}
	res.RSSBeforeKiB, res.RSSAfterKiB = &before, &after
	res.RSSPerSubscriberKiB = ptr(round3(float64(after-before) / float64(k)))
	if t.embedded {
		res.note("RSS is this process's: the embedded node and the bench's %d %s clients together, so it overstates the server's share", k, res.Transport)
	} else {
		res.note("RSS of pid %d, without a forced GC (garbage not yet collected counts) and only meaningful on a freshly started server (Go keeps freed memory)", t.pid)
	}
}

// waitRunning waits until execution id is running.
func waitRunning(ctx context.Context, c *client.Client, id string) error {
	for {
		ex, err := c.Get(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case ex.Status == conveyor.StatusRunning:
			return nil
		case ex.Status.Final():
			// ex.Error is nil unless the execution failed: %w would put a
			// nil *conveyor.Error in the chain for errors.As to find.
			return fmt.Errorf("execution %s ended %s before the subscribers connected: %v", id, ex.Status, ex.Error) //nolint:errorlint // see above
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to run: %w", id, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitStarted waits until execution id has left pending (it runs, or ran
// already) and returns it.
func waitStarted(ctx context.Context, c *client.Client, id string) (*conveyor.Execution, error) {
	for {
		ex, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if ex.Status != conveyor.StatusPending {
			return ex, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s to start: %w", id, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// watch opens subscriber i's stream of execution id over transport, on
// the node of client i mod N.
func (t *target) watch(ctx context.Context, transport string, i int, id string) (subscription, error) {
	if transport == SSE {
		return watchSSE(ctx, t.hc, t.urls[i%len(t.urls)], t.apiKey, "/executions/"+id+"/progress/sse")
	}
	return t.clientFor(i).Watch(ctx, id)
}

// fanoutSubscriber is one idle subscriber waiting for the final message.
type fanoutSubscriber struct {
	stream   subscription
	final    conveyor.Event
	received time.Time
	err      error
}

func (s *fanoutSubscriber) waitFinal(ctx context.Context) {
	for {
		ev, err := s.stream.Next(ctx)
		now := time.Now()
		switch {
		case errors.Is(err, io.EOF):
			s.err = errors.New("stream ended without a final message")
			return
		case err != nil:
			s.err = err
			return
		case ev.Type.Final():
			s.final, s.received = ev, now
			return
		}
	}
}
