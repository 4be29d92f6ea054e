package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

func TestLatencyOf(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := latencyOf(d)
	want := Latency{P50: 50, P90: 90, P99: 99, Max: 100, N: 100}
	if *got != want {
		t.Fatalf("latencyOf(1..100 ms) = %+v, want %+v", *got, want)
	}
	if one := latencyOf([]time.Duration{1500 * time.Microsecond}); one.P50 != 1.5 || one.Max != 1.5 {
		t.Fatalf("latencyOf(1.5ms) = %+v", *one)
	}
	if latencyOf(nil) != nil {
		t.Fatal("latencyOf(nil) is not nil")
	}
}

// TestProgressHandler runs bench.progress with a recording Exec: every
// update after the first carries sent_ns and its number.
func TestProgressHandler(t *testing.T) {
	in, _ := json.Marshal(ProgressInput{Rate: 200, Count: 5})
	var updates []conveyor.Update
	x := &conveyor.Exec{Input: in, ProgressFunc: func(u conveyor.Update) { updates = append(updates, u) }}
	before := time.Now()
	if err := reportProgress(t.Context(), x); err != nil {
		t.Fatal(err)
	}
	if len(updates) != 6 {
		t.Fatalf("got %d updates, want 1 + 5", len(updates))
	}
	for i, u := range updates[1:] {
		sent := time.Unix(0, int64(u.Metrics[progressMetric]))
		if u.Metrics[countMetric] != float64(i+1) || sent.Before(before.Add(-time.Microsecond)) || time.Since(sent) > time.Minute {
			t.Errorf("update %d: metrics %v", i+1, u.Metrics)
		}
	}
}

func TestBenchInputsAreBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		handler conveyor.HandlerFunc
		input   string
		want    string
	}{
		{reportProgress, `{"rate": 0, "count": 1}`, "rate must be above 0"},
		{reportProgress, `{"rate": 1e9, "count": 1}`, "rate must be above 0"},
		{reportProgress, `{"rate": 10, "count": 1000000000}`, "count must be"},
		{reportProgress, `{"rate": 10, "count": 1, "start_ns": 9000000000000000000}`, "ahead"},
		{hold, `{"seconds": 1e9}`, "seconds must be"},
		{hold, `{"seconds": -1}`, "seconds must be"},
	} {
		err := tc.handler(ctx, &conveyor.Exec{Input: json.RawMessage(tc.input)})
		if conveyor.ErrorCode(err) != conveyor.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("input %s: %v, want invalid: %s", tc.input, err, tc.want)
		}
	}
}

func TestHoldEndsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hold(ctx, &conveyor.Exec{Input: json.RawMessage(`{}`)}) }()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("hold returned nil after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hold did not return after cancel")
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Scenario != All || c.Executions != 10_000 || c.Concurrency != 32 || c.ExecutionsRunning != 1000 ||
		c.Rate != 10 || c.Duration != 10*time.Second || c.Subscribers != 10_000 || c.Nodes != 1 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestConfigFloodDefaults(t *testing.T) {
	c := Config{Scenario: SubmitFlood}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 64 || c.Duration != time.Minute || c.Timeout != 11*time.Minute {
		t.Fatalf("submit-flood defaults: concurrency %d, duration %s, timeout %s; want 64, 1m, 11m", c.Concurrency, c.Duration, c.Timeout)
	}
	c = Config{Scenario: SubmitFlood, Duration: 2 * time.Second, Concurrency: 3}
	if err := c.validate(); err != nil || c.Concurrency != 3 || c.Duration != 2*time.Second {
		t.Fatalf("submit-flood with flags: %v, concurrency %d, duration %s", err, c.Concurrency, c.Duration)
	}
}
