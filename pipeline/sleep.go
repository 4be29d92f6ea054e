package pipeline

import (
	"context"
	"encoding/json"
	"time"

	"github.com/conveyor-run/conveyor"
)

// SleepSpec is a sleep step: it waits, for demos and tests.
type SleepSpec struct {
	Duration time.Duration
}

// MarshalJSON shows the duration as a Go duration string, like the rest of
// the API.
func (s SleepSpec) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Duration string `json:"duration"`
	}{s.Duration.String()})
}

// Run waits for the duration, or until ctx is done. It reports the elapsed
// time as progress (in seconds) about a hundred times, at most every 100ms,
// so a demo bar moves smoothly without flooding the event log.
func (s *SleepSpec) Run(ctx context.Context, x *conveyor.Exec) error {
	if s.Duration <= 0 {
		return ctx.Err()
	}
	start := time.Now()
	done := time.NewTimer(s.Duration)
	defer done.Stop()
	tick := time.NewTicker(max(100*time.Millisecond, s.Duration/100))
	defer tick.Stop()
	total := s.Duration.Seconds()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done.C:
			x.Progress(conveyor.Update{Done: total, Total: total})
			return nil
		case now := <-tick.C:
			x.Progress(conveyor.Update{Done: min(now.Sub(start).Seconds(), total), Total: total})
		}
	}
}

// NoopSpec is a noop step: it does nothing and completes at once, which
// makes it the step to measure the engine with.
type NoopSpec struct{}

// Run returns at once.
func (*NoopSpec) Run(context.Context, *conveyor.Exec) error { return nil }
