package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/pipeline"
)

// Names of the pipelines the scenarios run. A server that `conveyor bench
// --server` targets must have them: start it with `conveyor serve
// --bench-pipelines`, which registers Pipelines().
const (
	NoopPipeline     = "bench.noop"
	ProgressPipeline = "bench.progress"
	HoldPipeline     = "bench.hold"
)

// Bounds on what one bench execution may be asked to do, so that a bad
// input cannot keep a server busy for long.
const (
	maxRate        = 10_000
	maxUpdates     = 10_000_000
	maxStartDelay  = 10 * time.Minute
	maxHold        = time.Hour
	defaultHold    = 5 * time.Minute
	progressMetric = "sent_ns" // wall clock of the x.Progress call, Unix ns
	countMetric    = "n"       // 1-based number of the update
)

// Pipelines returns the Go pipelines the scenarios run:
//
//   - bench.noop: one noop step; it measures the engine alone.
//   - bench.progress: a handler that reports ProgressInput.Count updates
//     at ProgressInput.Rate per second from ProgressInput.StartNS on, each
//     with the wall clock of the call in the metric sent_ns and its number
//     in the metric n, then completes.
//   - bench.hold: a handler that runs until cancelled, or HoldInput.Seconds
//     (default 300) have passed, and then completes.
func Pipelines() []*conveyor.Pipeline {
	noop := &pipeline.NoopSpec{}
	return []*conveyor.Pipeline{
		{
			Name:        NoopPipeline,
			Description: "conveyor bench: one noop step",
			Steps:       []conveyor.Step{{Name: "noop", Kind: "noop", Spec: noop, Run: noop.Run}},
		},
		{
			Name:        ProgressPipeline,
			Description: "conveyor bench: reports progress at a given rate with its send time",
			Handler:     reportProgress,
		},
		{
			Name:        HoldPipeline,
			Description: "conveyor bench: runs until cancelled",
			Handler:     hold,
		},
	}
}

// ProgressInput is the input of bench.progress.
type ProgressInput struct {
	Rate    float64 `json:"rate"`     // updates per second, up to 10,000
	Count   int     `json:"count"`    // updates in all, up to 10,000,000
	StartNS int64   `json:"start_ns"` // Unix ns of the first update; 0 or past: at once
}

func reportProgress(ctx context.Context, x *conveyor.Exec) error {
	var in ProgressInput
	if err := json.Unmarshal(x.Input, &in); err != nil {
		return conveyor.Errorf(conveyor.EINVALID, "input: %v", err)
	}
	switch {
	case in.Rate <= 0 || in.Rate > maxRate:
		return conveyor.Errorf(conveyor.EINVALID, "rate must be above 0 and at most %d, got %g", maxRate, in.Rate)
	case in.Count < 0 || in.Count > maxUpdates:
		return conveyor.Errorf(conveyor.EINVALID, "count must be 0 to %d, got %d", maxUpdates, in.Count)
	}
	start := time.Unix(0, in.StartNS)
	now := time.Now()
	if start.After(now.Add(maxStartDelay)) {
		return conveyor.Errorf(conveyor.EINVALID, "start_ns is more than %s ahead", maxStartDelay)
	}
	if start.Before(now) {
		start = now // late: keep the rate, shift the schedule
	}
	x.Progress(conveyor.Update{Step: 1, Steps: 1, StepName: "report", Total: float64(in.Count)})

	interval := time.Duration(float64(time.Second) / in.Rate)
	timer := time.NewTimer(time.Until(start))
	defer timer.Stop()
	for n := 1; n <= in.Count; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		x.Progress(conveyor.Update{Done: float64(n), Total: float64(in.Count), Metrics: map[string]float64{
			progressMetric: float64(time.Now().UnixNano()),
			countMetric:    float64(n),
		}})
		// On a fixed schedule, so a slow update does not slow the rate.
		timer.Reset(time.Until(start.Add(time.Duration(n) * interval)))
	}
	return nil
}

// HoldInput is the input of bench.hold.
type HoldInput struct {
	Seconds float64 `json:"seconds"` // how long at most; default 300, up to 3600
}

func hold(ctx context.Context, x *conveyor.Exec) error {
	var in HoldInput
	if err := json.Unmarshal(x.Input, &in); err != nil {
		return conveyor.Errorf(conveyor.EINVALID, "input: %v", err)
	}
	d := time.Duration(in.Seconds * float64(time.Second))
	switch {
	case d == 0:
		d = defaultHold
	case d < 0 || d > maxHold:
		return conveyor.Errorf(conveyor.EINVALID, "seconds must be 0 to %d, got %g", int(maxHold.Seconds()), in.Seconds)
	}
	x.Progress(conveyor.Update{Step: 1, Steps: 1, StepName: "hold", Message: fmt.Sprintf("holding for up to %s", d)})
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
