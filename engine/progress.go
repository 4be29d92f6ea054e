package engine

import (
	"maps"
	"math"
	"time"

	"github.com/conveyor-run/conveyor"
)

// progressState is a run's progress as it reports it. The percentage it
// derives never goes backwards within an attempt and reaches 100 only when
// the execution completes.
type progressState struct {
	step    int
	total   int // < 0: unknown
	name    string
	frac    float64 // 0..1 inside the current step
	pct     float64 // highest percentage derived so far
	message string
	metrics map[string]float64
	started time.Time
	// timing times the steps for the ETA; sampled says a report gave a
	// fraction since the emitter last looked (see observe).
	timing  stepTiming
	sampled bool
}

// beginStep moves a declarative pipeline to step n of total at now.
func (s *progressState) beginStep(n, total int, name string, now time.Time) {
	s.step, s.total, s.name = n, total, name
	s.frac, s.message, s.sampled = 0, "", false
	s.timing.enter(n, now)
	s.derive()
}

// resume continues from p, where the attempt before got to: its
// percentage stays the floor (the first progress is where it was, not 0)
// and its metrics are kept; a handler's step, total, name and message
// too, as it owns its steps. A declarative pipeline's step begins next.
func (s *progressState) resume(p *conveyor.Progress, ownSteps bool) {
	if p.Percentage != nil {
		s.pct = min(*p.Percentage, conveyor.MaxRunningPercentage)
	}
	s.metrics = maps.Clone(p.Metrics)
	if ownSteps {
		s.step, s.name, s.message = p.CurrentStep, p.CurrentStepName, p.Message
		if p.TotalSteps != nil {
			s.total = *p.TotalSteps
		}
	}
}

// apply merges an update. ownSteps is true for handlers, which say which
// step they are on; a declarative step only reports inside itself.
func (s *progressState) apply(u conveyor.Update, ownSteps bool) {
	if ownSteps {
		if u.Step > 0 && u.Step != s.step {
			s.step, s.frac, s.sampled = u.Step, 0, false
		}
		switch {
		case u.Steps == conveyor.UnknownSteps:
			s.total = -1
		case u.Steps > 0:
			s.total = u.Steps
		}
		if u.StepName != "" {
			s.name = u.StepName
		}
	}
	// Non-finite numbers (a rate of rows/0) cannot be encoded as JSON, and
	// one such event would fail the whole batch of writes it is in.
	if f := u.Done / u.Total; u.Total > 0 && finite(f) {
		s.frac, s.sampled = min(max(f, 0), 1), true
	}
	if u.Message != "" {
		s.message = u.Message
	}
	if len(u.Metrics) > 0 {
		if s.metrics == nil {
			s.metrics = make(map[string]float64, len(u.Metrics))
		}
		for k, v := range u.Metrics {
			if finite(v) {
				s.metrics[k] = v
			}
		}
	}
	s.derive()
}

// observe times what changed since it was last called, at now: a step a
// handler moved to, a fraction reported. The emitter calls it before
// each snapshot rather than report on every call, so the report path
// reads no clock: reports the emitter conflates count as one, seen when
// it publishes them, which is when subscribers see them too.
func (s *progressState) observe(now time.Time) {
	if k := max(s.step, 1); k != s.timing.step {
		at := now
		if s.timing.step == 0 {
			at = s.started // a handler's first step began with the run
		}
		s.timing.enter(k, at)
	}
	if s.sampled {
		s.sampled = false
		s.timing.observe(s.frac, now)
	}
}

func (s *progressState) derive() {
	if s.total <= 0 {
		return
	}
	p := (float64(max(s.step-1, 0)) + s.frac) / float64(s.total) * 100
	p = math.Round(min(p, conveyor.MaxRunningPercentage)*100) / 100
	s.pct = max(s.pct, p)
}

// snapshot returns the progress as clients see it.
func (s *progressState) snapshot(now time.Time) *conveyor.Progress {
	p := &conveyor.Progress{
		CurrentStep:     s.step,
		CurrentStepName: s.name,
		Message:         s.message,
		Metrics:         maps.Clone(s.metrics),
	}
	if s.total > 0 {
		total, pct := s.total, s.pct
		p.TotalSteps, p.Percentage = &total, &pct
		if eta, ok := s.timing.eta(s.total, now); ok {
			p.ETASeconds = &eta
		}
	}
	return p
}

// completed returns the progress of a completed execution: the last step,
// 100 percent. A handler that never gave a total has run all the steps it
// reported.
func (s *progressState) completed() *conveyor.Progress {
	total := s.total
	if total <= 0 {
		total = s.step
	}
	pct := 100.0
	return &conveyor.Progress{
		CurrentStep:     max(s.step, total),
		TotalSteps:      &total,
		Percentage:      &pct,
		CurrentStepName: s.name,
		Message:         s.message,
		Metrics:         maps.Clone(s.metrics),
	}
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
