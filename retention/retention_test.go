package retention_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conveyor-run/conveyor/retention"
)

// records is a task's store of expired records, on the fake clock of a
// synctest bubble: deleting each takes perRecord.
type records struct {
	mu        sync.Mutex
	left      int
	perRecord time.Duration
	fail      error // returned by the next call, then cleared
	calls     []call
}

// call is one call of prune: when it began and ended, what it was asked
// and what it deleted.
type call struct {
	began, ended time.Time
	limit, n     int
}

func (r *records) prune(_ context.Context, _ time.Time, limit int) (int, error) {
	r.mu.Lock()
	c := call{began: time.Now(), limit: limit}
	err := r.fail
	r.fail = nil
	if err == nil {
		c.n = min(limit, r.left)
		r.left -= c.n
	}
	r.mu.Unlock()
	time.Sleep(time.Duration(c.n) * r.perRecord)
	r.mu.Lock()
	c.ended = time.Now()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return c.n, err
}

func (r *records) add(n int) {
	r.mu.Lock()
	r.left += n
	r.mu.Unlock()
}

func (r *records) snapshot() (left int, calls []call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.left, slices.Clone(r.calls)
}

func limits(calls []call) []int {
	var l []int
	for _, c := range calls {
		l = append(l, c.limit)
	}
	return l
}

func newPruner(t *testing.T, cfg retention.Config) *retention.Pruner {
	t.Helper()
	p, err := retention.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRoundDeletesEverything: a round deletes batch after batch while
// they come back full, and fast batches grow, up to a thousand.
func TestRoundDeletesEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &records{left: 2345}
		deleted := map[string]int{}
		p := newPruner(t, retention.Config{
			Tasks:       []retention.Task{{Name: "things", PruneFunc: r.prune}},
			DeletedFunc: func(task string, n int) { deleted[task] += n },
		})
		if err := p.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
		left, calls := r.snapshot()
		if left != 0 || deleted["things"] != 2345 {
			t.Errorf("left %d, deleted %v; want 0 left, 2345 deleted", left, deleted)
		}
		if got, want := limits(calls), []int{100, 200, 400, 800, 1000}; !slices.Equal(got, want) {
			t.Errorf("batch sizes %v, want %v", got, want)
		}
	})
}

// TestSlowBatchesShrinkAndPause: a batch slower than BatchTime halves
// the next one, never below 10; after each full batch the pruner waits
// as long as the batch took before the next.
func TestSlowBatchesShrinkAndPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &records{left: 1000, perRecord: 4 * time.Millisecond}
		p := newPruner(t, retention.Config{
			Tasks:     []retention.Task{{Name: "things", PruneFunc: r.prune}},
			BatchTime: 50 * time.Millisecond,
		})
		if err := p.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
		left, calls := r.snapshot()
		if left != 0 {
			t.Fatalf("%d left", left)
		}
		// 100 took 400ms: 50 (200ms), 25 (100ms), 12 (48ms), then 12
		// while they take 48ms.
		if got := limits(calls); !slices.Equal(got[:5], []int{100, 50, 25, 12, 12}) || slices.Max(got[3:]) != 12 {
			t.Errorf("batch sizes %v, want 100, 50, 25, then 12", got)
		}
		for i := 1; i < len(calls); i++ {
			prev := calls[i-1]
			if pause := calls[i].began.Sub(prev.ended); pause < prev.ended.Sub(prev.began) {
				t.Errorf("batch %d began %s after batch %d, which took %s", i, pause, i-1, prev.ended.Sub(prev.began))
			}
		}

		r = &records{left: 100000, perRecord: time.Second}
		p = newPruner(t, retention.Config{Tasks: []retention.Task{{Name: "things", PruneFunc: r.prune}}})
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			time.Sleep(time.Hour)
			cancel()
		}()
		if err := p.Round(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Round cut short: %v, want context.Canceled", err)
		}
		if _, calls := r.snapshot(); slices.Min(limits(calls)) != 10 {
			t.Errorf("batch sizes %v, want them down to 10", limits(calls))
		}
	})
}

// TestEveryInterval: a started pruner runs a round at once and then one
// every interval, until Stop; an error is logged and the next round
// runs, and one task's error does not keep the others from pruning.
func TestEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := &records{}, &records{}
		var log bytes.Buffer
		p := newPruner(t, retention.Config{
			Tasks:    []retention.Task{{Name: "a", PruneFunc: a.prune}, {Name: "b", PruneFunc: b.prune}},
			Interval: time.Minute,
			Logger:   slog.New(slog.NewTextHandler(&log, nil)),
		})
		a.fail = errors.New("disk on fire")
		a.add(5)
		b.add(7)
		p.Start(t.Context())
		synctest.Wait()
		if left, calls := a.snapshot(); left != 5 || len(calls) != 1 {
			t.Errorf("task a after the first round: %d left, %d calls; want 5 left (it failed), 1 call", left, len(calls))
		}
		if left, _ := b.snapshot(); left != 0 {
			t.Errorf("task b after the first round: %d left, want 0", left)
		}
		if !strings.Contains(log.String(), "disk on fire") || !strings.Contains(log.String(), "pruned expired b") {
			t.Errorf("log does not tell the error and what b pruned:\n%s", log.String())
		}

		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if _, calls := a.snapshot(); len(calls) != 1 {
			t.Errorf("%d calls before a minute passed, want 1", len(calls))
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if left, calls := a.snapshot(); left != 0 || len(calls) != 2 {
			t.Errorf("after a minute: %d left, %d calls; want 0, 2", left, len(calls))
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		p.Stop()
		time.Sleep(time.Hour)
		if _, calls := a.snapshot(); len(calls) != 4 {
			t.Errorf("%d calls after 3 minutes and a stop, want 4", len(calls))
		}
	})
}

func TestConfig(t *testing.T) {
	noop := func(context.Context, time.Time, int) (int, error) { return 0, nil }
	for _, cfg := range []retention.Config{
		{Tasks: []retention.Task{{PruneFunc: noop}}},
		{Tasks: []retention.Task{{Name: "x"}}},
		{Interval: -time.Second},
		{BatchTime: -time.Second},
	} {
		if _, err := retention.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	p, err := retention.New(retention.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p.Stop() // never started: nothing to stop
}
