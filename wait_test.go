package conveyor_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

func TestRetryWait(t *testing.T) {
	t.Parallel()
	exponential := (&conveyor.Pipeline{Retries: 20}).RetryPolicy() // the defaults: 1s, doubling, up to 10m
	fixed := conveyor.RetryPolicy{Retries: 3, Delay: 2 * time.Second, Backoff: conveyor.BackoffFixed}
	for _, tc := range []struct {
		name    string
		policy  conveyor.RetryPolicy
		attempt int
		want    time.Duration
	}{
		{"first", exponential, 1, time.Second},
		{"second", exponential, 2, 2 * time.Second},
		{"fifth", exponential, 5, 16 * time.Second},
		{"tenth", exponential, 10, 512 * time.Second},
		{"capped", exponential, 11, 10 * time.Minute},
		{"far past the cap", exponential, 100, 10 * time.Minute},
		{"zero value", conveyor.RetryPolicy{}, 3, 4 * time.Second},
		{"fixed first", fixed, 1, 2 * time.Second},
		{"fixed later", fixed, 7, 2 * time.Second},
		{"own cap", conveyor.RetryPolicy{Delay: time.Minute, MaxDelay: 3 * time.Minute}, 4, 3 * time.Minute},
		{"delay over the cap", conveyor.RetryPolicy{Delay: time.Hour, MaxDelay: time.Minute}, 1, time.Minute},
		{"cap over a year", conveyor.RetryPolicy{Delay: 200 * 24 * time.Hour, MaxDelay: 1 << 62}, 30, conveyor.MaxWait},
	} {
		if got := tc.policy.Wait(tc.attempt); got != tc.want {
			t.Errorf("%s: Wait(%d) = %s, want %s", tc.name, tc.attempt, got, tc.want)
		}
	}
}

func TestRetryAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	// Injected jitter: RetryAt is now plus what it makes of the wait,
	// in whole microseconds.
	var asked []time.Duration
	rp := conveyor.RetryPolicy{Retries: 5, JitterFunc: func(d time.Duration) time.Duration {
		asked = append(asked, d)
		return d + d/10
	}}
	for attempt, want := range map[int]time.Duration{1: 1100 * time.Millisecond, 3: 4400 * time.Millisecond} {
		asked = nil
		got := rp.RetryAt(now, attempt)
		if wantAt := now.Add(want).Truncate(time.Microsecond); !got.Equal(wantAt) {
			t.Errorf("RetryAt(attempt %d) = %s, want %s", attempt, got.Format(time.RFC3339Nano), wantAt.Format(time.RFC3339Nano))
		}
		if len(asked) != 1 || asked[0] != rp.Wait(attempt) {
			t.Errorf("attempt %d: jitter asked for %v, want [%s]", attempt, asked, rp.Wait(attempt))
		}
	}

	// The default jitter stays within ±10 % and does spread.
	rp.JitterFunc = nil
	seen := map[time.Time]bool{}
	for range 1000 {
		at := rp.RetryAt(now, 4) // a wait of 8s
		if wait := at.Sub(now); wait < 7200*time.Millisecond-time.Microsecond || wait > 8800*time.Millisecond {
			t.Fatalf("RetryAt waits %s, want 7.2s to 8.8s", wait)
		}
		seen[at] = true
	}
	if len(seen) < 100 {
		t.Errorf("1000 retries fell on %d instants, want them spread", len(seen))
	}
}

func TestInterruptWaitsToRetry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	policy := conveyor.RetryPolicy{Retries: 2, Delay: 5 * time.Second, JitterFunc: func(d time.Duration) time.Duration { return d }}
	ex := &conveyor.Execution{ID: "x", Status: conveyor.StatusRunning, Attempt: 2, LastSeq: 9}
	ev := ex.Interrupt(now, policy, conveyor.NodeStopped)
	want := now.Add(10 * time.Second) // the second attempt's wait
	if ev.Type != conveyor.EventRetrying || ev.RetryAt == nil || !ev.RetryAt.Equal(want) {
		t.Fatalf("Interrupt = %s %v, want retrying at %s", ev.Type, ev.RetryAt, want)
	}
	if ex.Status != conveyor.StatusPending || ex.RetryAt == nil || !ex.RetryAt.Equal(want) {
		t.Errorf("after Interrupt: %s, retry at %v; want pending, %s", ex.Status, ex.RetryAt, want)
	}

	// A cancel of the waiting retry clears RetryAt; so would any final event.
	if _, err := ex.Cancel(now.Add(time.Second)); err != nil || ex.RetryAt != nil {
		t.Errorf("after Cancel: retry at %v, %v; want nil", ex.RetryAt, err)
	}

	// No retries left: failed, no wait.
	last := &conveyor.Execution{ID: "y", Status: conveyor.StatusRunning, Attempt: 3}
	if ev := last.Interrupt(now, policy, conveyor.NodeStopped); ev.Type != conveyor.EventFailed || ev.RetryAt != nil {
		t.Errorf("Interrupt of the last attempt = %s, retry at %v; want failed, nil", ev.Type, ev.RetryAt)
	}
}

func TestStartAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		runAt, delay string
		want         time.Time // zero: at once
		err          string    // the start of the message, when EINVALID
	}{
		{name: "neither"},
		{name: "delay", delay: "90s", want: now.Add(90 * time.Second)},
		{name: "delay in units", delay: "1h30m", want: now.Add(90 * time.Minute)},
		{name: "zero delay", delay: "0s"},
		{name: "run_at", runAt: "2026-03-02T08:00:00+02:00", want: time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)},
		{name: "run_at in nanoseconds", runAt: "2026-03-01T12:00:01.123456789Z", want: time.Date(2026, 3, 1, 12, 0, 1, 123456000, time.UTC)},
		{name: "run_at past", runAt: "2020-01-01T00:00:00Z"},
		{name: "run_at now", runAt: "2026-03-01T12:00:00Z"},
		{name: "run_at a year ahead", runAt: "2027-03-01T12:00:00Z", want: now.Add(conveyor.MaxWait)},
		{name: "both", runAt: "2026-03-02T00:00:00Z", delay: "1s", err: "run_at and delay: "},
		{name: "run_at malformed", runAt: "tomorrow", err: "run_at: "},
		{name: "run_at without zone", runAt: "2026-03-02T00:00:00", err: "run_at: "},
		{name: "run_at over a year", runAt: "2027-03-01T12:00:01Z", err: "run_at: "},
		{name: "delay malformed", delay: "90", err: "delay: "},
		{name: "delay negative", delay: "-5s", err: "delay: "},
		{name: "delay over a year", delay: "8761h", err: "delay: "},
	} {
		n := conveyor.NewExecution{Pipeline: "p", RunAt: tc.runAt, Delay: tc.delay}
		got, err := n.StartAt(now)
		switch {
		case tc.err != "":
			if conveyor.ErrorCode(err) != conveyor.EINVALID || !strings.HasPrefix(conveyor.ErrorMessage(err), tc.err) {
				t.Errorf("%s: StartAt = %v, %v; want EINVALID starting %q", tc.name, got, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: StartAt: %v", tc.name, err)
		case tc.want.IsZero() && got != nil:
			t.Errorf("%s: StartAt = %s, want nil (at once)", tc.name, got)
		case !tc.want.IsZero() && (got == nil || !got.Equal(tc.want) || got.Location() != time.UTC):
			t.Errorf("%s: StartAt = %v, want %s in UTC", tc.name, got, tc.want)
		}
	}
}

// FuzzStartAt: whatever run_at and delay say, StartAt never panics and
// answers at once (nil), EINVALID, or a time after now at most MaxWait
// ahead, in UTC.
func FuzzStartAt(f *testing.F) {
	for _, s := range [][2]string{{"", "90s"}, {"2026-03-02T00:00:00Z", ""}, {"x", "y"}, {"", "-1ns"},
		{"9999-12-31T23:59:59Z", ""}, {"", "2562047h"}, {"0001-01-01T00:00:00Z", ""}, {"2026-03-01T12:00:00.000000001+14:00", ""}} {
		f.Add(s[0], s[1])
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, runAt, delay string) {
		n := conveyor.NewExecution{RunAt: runAt, Delay: delay}
		at, err := n.StartAt(now)
		switch {
		case err != nil:
			if conveyor.ErrorCode(err) != conveyor.EINVALID {
				t.Fatalf("StartAt(%q, %q): %v, want EINVALID", runAt, delay, err)
			}
		case at != nil && (!at.After(now) || at.Sub(now) > conveyor.MaxWait || at.Location() != time.UTC):
			t.Fatalf("StartAt(%q, %q) = %s, want after %s, at most a year ahead, in UTC", runAt, delay, at, now)
		}
	})
}

func TestPipelineInfoShowsRetryPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    conveyor.Pipeline
		want string
	}{
		{conveyor.Pipeline{Name: "p"}, `"retry_delay":"1s","retry_backoff":"exponential","retry_max_delay":"10m0s"`},
		{conveyor.Pipeline{Name: "p", Retries: 2, RetryDelay: 250 * time.Millisecond, RetryBackoff: conveyor.BackoffFixed, RetryMaxDelay: time.Hour},
			`"retry_delay":"250ms","retry_backoff":"fixed","retry_max_delay":"1h0m0s"`},
	} {
		b, err := json.Marshal(tc.p.Info())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("info %s, want it to contain %s", b, tc.want)
		}
	}
}
