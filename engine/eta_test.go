package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// The estimator's tests inject every time: a report is applied, then
// observed and snapshot at a given instant, as the emitter does.

var etaBase = time.Unix(1_000_000, 0)

func secs(s float64) time.Time { return etaBase.Add(time.Duration(s * float64(time.Second))) }

// etaAt is the ETA the emitter would publish at now.
func etaAt(s *progressState, now time.Time) *float64 {
	s.observe(now)
	return s.snapshot(now).ETASeconds
}

// reportAt reports fraction f of the current step at now and returns the
// ETA published with it.
func reportAt(s *progressState, f float64, now time.Time) *float64 {
	s.apply(conveyor.Update{Done: f, Total: 1}, false)
	return etaAt(s, now)
}

func show(eta *float64) string {
	if eta == nil {
		return "null"
	}
	return fmt.Sprint(*eta)
}

func TestETAWithoutHistoryNeedsTwoReports(t *testing.T) {
	t.Parallel()
	s := progressState{total: -1, started: etaBase}
	s.beginStep(1, 4, "a", etaBase)
	if eta := etaAt(&s, secs(0.5)); eta != nil {
		t.Fatalf("ETA %s before any report, want null", show(eta))
	}
	if eta := reportAt(&s, 0.1, secs(1)); eta != nil {
		t.Fatalf("ETA %s after one report, want null", show(eta))
	}
	// 0.1 of the step per second: the step takes 10 s, 8 s are left, and
	// the three steps after it, with no history, are taken to be alike.
	if eta := reportAt(&s, 0.2, secs(2)); eta == nil || *eta != 38 {
		t.Fatalf("ETA %s after two reports, want 38", show(eta))
	}
	if eta := etaAt(&s, secs(3)); eta == nil || *eta != 37 {
		t.Fatalf("ETA %s a second later, want 37", show(eta))
	}
	// A new step starts without a rate of its own, and with no history
	// there is no basis again.
	s.beginStep(2, 4, "b", secs(10))
	if eta := reportAt(&s, 0.5, secs(11)); eta != nil {
		t.Fatalf("ETA %s after the new step's first report, want null", show(eta))
	}
}

// TestETAFallsSteadilyAtTheUsualRate: with history, a run going at the
// usual pace sees its ETA fall by the time that passes, report after
// report and between reports, and reach the minimum, never 0, at the end.
func TestETAFallsSteadilyAtTheUsualRate(t *testing.T) {
	t.Parallel()
	durations := []float64{10, 20, 10}
	h := &stepHistory{}
	for range 3 {
		h.record(durations)
	}
	s := progressState{total: -1, started: etaBase}
	s.timing.history = h
	s.beginStep(1, 3, "a", etaBase)
	if eta := etaAt(&s, etaBase); eta == nil || *eta != 40 {
		t.Fatalf("ETA %s at the start, want 40 (the typical steps)", show(eta))
	}
	prev, begun := math.Inf(1), 0.0
	check := func(what string, eta *float64, now time.Time) {
		t.Helper()
		want := max(40-now.Sub(etaBase).Seconds(), minETA)
		if eta == nil || math.Abs(*eta-want) > 0.051 || *eta > prev || *eta <= 0 {
			t.Fatalf("%s at %s: ETA %s, want %.1f, at most %v and above 0", what, now.Sub(etaBase), show(eta), want, prev)
		}
		prev = *eta
	}
	for k, d := range durations {
		start := secs(begun)
		s.beginStep(k+1, 3, fmt.Sprint("step ", k+1), start)
		for i := range 10 {
			now := start.Add(time.Duration(float64(i) / 10 * d * float64(time.Second)))
			check(fmt.Sprintf("step %d report %d/10", k+1, i), reportAt(&s, float64(i)/10, now), now)
			later := now.Add(time.Duration(d / 20 * float64(time.Second)))
			check(fmt.Sprintf("step %d between reports", k+1), etaAt(&s, later), later)
		}
		begun += d
		check(fmt.Sprintf("step %d done", k+1), reportAt(&s, 1, secs(begun)), secs(begun))
	}
}

func TestETANeverReadsZeroBeforeTheEnd(t *testing.T) {
	t.Parallel()
	t.Run("step running late", func(t *testing.T) {
		t.Parallel()
		h := &stepHistory{}
		h.record([]float64{1, 2})
		s := progressState{total: -1, started: etaBase}
		s.timing.history = h
		s.beginStep(1, 2, "a", etaBase)
		// Overdue, and not reporting: what is left is the step after.
		if eta := etaAt(&s, secs(5)); eta == nil || *eta != 2 {
			t.Fatalf("ETA %s with step 1 overdue, want 2", show(eta))
		}
		s.beginStep(2, 2, "b", secs(5))
		if eta := etaAt(&s, secs(60)); eta == nil || *eta != minETA {
			t.Fatalf("ETA %s with the last step overdue, want %v", show(eta), minETA)
		}
	})
	t.Run("last step reports done", func(t *testing.T) {
		t.Parallel()
		s := progressState{total: -1, started: etaBase}
		s.beginStep(1, 1, "only", etaBase)
		reportAt(&s, 0, etaBase)
		eta := reportAt(&s, 1, secs(0.01))
		if eta == nil || *eta != minETA {
			t.Fatalf("ETA %s with the work done but not final, want %v", show(eta), minETA)
		}
		b, err := json.Marshal(s.snapshot(secs(0.02)))
		if err != nil || !strings.Contains(string(b), `"eta_seconds":0.1`) {
			t.Fatalf("progress %s (%v), want eta_seconds 0.1", b, err)
		}
		if done := s.completed(); done.ETASeconds != nil {
			t.Fatalf("completed progress has ETA %s", show(done.ETASeconds))
		}
	})
}

// TestETAOfHandlerSteps: a handler's steps are timed from when the
// emitter sees them change, its first from the start of the run; with the
// total unknown there is no ETA.
func TestETAOfHandlerSteps(t *testing.T) {
	t.Parallel()
	s := progressState{total: -1, started: etaBase}
	s.apply(conveyor.Update{Step: 1, Steps: conveyor.UnknownSteps, Done: 0, Total: 10}, true)
	etaAt(&s, secs(1))
	s.apply(conveyor.Update{Done: 5, Total: 10}, true)
	if eta := etaAt(&s, secs(6)); eta != nil {
		t.Fatalf("ETA %s with the total unknown, want null", show(eta))
	}
	s.apply(conveyor.Update{Steps: 2}, true)
	// 0.1 per second since the first report at 1 s: step 1 ends at 11 s,
	// step 2 is taken to take as long as step 1, 11 s.
	if eta := etaAt(&s, secs(6)); eta == nil || *eta != 16 {
		t.Fatalf("ETA %s with the total known, want 16", show(eta))
	}
	s.apply(conveyor.Update{Step: 2, Done: 0, Total: 1}, true)
	etaAt(&s, secs(12))
	s.apply(conveyor.Update{Step: 3, Steps: 3}, true)
	etaAt(&s, secs(20))
	s.apply(conveyor.Update{Step: 1}, true) // back to step 1 for 2 s
	etaAt(&s, secs(21))
	s.apply(conveyor.Update{Step: 3}, true)
	etaAt(&s, secs(23))
	got := s.timing.completed(secs(30))
	if want := []float64{12 + 2, 8, 1 + 7}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("step durations %v, want %v", got, want)
	}
}

func TestStepHistoryTypical(t *testing.T) {
	t.Parallel()
	h := &stepHistory{}
	if _, ok := h.load().step(1); ok {
		t.Fatal("an empty history has a typical duration")
	}
	if sum, unknown := h.load().between(2, 3); sum != 0 || unknown != 2 {
		t.Fatalf("empty history: between(2, 3) = %v, %d", sum, unknown)
	}
	for range 3 {
		h.record([]float64{10, -1, 3})
	}
	h.record([]float64{100, -1, 3}) // one slow run does not move the median
	if d, ok := h.load().step(1); !ok || d != 10 {
		t.Fatalf("typical step 1 = %v, %v; want 10", d, ok)
	}
	if _, ok := h.load().step(2); ok {
		t.Fatal("a step that never ran has a typical duration")
	}
	for _, c := range []struct {
		a, b    int
		sum     float64
		unknown int
	}{{1, 3, 13, 1}, {2, 5, 3, 3}, {3, 3, 3, 0}, {4, 3, 0, 0}, {5, 6, 0, 2}} {
		if sum, unknown := h.load().between(c.a, c.b); sum != c.sum || unknown != c.unknown {
			t.Errorf("between(%d, %d) = %v, %d; want %v, %d", c.a, c.b, sum, unknown, c.sum, c.unknown)
		}
	}
	// Only the last historySize runs count.
	h = &stepHistory{}
	for i := range historySize + 10 {
		h.record([]float64{float64(i + 1)})
	}
	if d, _ := h.load().step(1); d != 35.5 {
		t.Fatalf("typical of runs 11..60 = %v, want 35.5", d)
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestETALearnsFromCompletedRuns is the acceptance test on a real
// engine with a clock the test moves: a handler whose steps take known
// times, three completed runs, and the fourth's ETA at 25 % of its time
// within 15 % of the time it really had left. Each report waits until it
// is published, so the emitter sees every one at the time it was made.
func TestETALearnsFromCompletedRuns(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: etaBase}
	var engineEvents atomic.Pointer[published] // the engine's, once started
	runs := [][]int{                           // seconds per step, per run
		{6, 6, 4}, {5, 7, 4}, {7, 5, 5}, // the history
		{6, 6, 4}, // the run measured: 16 s, 4 s of it in step 1
	}
	handler := func(_ context.Context, x *conveyor.Exec) error {
		var in struct{ Run int }
		if err := json.Unmarshal(x.Input, &in); err != nil {
			return err
		}
		steps := runs[in.Run]
		for k, d := range steps {
			for i := range d + 1 {
				if i > 0 {
					clock.advance(time.Second)
				}
				msg := fmt.Sprintf("step %d: %d of %d", k+1, i, d)
				x.Progress(conveyor.Update{Step: k + 1, Steps: len(steps), Done: float64(i), Total: float64(d), Message: msg})
				if err := engineEvents.Load().waitUntil(func(ev conveyor.Event) bool {
					return ev.ExecutionID == x.ID && ev.Progress != nil && ev.Progress.Message == msg
				}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	e, pub := startEngine(t, Config{
		NowFunc:   clock.Now,
		Pipelines: map[string]*conveyor.Pipeline{"timed": {Name: "timed", Handler: handler}},
	})
	engineEvents.Store(pub)
	for run := range runs {
		ex, err := e.Submit(t.Context(), "timed", json.RawMessage(fmt.Sprintf(`{"run": %d}`, run)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if final := pub.waitFinal(t, ex.ID); final.Type != conveyor.EventCompleted {
			t.Fatalf("run %d ended %s: %v", run+1, final.Type, final.Error)
		}
		etas := pub.etas(ex.ID)
		if run == 0 {
			// No history: the first report of step 1 has no basis, the
			// second gives a rate.
			if etas[0].eta != nil || etas[1].eta == nil {
				t.Fatalf("run 1: ETAs %v, want null then a number", etas)
			}
		}
		if run < len(runs)-1 {
			continue
		}
		prev := math.Inf(1)
		for _, e := range etas {
			if e.eta == nil || *e.eta <= 0 || *e.eta > prev {
				t.Fatalf("run 4: ETAs %v, want each above 0 and none above the one before", etas)
			}
			prev = *e.eta
		}
		start, end := etas[0].at, pub.waitFinal(t, ex.ID).Time
		at := start.Add(end.Sub(start) / 4)
		for _, e := range etas {
			if e.at.Equal(at) {
				left := end.Sub(at).Seconds()
				if math.Abs(*e.eta-left) > 0.15*left {
					t.Fatalf("ETA %v at 25 %%, %v s left", *e.eta, left)
				}
				return
			}
		}
		t.Fatalf("no progress at 25 %% (%s): %v", at, etas)
	}
}

// waitUntil waits up to 30 s for a published event that matches.
func (p *published) waitUntil(match func(conveyor.Event) bool) error {
	deadline := time.After(30 * time.Second)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.events); i++ {
			if match(p.events[i]) {
				p.mu.Unlock()
				return nil
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			return fmt.Errorf("no matching event published in 30s")
		}
	}
}

type timedETA struct {
	at  time.Time
	eta *float64
}

func (e timedETA) String() string { return fmt.Sprintf("%s:%s", e.at.Sub(etaBase), show(e.eta)) }

// etas returns the ETA of each progress event published for id.
func (p *published) etas(id string) []timedETA {
	p.mu.Lock()
	defer p.mu.Unlock()
	var etas []timedETA
	for _, ev := range p.events {
		if ev.ExecutionID == id && ev.Type == conveyor.EventProgress {
			etas = append(etas, timedETA{ev.Time, ev.Progress.ETASeconds})
		}
	}
	return etas
}
