package engine

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-run/conveyor"
)

// The ETA of a running execution is the time left in its current step plus
// the typical duration of the steps after it. Typical durations come from
// the pipeline's recent completed executions on this node (stepHistory);
// the time left in the current step blends that history with the step's
// own progress rate in this run (stepTiming.eta). docs/guide.md describes
// the method for users; keep the two in step.

const (
	// historySize is how many completed executions each step's typical
	// duration is taken from.
	historySize = 50
	// maxTimedSteps bounds the steps timed per run and kept in history: a
	// handler may number its steps without limit, and past a few hundred
	// a per-step history costs memory for no better estimate.
	maxTimedSteps = 256
	// minETA is the smallest ETA shown: 0 would say the execution is done
	// while it is not (the last step may still be writing its result).
	minETA = 0.1
)

// stepHistory is the recent step durations of one pipeline on this node.
// Runs read it on every progress event and write it once per completed
// execution, so readers load an immutable summary (no lock, no contention
// between runs) and record rebuilds it.
type stepHistory struct {
	mu      sync.Mutex     // serialises record
	rings   []durationRing // index step-1; guarded by mu
	typical atomic.Pointer[typicalDurations]
}

// durationRing is the last historySize durations of one step, in seconds.
type durationRing struct {
	d    [historySize]float64
	n    int // how many of d are filled
	next int // where the next one goes
}

// typicalDurations is a snapshot of a pipeline's typical step durations:
// the median of each step's ring. The median, because one run held up by
// a slow disk or a cold cache should not move the ETA of the next fifty.
// Prefix sums make the sum over any range of steps O(1).
type typicalDurations struct {
	median []float64 // index step-1; meaningful where the step has history
	sum    []float64 // sum[i]: total median of the known steps among 1..i
	known  []int     // known[i]: how many of steps 1..i have history
}

// newHistories returns an empty history for each pipeline. The map is
// fixed once the engine is built, so runs read it without a lock.
func newHistories(pipelines map[string]*conveyor.Pipeline) map[string]*stepHistory {
	h := make(map[string]*stepHistory, len(pipelines))
	for name := range pipelines {
		h[name] = &stepHistory{}
	}
	return h
}

// load returns the current summary; nil (no history) on a nil history.
func (h *stepHistory) load() *typicalDurations {
	if h == nil {
		return nil
	}
	return h.typical.Load()
}

// record adds the step durations of one completed execution: durations[i]
// is step i+1's, negative for a step that did not run (a handler may skip
// steps).
func (h *stepHistory) record(durations []float64) {
	if h == nil || len(durations) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.typical.Load()
	if len(durations) > len(h.rings) {
		h.rings = append(h.rings, make([]durationRing, len(durations)-len(h.rings))...)
	}
	t := &typicalDurations{median: make([]float64, len(h.rings))}
	if old != nil {
		copy(t.median, old.median)
	}
	var scratch [historySize]float64
	for i, d := range durations {
		if d < 0 {
			continue
		}
		r := &h.rings[i]
		r.d[r.next] = d
		r.next = (r.next + 1) % historySize
		r.n = min(r.n+1, historySize)
		t.median[i] = median(scratch[:r.n], r.d[:r.n])
	}
	t.sum = make([]float64, len(h.rings)+1)
	t.known = make([]int, len(h.rings)+1)
	for i := range h.rings {
		t.sum[i+1], t.known[i+1] = t.sum[i], t.known[i]
		if h.rings[i].n > 0 {
			t.sum[i+1] += t.median[i]
			t.known[i+1]++
		}
	}
	h.typical.Store(t)
}

// median returns the median of ds, sorting a copy in buf.
func median(buf, ds []float64) float64 {
	copy(buf, ds)
	slices.Sort(buf)
	n := len(buf)
	if n%2 == 1 {
		return buf[n/2]
	}
	return (buf[n/2-1] + buf[n/2]) / 2
}

// step returns the typical duration of step k (1-based), if it has one.
func (t *typicalDurations) step(k int) (float64, bool) {
	if t == nil || k < 1 || k >= len(t.known) || t.known[k] == t.known[k-1] {
		return 0, false
	}
	return t.median[k-1], true
}

// between returns the total typical duration of the steps from a to b
// (1-based, inclusive) that have history, and how many have none.
func (t *typicalDurations) between(a, b int) (sum float64, unknown int) {
	if a > b {
		return 0, 0
	}
	unknown = b - a + 1
	if t == nil {
		return 0, unknown
	}
	last := len(t.known) - 1
	if lo, hi := min(a-1, last), min(b, last); lo < hi {
		sum = t.sum[hi] - t.sum[lo]
		unknown -= t.known[hi] - t.known[lo]
	}
	return sum, unknown
}

// sample is one progress report inside a step: when it was seen, in
// seconds since the step began (plain floats keep the estimate to a few
// multiplications), and the fraction of the step it reported.
type sample struct {
	t, f float64
}

// stepTiming times a run's steps: when the current one began, the first
// and latest fractions it reported, and how long the earlier ones took.
// Everything it does per report is O(1) and allocation-free; durations
// grows only when a step begins.
type stepTiming struct {
	history     *stepHistory // the pipeline's; nil: none kept
	step        int          // the step start and the samples belong to; 0 before the first
	start       time.Time
	first, last sample
	samples     int       // reports seen in the step
	durations   []float64 // seconds each step ran, index step-1; < 0: did not run
}

// enter makes step k the current one from now, ending the previous one.
func (st *stepTiming) enter(k int, now time.Time) {
	st.end(now)
	st.step, st.start, st.samples = k, now, 0
}

// end adds the time since the current step began to its duration.
func (st *stepTiming) end(now time.Time) {
	k := st.step
	if k < 1 || k > maxTimedSteps {
		return
	}
	for len(st.durations) < k {
		st.durations = append(st.durations, -1)
	}
	d := max(now.Sub(st.start).Seconds(), 0)
	if st.durations[k-1] < 0 {
		st.durations[k-1] = d
	} else { // a handler came back to a step it had left
		st.durations[k-1] += d
	}
}

// observe records a report of fraction f of the current step, seen at now.
func (st *stepTiming) observe(f float64, now time.Time) {
	if st.samples == 0 || f < st.last.f {
		// The first report, or the step restarted its count: the rate
		// is measured afresh from here.
		at := now.Sub(st.start).Seconds()
		st.first, st.last, st.samples = sample{at, f}, sample{at, f}, 1
		return
	}
	st.last = sample{now.Sub(st.start).Seconds(), f}
	st.samples++
}

// completed ends the last step at now and returns every step's duration.
func (st *stepTiming) completed(now time.Time) []float64 {
	st.end(now)
	st.step = 0
	return st.durations
}

// ownEstimate estimates how long the current step takes in all from its
// own reports: the time to its latest report plus what is left of it at
// the rate between its first and latest reports. It needs two reports
// that moved.
func (st *stepTiming) ownEstimate() (float64, bool) {
	if st.samples < 2 {
		return 0, false
	}
	df, dt := st.last.f-st.first.f, st.last.t-st.first.t
	if df <= 0 || dt <= 0 {
		return 0, false
	}
	return st.last.t + (1-st.last.f)*dt/df, true
}

// eta returns the seconds left of a run with total steps, at now, and
// whether there is a basis for it.
//
// The current step is estimated to take a mix of its typical duration and
// its own estimate, weighted by the fraction it has reported: history
// leads at the start of a step, where the step's own rate rests on little,
// and the step's own rate leads near its end. What is left of it is that
// estimate minus the time it has run, never below zero: a step running
// late adds nothing until its reports say it is slower. Each later step
// adds its typical duration, or, with no history, the current step's
// estimate: steps of one pipeline are more alike than not, and an ETA
// that is rough for a first run beats none.
func (st *stepTiming) eta(total int, now time.Time) (float64, bool) {
	k := st.step
	if total <= 0 || k < 1 {
		return 0, false
	}
	typical := st.history.load()
	h, hasHistory := typical.step(k)
	own, hasOwn := st.ownEstimate()
	var d float64
	switch {
	case hasHistory && hasOwn:
		w := st.last.f
		d = w*own + (1-w)*h
	case hasHistory:
		d = h
	case hasOwn:
		d = own
	default:
		return 0, false
	}
	left := max(d-now.Sub(st.start).Seconds(), 0)
	sum, unknown := typical.between(k+1, total)
	left += sum + float64(unknown)*d
	return max(math.Round(left*10)/10, minETA), true
}
