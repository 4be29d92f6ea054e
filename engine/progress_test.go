package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

func pct(p *conveyor.Progress) float64 {
	if p.Percentage == nil {
		return -1
	}
	return *p.Percentage
}

func TestPercentageNeverGoesBackwardsAndStopsBelow100(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	s := progressState{total: -1, started: start}
	s.beginStep(1, 2, "a", start)
	steps := []struct {
		u    conveyor.Update
		want float64
	}{
		{conveyor.Update{Done: 1, Total: 2}, 25},
		{conveyor.Update{Done: 1, Total: 4}, 25}, // lower fraction: hold
		{conveyor.Update{Done: 2, Total: 2}, 50},
		{conveyor.Update{Done: 5, Total: 2}, 50}, // over 1: clamped
	}
	for i, st := range steps {
		s.apply(st.u, false)
		if got := pct(s.snapshot(start)); got != st.want {
			t.Fatalf("update %d: percentage %v, want %v", i, got, st.want)
		}
	}
	s.beginStep(2, 2, "b", start)
	s.apply(conveyor.Update{Done: 1, Total: 1}, false)
	if got := pct(s.snapshot(start)); got != conveyor.MaxRunningPercentage {
		t.Fatalf("last step done while running: %v, want %v", got, conveyor.MaxRunningPercentage)
	}
	done := s.completed()
	if *done.Percentage != 100 || done.CurrentStep != 2 || *done.TotalSteps != 2 {
		t.Fatalf("completed = %+v", done)
	}
}

func TestHandlerStepsAndUnknownTotal(t *testing.T) {
	t.Parallel()
	s := progressState{total: -1}
	s.apply(conveyor.Update{Step: 3, StepName: "search", Message: "m", Metrics: map[string]float64{"tokens": 10}}, true)
	p := s.snapshot(time.Time{})
	if p.TotalSteps != nil || p.Percentage != nil || p.CurrentStep != 3 || p.CurrentStepName != "search" || p.ETASeconds != nil {
		t.Fatalf("unknown total: %+v", p)
	}
	s.apply(conveyor.Update{Steps: 4, Metrics: map[string]float64{"cost": 2}}, true)
	p = s.snapshot(time.Time{})
	if *p.TotalSteps != 4 || *p.Percentage != 50 || p.Metrics["tokens"] != 10 || p.Metrics["cost"] != 2 || p.Message != "m" {
		t.Fatalf("after total: %+v", p)
	}
	s.apply(conveyor.Update{Steps: conveyor.UnknownSteps}, true)
	if p := s.snapshot(time.Time{}); p.TotalSteps != nil || p.Percentage != nil {
		t.Fatalf("total cleared: %+v", p)
	}
	if done := s.completed(); *done.TotalSteps != 3 || *done.Percentage != 100 {
		t.Fatalf("completed with unknown total: %+v", done)
	}
	// A declarative step's report may not move the step.
	s.apply(conveyor.Update{Step: 9, StepName: "x"}, false)
	if s.step != 3 || s.name != "search" {
		t.Fatalf("a step moved the pipeline to %d %q", s.step, s.name)
	}
}

func BenchmarkReport(b *testing.B) {
	r := &run{kick: make(chan struct{}, 1)}
	r.state.beginStep(1, 3, "a", time.Time{})
	u := conveyor.Update{Done: 1, Total: 100, Message: "working"}
	b.ReportAllocs()
	for i := range b.N {
		u.Done = float64(i % 100)
		r.report(u, 1)
	}
}

// BenchmarkSnapshot is the emitter's share of each progress event: a
// report, then observing and snapshotting it with an ETA from history.
func BenchmarkSnapshot(b *testing.B) {
	start := time.Unix(1000, 0)
	s := progressState{total: -1, started: start}
	s.timing.history = &stepHistory{}
	s.timing.history.record([]float64{60, 60, 60})
	s.beginStep(1, 3, "a", start)
	u := conveyor.Update{Done: 1, Total: 100, Message: "working"}
	b.ReportAllocs()
	for i := range b.N {
		u.Done = float64(i % 100)
		s.apply(u, false)
		now := start.Add(time.Duration(i) * time.Millisecond)
		s.observe(now)
		_ = s.snapshot(now)
	}
}

func TestNonFiniteNumbersAreDropped(t *testing.T) {
	t.Parallel()
	s := progressState{}
	s.beginStep(1, 2, "a", time.Time{})
	inf := math.Inf(1)
	s.apply(conveyor.Update{Done: 1, Total: 2, Metrics: map[string]float64{"rows": 5}}, false)
	s.apply(conveyor.Update{Done: inf, Total: inf, Metrics: map[string]float64{"rate": inf, "nan": math.NaN(), "rows": 6}}, false)
	p := s.snapshot(time.Time{})
	if *p.Percentage != 25 || p.Metrics["rows"] != 6 || len(p.Metrics) != 1 {
		t.Fatalf("after non-finite numbers: %v%% %v", *p.Percentage, p.Metrics)
	}
	if _, err := json.Marshal(p); err != nil {
		t.Fatalf("progress cannot be encoded: %v", err)
	}
}

// TestProgressWaitsForReservedSeqs: on a shared store a run publishes no
// progress past the seqs its lease reserves; what waits is published, as
// the newest progress, once a renewal reserves more.
func TestProgressWaitsForReservedSeqs(t *testing.T) {
	t.Parallel()
	var published []conveyor.Event
	e := &Engine{cfg: Config{
		NowFunc:               time.Now,
		ProgressStoreInterval: time.Hour, // nothing is due for the store
		PublishFunc:           func(ev conveyor.Event) { published = append(published, ev) },
		Metrics:               noMetrics{},
	}}
	r := &run{e: e, ex: &conveyor.Execution{ID: "x", Attempt: 1}, kick: make(chan struct{}, 1), seq: 1, reserved: 3, storedAt: time.Now()}
	r.state.total = -1
	for i := range 5 {
		r.report(conveyor.Update{Message: fmt.Sprint("update ", i)}, 0)
		r.flush()
	}
	messages := func() (ms []string) {
		for _, ev := range published {
			ms = append(ms, fmt.Sprintf("#%d %s", ev.Seq, ev.Progress.Message))
		}
		return ms
	}
	if got, want := messages(), []string{"#2 update 0", "#3 update 1"}; !slices.Equal(got, want) {
		t.Fatalf("published %q before the renewal, want %q", got, want)
	}
	if l := r.nextLease(); l.ExecutionID != "x" || l.SeqReserved != 3+conveyor.SeqReservation {
		t.Errorf("next lease %+v, want x reserving up to %d", l, 3+conveyor.SeqReservation)
	}

	r.reserve(10)
	select {
	case <-r.kick:
	default:
		t.Fatal("reserve did not wake the emitter")
	}
	r.flush()
	if got, want := messages(), []string{"#2 update 0", "#3 update 1", "#4 update 4"}; !slices.Equal(got, want) {
		t.Fatalf("published %q after the renewal, want %q", got, want)
	}
}
