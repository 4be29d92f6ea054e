package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/conveyor-run/conveyor"
)

// runBatchStream submits cfg.ExecutionsRunning executions of
// bench.progress in one POST /batches and opens one Server-Sent Events
// stream of the batch (/executions/progress/sse?batch=ID); from a start
// time that leaves room for that, each member reports cfg.Rate updates a
// second for cfg.Duration, their phases spread over one interval. The
// delay of an update is the time the stream's client decoded it less the
// wall clock of its x.Progress call, as in the progress-latency scenario.
// The stream ends after the batch's final message; the server's CPU over
// the run and its RSS before and after are recorded.
func runBatchStream(ctx context.Context, cfg Config, t *target, res *Result) error {
	// Room to submit the batch, claim its members and open the stream.
	plan, err := planProgress(ctx, cfg, t, res, 500*time.Millisecond+time.Duration(cfg.ExecutionsRunning)*time.Millisecond)
	if err != nil {
		return err
	}
	m := plan.m
	var (
		rssBefore int64
		rssErr    error
	)
	if t.pid != 0 {
		rssBefore, rssErr = rssKiB(t.pid)
	}
	items := make([]conveyor.NewExecution, m)
	for i := range items {
		in, err := json.Marshal(plan.input(i))
		if err != nil {
			return err
		}
		items[i] = conveyor.NewExecution{Pipeline: ProgressPipeline, Input: in}
	}
	b, err := t.client.SubmitBatch(ctx, items, nil)
	if err != nil {
		return fmt.Errorf("submit batch: %w", err)
	}
	stream, err := watchSSE(ctx, t.hc, t.urls[0], t.apiKey, "/executions/progress/sse?batch="+url.QueryEscape(b.ID))
	if err != nil {
		return err
	}
	defer stream.Close()
	cpu0, cpuErr := cpuTime(t.pid)
	wall0 := time.Now()

	readCtx, cancel := context.WithDeadline(ctx, plan.start.Add(cfg.Duration+plan.interval+30*time.Second))
	defer cancel()
	members, err := readBatchStream(readCtx, stream, m)
	if err != nil {
		return err
	}
	wall := time.Since(wall0)
	cpu1, err := cpuTime(t.pid)
	cpuErr = errors.Join(cpuErr, err)

	late := 0
	for _, s := range members {
		if s.first > 0 {
			late++
		}
	}
	if late > 0 {
		res.note("%d of %d members had reported before their status message; those updates are not counted as sent", late, m)
	}
	recordTallies(res, members)
	res.ServerCPU = serverCPU(t, cpu1-cpu0, cpuErr, wall, "SSE client")
	if t.pid != 0 && rssErr == nil {
		if after, err := rssKiB(t.pid); err == nil {
			res.RSSBeforeKiB, res.RSSAfterKiB = &rssBefore, &after
		}
	}
	return nil
}

// readBatchStream reads a batch's stream to its end and returns what it
// carried for each of the batch's m members, failing unless every member
// completed and the stream ended with a final batch message.
func readBatchStream(ctx context.Context, stream *sseStream, m int) ([]*progressTally, error) {
	members := make(map[string]*progressTally, m)
	var final bool
	for {
		ev, err := stream.Next(ctx)
		now := time.Now()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("batch stream: %w", err)
		}
		if ev.Type == batchMessage {
			final = ev.Status.Final()
			continue
		}
		s := members[ev.ExecutionID]
		if s == nil {
			s = &progressTally{}
			members[ev.ExecutionID] = s
		}
		if _, err := s.take(ev, now); err != nil {
			return nil, fmt.Errorf("member %s: %w", ev.ExecutionID, err)
		}
	}
	if !final {
		return nil, errors.New("batch stream ended without a final batch message")
	}
	tallies := make([]*progressTally, 0, len(members))
	for _, s := range members {
		if s.completed {
			tallies = append(tallies, s)
		}
	}
	if len(tallies) != m {
		return nil, fmt.Errorf("batch stream carried the completion of %d of %d members", len(tallies), m)
	}
	return tallies, nil
}

// batchMessage is the type of a many-execution stream's batch messages.
const batchMessage conveyor.EventType = "batch"
