package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
)

// TestStatsThroughputAndIDPrefix runs executions to each end and reads
// them back as the dashboard does: counted by status, per minute, and
// found by the start of their id.
func TestStatsThroughputAndIDPrefix(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, 4,
		&conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}},
		&conveyor.Pipeline{Name: "broken", Steps: []conveyor.Step{{Name: "s", Run: func(context.Context, *conveyor.Exec) error { return errors.New("boom") }}}},
		twoSteps("gated", g))
	ctx := t.Context()
	var done []*conveyor.Execution
	for range 3 {
		done = append(done, h.submit("quick", nil))
	}
	failed := h.submit("broken", nil)
	held := h.submit("gated", nil)
	recv(t, g.started)
	for _, ex := range done {
		h.waitStatus(ex.ID, conveyor.StatusCompleted)
	}
	h.waitStatus(failed.ID, conveyor.StatusFailed)

	stats, err := h.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := conveyor.Counts{Running: 1, Completed: 3, Failed: 1}
	if stats.Counts != want || stats.UpTo != conveyor.StatsUpTo {
		t.Errorf("stats = %+v, want counts %+v up to %d", stats, want, conveyor.StatsUpTo)
	}

	tp, err := h.client.Throughput(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tp.BucketSeconds != 60 || len(tp.Buckets) != 60 {
		t.Fatalf("throughput: %d buckets of %d s, want 60 of 60", len(tp.Buckets), tp.BucketSeconds)
	}
	started, finished := 0, 0
	for i, b := range tp.Buckets {
		started += b.Started
		finished += b.Finished
		if i > 0 && !b.Start.Equal(tp.Buckets[i-1].Start.Add(time.Minute)) {
			t.Errorf("bucket %d starts at %s, a minute after %s expected", i, b.Start, tp.Buckets[i-1].Start)
		}
	}
	if last := tp.Buckets[59].Start; time.Since(last) < 0 || time.Since(last) > 2*time.Minute || last.Second() != 0 {
		t.Errorf("the last bucket starts at %s, want the minute now running", last)
	}
	if started != 5 || finished != 4 {
		t.Errorf("throughput: %d started, %d finished over the hour, want 5 and 4", started, finished)
	}
	if tp, err := h.client.Throughput(ctx, 5); err != nil || len(tp.Buckets) != 5 {
		t.Errorf("throughput of 5 minutes: %v, %v", tp, err)
	}

	// The whole id finds the one execution; its first 4 digits (UUIDv7:
	// the top of the time, which moves every few years) find all five.
	page, err := h.client.List(ctx, conveyor.ListFilter{IDPrefix: held.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Executions) != 1 || page.Executions[0].ID != held.ID {
		t.Errorf("id_prefix of a whole id: %v, want %s", page.Executions, held.ID)
	}
	page, err = h.client.List(ctx, conveyor.ListFilter{IDPrefix: held.ID[:4]})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Executions) != 5 {
		t.Errorf("id_prefix %s: %d executions, want 5", held.ID[:4], len(page.Executions))
	}
	send(t, g.release, nil)
	h.waitStatus(held.ID, conveyor.StatusCompleted)
}

// TestThroughputUsesTheServerClock pins the window to the configured
// clock: an hour later, nothing that just ran is in it.
func TestThroughputUsesTheServerClock(t *testing.T) {
	t.Parallel()
	later := time.Now().Add(3 * time.Hour)
	h := setupWith(t, func(c *api.Config) { c.Now = func() time.Time { return later } }, 1,
		&conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	h.waitStatus(h.submit("quick", nil).ID, conveyor.StatusCompleted)
	tp, err := h.client.Throughput(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := later.UTC().Truncate(time.Minute).Add(-59 * time.Minute); !tp.Buckets[0].Start.Equal(want) {
		t.Errorf("first bucket at %s, want %s", tp.Buckets[0].Start, want)
	}
	for i, b := range tp.Buckets {
		if b.Started != 0 || b.Finished != 0 {
			t.Errorf("bucket %d: %+v, want it empty", i, b)
		}
	}
}

func TestStatsBadInput(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	for _, c := range []struct{ path, message string }{
		{"/executions/throughput?minutes=0", "minutes must be an integer from 1 to 1440"},
		{"/executions/throughput?minutes=1441", "minutes must be an integer from 1 to 1440"},
		{"/executions/throughput?minutes=ten", "minutes must be an integer from 1 to 1440"},
		{"/executions/throughput?minutes=%2B5", "minutes must be an integer from 1 to 1440"},
		{"/executions/throughput?minutes=05", "minutes must be an integer from 1 to 1440"},
		{"/executions/throughput?minutes=5&minutes=6", `query parameter "minutes" is given 2 times`},
		{"/executions?id_prefix=ABC", `id prefix "ABC" is not the start of an execution id`},
		{"/executions?id_prefix=0197a3f2x", `id prefix "0197a3f2x" is not the start of an execution id`},
		{"/executions?id_prefix=" + strings.Repeat("0", 37), "longer than an execution id"},
	} {
		h.wantBadRequest(c.path, c.message)
	}
}
