package relay_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/relay"
)

// countingStore counts the relay's reads of the real store under it.
type countingStore struct {
	relay.Store
	reads atomic.Int64
}

func (s *countingStore) Events(ctx context.Context, id string, after int64, limit int) ([]conveyor.Event, error) {
	s.reads.Add(1)
	return s.Store.Events(ctx, id, after, limit)
}

// carried is a notice that carries its event, announced after prev.
func carried(ev conveyor.Event, prev int64) conveyor.Notice {
	return conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: ev.ExecutionID, Seq: ev.Seq, Event: &ev, Prev: prev}
}

func progressAt(ex *conveyor.Execution, seq int64) conveyor.Event {
	return conveyor.Event{Type: conveyor.EventProgress, ExecutionID: ex.ID, Seq: seq, Attempt: ex.Attempt,
		Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Progress: &conveyor.Progress{CurrentStep: 1}}
}

// setupCounting is setup with the relay's reads counted.
func setupCounting(t *testing.T) (*cluster, *countingStore) {
	t.Helper()
	c := setup(t)
	counting := &countingStore{Store: c.store}
	var err error
	c.relay, err = relay.New(relay.Config{Store: counting, Hub: c.hub, PollInterval: pollInterval})
	if err != nil {
		t.Fatal(err)
	}
	return c, counting
}

// TestCarriedEventsNeedNoRead: events announced one after another reach
// the subscribers as they come, stored or not, with no read of the store.
func TestCarriedEventsNeedNoRead(t *testing.T) {
	t.Parallel()
	c, counting := setupCounting(t)
	c.run()
	ex := c.start("a") // started: seq 1, stored
	c.relay.Notify(notice("a", 1))
	s := c.subscribe("a") // its snapshot is at 1
	// Progress 2 and 3 were never stored; the next one follows 3, and
	// 6 follows 3 too: 4 and 5 were progress its node dropped.
	for _, n := range []conveyor.Notice{carried(progressAt(ex, 2), 1), carried(progressAt(ex, 3), 2), carried(progressAt(ex, 6), 3)} {
		c.relay.Notify(n)
		s.waitFor(n.Seq) // taken before the next comes: none is conflated
	}
	if got := s.taken(); !slices.Equal(got, []int64{2, 3, 6}) {
		t.Fatalf("published %v, want [2 3 6]", got)
	}
	if n := counting.reads.Load(); n != 0 {
		t.Errorf("the relay read the store %d times, want 0", n)
	}
}

// TestCarriedEventAfterAGapReadsTheStore: a carried event whose Prev the
// subscribers do not have (its announcement was lost) makes the relay
// read what the store has first, so no stored event is missed.
func TestCarriedEventAfterAGapReadsTheStore(t *testing.T) {
	t.Parallel()
	c, counting := setupCounting(t)
	c.run()
	ex := c.start("a")
	c.relay.Notify(notice("a", 1))
	s := c.subscribe("a")
	since := c.now
	stalled := conveyor.Event{Type: conveyor.EventStalled, ExecutionID: "a", Seq: 2, Attempt: ex.Attempt, Time: c.now, Step: "s", Since: &since}
	if err := c.store.Append(context.Background(), []conveyor.Event{stalled}); err != nil { // stored, its announcement lost
		t.Fatal(err)
	}
	seq := stalled.Seq
	c.relay.Notify(carried(progressAt(ex, seq+1), seq))
	if got := s.waitFor(seq + 1); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("published %v, want [2 3]", got)
	}
	if s.got[0].Type != conveyor.EventStalled {
		t.Errorf("event 2 is %s, want the stored stalled event", s.got[0].Type)
	}
	if counting.reads.Load() == 0 {
		t.Error("the relay did not read the store")
	}
	// A node that announced nothing before (Prev 0) of an execution with
	// a gap: the relay reads too, and publishes the carried event once.
	if err := c.store.Append(context.Background(), []conveyor.Event{progressAt(ex, 4), progressAt(ex, 5)}); err != nil {
		t.Fatal(err)
	}
	seq = 5
	final := conveyor.Event{Type: conveyor.EventFailed, ExecutionID: "a", Seq: seq + 1, Attempt: ex.Attempt, Time: c.now, Status: conveyor.StatusFailed}
	c.relay.Notify(carried(final, 0))
	// The hub may conflate progress 4 into 5 for this slow reader.
	if got := s.waitFor(seq + 1); !slices.Equal(got, []int64{2, 3, 4, 5, 6}) && !slices.Equal(got, []int64{2, 3, 5, 6}) {
		t.Fatalf("published %v, want [2 3 (4) 5 6]", got)
	}
}

func TestAnnouncerLinksEachExecutionsEvents(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []conveyor.Announced
	)
	a := relay.NewAnnouncer(func(_ context.Context, evs []conveyor.Announced) error {
		mu.Lock()
		got = append(got, evs...)
		mu.Unlock()
		return nil
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	evs := []conveyor.Event{
		{Type: conveyor.EventStarted, ExecutionID: "a", Seq: 1},
		{Type: conveyor.EventStarted, ExecutionID: "b", Seq: 1},
		{Type: conveyor.EventProgress, ExecutionID: "a", Seq: 2},
		{Type: conveyor.EventProgress, ExecutionID: "a", Seq: 5},
		{Type: conveyor.EventCompleted, ExecutionID: "a", Seq: 6},
		{Type: conveyor.EventProgress, ExecutionID: "b", Seq: 2},
	}
	for _, ev := range evs {
		a.Publish(ev)
	}
	cancel() // Run announces what is queued before it returns
	<-done
	want := []int64{0, 0, 1, 2, 5, 1}
	if len(got) != len(evs) {
		t.Fatalf("announced %d events, want %d", len(got), len(evs))
	}
	for i, an := range got {
		if an.Event.ExecutionID != evs[i].ExecutionID || an.Event.Seq != evs[i].Seq || an.Prev != want[i] {
			t.Errorf("announcement %d: %s #%d prev %d, want %s #%d prev %d", i, an.Event.ExecutionID, an.Event.Seq, an.Prev,
				evs[i].ExecutionID, evs[i].Seq, want[i])
		}
	}
}
