package conveyor

import (
	"math/rand/v2"
	"time"
)

// When a pending execution may start: at once, unless it was submitted
// to run later (a delayed run) or waits to retry (backoff). Claims take
// no execution before then; Execution.RunAt and RetryAt say when.

// Retry defaults: a pipeline that sets none of RetryDelay, RetryBackoff
// and RetryMaxDelay waits 1s, 2s, 4s … up to 10m between attempts.
const (
	DefaultRetryDelay    = time.Second
	DefaultRetryMaxDelay = 10 * time.Minute
	// RetryJitter is how far a retry's wait strays from its backoff at
	// random, either way: a tenth, so that executions that failed
	// together do not all come back at the same instant.
	RetryJitter = 0.1
	// MaxWait is the longest an execution may wait to start: a delayed
	// run (NewExecution.RunAt, Delay) or a retry.
	MaxWait = 365 * 24 * time.Hour
)

// The retry backoffs.
const (
	BackoffExponential = "exponential" // each wait twice the one before, up to the max delay
	BackoffFixed       = "fixed"       // every wait the first
)

// RetryPolicy is how an execution of a pipeline is tried again after an
// attempt fails, times out or loses its node: at most Retries more
// attempts, each after a wait (Wait), jittered. The zero value has no
// retries.
type RetryPolicy struct {
	Retries  int
	Delay    time.Duration // the first wait; 0: DefaultRetryDelay
	Backoff  string        // BackoffExponential ("" too) or BackoffFixed
	MaxDelay time.Duration // the longest wait before jitter; 0: DefaultRetryMaxDelay
	// JitterFunc spreads a wait; nil: Jitter, ±RetryJitter at random.
	// Tests set it to get the same waits every time.
	JitterFunc func(time.Duration) time.Duration
}

// RetryPolicy is p's: its retries and its waits, defaults filled in.
func (p *Pipeline) RetryPolicy() RetryPolicy {
	rp := RetryPolicy{Retries: p.Retries, Delay: p.RetryDelay, Backoff: p.RetryBackoff, MaxDelay: p.RetryMaxDelay}
	if rp.Delay <= 0 {
		rp.Delay = DefaultRetryDelay
	}
	if rp.Backoff == "" {
		rp.Backoff = BackoffExponential
	}
	if rp.MaxDelay <= 0 {
		rp.MaxDelay = DefaultRetryMaxDelay
	}
	return rp
}

// Wait is how long the attempt after attempt (1-based) waits once attempt
// failed, before jitter: Delay after the first attempt, then, with
// exponential backoff, twice the wait before; never more than MaxDelay,
// nor than MaxWait.
func (rp RetryPolicy) Wait(attempt int) time.Duration {
	delay, most := rp.Delay, rp.MaxDelay
	if delay <= 0 {
		delay = DefaultRetryDelay
	}
	if most <= 0 {
		most = DefaultRetryMaxDelay
	}
	most = min(most, MaxWait)
	if rp.Backoff != BackoffFixed {
		for i := 1; i < attempt && delay < most; i++ {
			delay *= 2 // below MaxWait before: no overflow
		}
	}
	return min(delay, most)
}

// RetryAt is when the attempt after attempt may start, attempt having
// ended at now: now plus its Wait, jittered, in whole microseconds (what
// every store keeps).
func (rp RetryPolicy) RetryAt(now time.Time, attempt int) time.Time {
	jitter := rp.JitterFunc
	if jitter == nil {
		jitter = Jitter
	}
	return now.Add(jitter(rp.Wait(attempt))).Truncate(time.Microsecond)
}

// Jitter returns d moved at random by up to RetryJitter of it, either way.
func Jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - RetryJitter + 2*RetryJitter*rand.Float64())) //nolint:gosec // jitter, not a secret
}

// StartAt is when n may start, submitted at now: its RunAt, an RFC 3339
// time, or now plus its Delay, a Go duration ("90s"); nil when it may
// start at once (neither given, or a time not after now). EINVALID
// naming the field when it is malformed, when both are given, when the
// delay is negative, or when the time is more than MaxWait ahead.
func (n *NewExecution) StartAt(now time.Time) (*time.Time, error) {
	var at time.Time
	switch {
	case n.RunAt != "" && n.Delay != "":
		return nil, Errorf(EINVALID, "run_at and delay: give one or the other, not both")
	case n.RunAt != "":
		t, err := time.Parse(time.RFC3339Nano, n.RunAt)
		switch {
		case err != nil:
			return nil, Errorf(EINVALID, "run_at: %q is not an RFC 3339 time, such as 2025-06-01T12:00:00Z", n.RunAt)
		case t.Sub(now) > MaxWait:
			return nil, Errorf(EINVALID, "run_at: %s is more than a year ahead", n.RunAt)
		}
		at = t
	case n.Delay != "":
		d, err := time.ParseDuration(n.Delay)
		switch {
		case err != nil:
			return nil, Errorf(EINVALID, "delay: %q is not a duration, such as 90s or 1h30m", n.Delay)
		case d < 0:
			return nil, Errorf(EINVALID, "delay: %s is negative", n.Delay)
		case d > MaxWait:
			return nil, Errorf(EINVALID, "delay: %s is more than a year", n.Delay)
		}
		at = now.Add(d)
	}
	at = at.UTC().Truncate(time.Microsecond) // as every store keeps it
	if !at.After(now) {
		return nil, nil
	}
	return &at, nil
}
