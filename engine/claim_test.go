package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// The claim loop is tested on a real store and real time rather than in a
// synctest bubble: its goroutines call the store, whose I/O and connection
// goroutines do not belong in one. The tests wait for events, never for
// time, and a PollInterval of an hour stands for "never" where a test
// must show that something other than polling woke the loop.

// countStatus returns how many executions in s have status st.
func countStatus(t *testing.T, s conveyor.Store, st conveyor.Status) int {
	t.Helper()
	page, err := s.ListExecutions(t.Context(), conveyor.ListFilter{Status: st, Limit: conveyor.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Executions)
}

// TestClaimLoopRunsAtMostConcurrency: executions beyond Concurrency stay
// pending and start, one for one, as running ones finish, with no polling
// to find them.
func TestClaimLoopRunsAtMostConcurrency(t *testing.T) {
	t.Parallel()
	const concurrency, n = 2, 7
	var (
		mu      sync.Mutex
		running int
		most    int
	)
	started := make(chan string, n)
	release := make(chan struct{}, n)
	p := &conveyor.Pipeline{Name: "blocks", Handler: func(ctx context.Context, x *conveyor.Exec) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		started <- x.ID
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	store := openStore(t)
	e, pub := startEngine(t, Config{
		Store: store, Pipelines: map[string]*conveyor.Pipeline{p.Name: p},
		Concurrency: concurrency, PollInterval: time.Hour,
	})

	var ids []string
	for range n {
		ex, err := e.Submit(t.Context(), p.Name, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ex.ID)
	}
	waitStarted := func() {
		t.Helper()
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("no execution started in 30s")
		}
	}
	for range concurrency {
		waitStarted()
	}
	// Both slots are taken by handlers that wait to be released, so no
	// other execution can have been claimed.
	if got := countStatus(t, store, conveyor.StatusPending); got != n-concurrency {
		t.Errorf("%d pending with every slot taken, want %d", got, n-concurrency)
	}
	if got := e.Running(); got != concurrency {
		t.Errorf("Running() = %d, want %d", got, concurrency)
	}
	for range n - concurrency {
		release <- struct{}{}
		waitStarted()
	}
	for range concurrency {
		release <- struct{}{}
	}
	for _, id := range ids {
		if ev := pub.waitFinal(t, id); ev.Type != conveyor.EventCompleted {
			t.Errorf("execution %s: %s %+v", id, ev.Type, ev.Error)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most > concurrency {
		t.Errorf("%d executions ran at once, want at most %d", most, concurrency)
	}
}

// TestClaimLoopPolls: an execution that reaches the store with no nudge
// (as another process's would) is found by the poll.
func TestClaimLoopPolls(t *testing.T) {
	t.Parallel()
	s, firstClaim := claimWatcher(t)
	_, pub := startEngine(t, Config{Store: s, Pipelines: noopPipeline(), PollInterval: 20 * time.Millisecond})
	// Once the claim made at start found nothing, only the poll can wake
	// the loop: nothing submits through this engine.
	waitClosed(t, firstClaim, "the first claim")
	ex := newExecution("noop")
	if err := s.CreateExecution(t.Context(), ex); err != nil {
		t.Fatal(err)
	}
	if ev := pub.waitFinal(t, ex.ID); ev.Type != conveyor.EventCompleted {
		t.Errorf("%s %+v, want completed", ev.Type, ev.Error)
	}
}

// TestClaimLoopWakesOnNotice: a submission another node announces wakes
// the loop without waiting for the poll.
func TestClaimLoopWakesOnNotice(t *testing.T) {
	t.Parallel()
	s, firstClaim := claimWatcher(t)
	e, pub := startEngine(t, Config{Store: s, Pipelines: noopPipeline(), PollInterval: time.Hour})
	waitClosed(t, firstClaim, "the first claim")
	ex := newExecution("noop")
	if err := s.CreateExecution(t.Context(), ex); err != nil {
		t.Fatal(err)
	}
	e.HandleNotice(conveyor.Notice{Kind: conveyor.NoticeSubmitted, ExecutionID: ex.ID})
	if ev := pub.waitFinal(t, ex.ID); ev.Type != conveyor.EventCompleted {
		t.Errorf("%s %+v, want completed", ev.Type, ev.Error)
	}
}

// claimWatcher returns a store and a channel closed once the first
// ClaimPending call on it has returned, having claimed nothing.
func claimWatcher(t *testing.T) (*faultStore, <-chan struct{}) {
	t.Helper()
	first := make(chan struct{})
	var once sync.Once
	s := &faultStore{Store: openStore(t)}
	s.claimedFunc = func(n int, err error) {
		once.Do(func() {
			if n != 0 || err != nil {
				t.Errorf("the first claim got %d executions, %v; want none", n, err)
			}
			close(first)
		})
	}
	return s, first
}

func noopPipeline() map[string]*conveyor.Pipeline {
	return map[string]*conveyor.Pipeline{"noop": {Name: "noop", Handler: func(context.Context, *conveyor.Exec) error { return nil }}}
}

// waitClosed waits until ch is closed, failing the test after 30s.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// sharingStore is a store that counts the engine's calls of
// NotifyPending.
type sharingStore struct {
	conveyor.Store
	asked atomic.Int64
}

func (s *sharingStore) NotifyPending(context.Context) { s.asked.Add(1) }

// TestSharesOnlyWhatItCannotStart: a node asks the other nodes to claim
// only when it may not start what was submitted to it at once, so that
// a fleet with room does not race to claim every submission.
func TestSharesOnlyWhatItCannotStart(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	pipelines := map[string]*conveyor.Pipeline{
		"noop": {Name: "noop", Handler: func(context.Context, *conveyor.Exec) error { return nil }},
		"held": {Name: "held", Handler: func(ctx context.Context, _ *conveyor.Exec) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}},
	}
	s := &sharingStore{Store: openStore(t)}
	e, pub := startEngine(t, Config{Store: s, Pipelines: pipelines, Concurrency: 2, PollInterval: time.Hour})
	ctx := t.Context()

	// Room for it: kept.
	ex, err := e.Submit(ctx, "noop", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub.waitFinal(t, ex.ID)
	if n := s.asked.Load(); n != 0 {
		t.Fatalf("asked the others %d times for one execution with room for it, want 0", n)
	}

	// More than it runs at a time: shared at once.
	b, _, err := e.SubmitBatch(ctx, conveyor.NewBatch{Executions: []conveyor.NewExecution{{Pipeline: "held"}, {Pipeline: "held"}, {Pipeline: "held"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a request to share the batch", func() bool { return s.asked.Load() > 0 })

	// Full, with one left pending: what comes next is shared too.
	waitUntil(t, "both workers busy", func() bool { return e.Running() == 2 })
	asked := s.asked.Load()
	if _, err := e.Submit(ctx, "noop", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a request to share a submission to a full node", func() bool { return s.asked.Load() > asked })
	close(release)
	page, err := s.ListExecutions(ctx, conveyor.ListFilter{Batch: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range page.Executions {
		pub.waitFinal(t, ex.ID)
	}
}

// TestEndingRunGivesUpItsPlace: a run whose handler returned gives up its
// place of Concurrency before its end is stored, so the next execution
// starts while that commit is under way; and no more than Concurrency
// runs wait for the store, so the next one waits for a commit.
func TestEndingRunGivesUpItsPlace(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	held := make(chan string, 3) // the executions whose ends the store holds
	s := &faultStore{Store: openStore(t), appendFunc: func(evs []conveyor.Event) error {
		for _, ev := range evs {
			if ev.Type.Final() {
				held <- ev.ExecutionID
				<-hold
			}
		}
		return nil
	}}
	e, pub := startEngine(t, Config{Store: s, Concurrency: 1, Pipelines: noopPipeline()})
	var ids []string
	for range 3 {
		ex, err := e.Submit(t.Context(), "noop", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ex.ID)
	}
	// The first end is held by the store; the second execution runs
	// meanwhile and its end waits behind it.
	var first string
	select {
	case first = <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("no end reached the store")
	}
	pub.waitFor(t, "the second execution to start while the first one's end is held", func(ev conveyor.Event) bool {
		return ev.ExecutionID != first && ev.Type == conveyor.EventStarted
	})
	ex, err := s.GetExecution(t.Context(), ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if e.Running() != 2 || ex.Status != conveyor.StatusPending {
		t.Errorf("%d runs, the third execution %s; want 2 and pending while both ends wait", e.Running(), ex.Status)
	}
	close(hold)
	for _, id := range ids {
		if ev := pub.waitFinal(t, id); ev.Type != conveyor.EventCompleted {
			t.Errorf("%s ended %s, want completed", id, ev.Type)
		}
	}
}
