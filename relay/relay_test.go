package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/hub"
	"github.com/conveyor-run/conveyor/relay"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pollInterval is the relay's poll in these tests: long enough that only
// the synctest tests, whose clock is fake, ever see it tick.
const pollInterval = time.Hour

// cluster is a shared store that "other nodes" write to, this node's hub,
// and a relay between them that the test starts when it is ready.
type cluster struct {
	t     *testing.T
	store *sqlite.DB
	hub   *hub.Hub
	relay *relay.Relay
	now   time.Time

	mu    sync.Mutex
	local map[string]bool // executions that run on this node
}

func setup(t *testing.T) *cluster {
	t.Helper()
	store, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	c := &cluster{t: t, store: store, hub: hub.New(), local: map[string]bool{},
		now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	c.relay, err = relay.New(relay.Config{
		Store: store, Hub: c.hub, PollInterval: pollInterval,
		LocalFunc: func(id string) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.local[id]
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs the relay until the test ends.
func (c *cluster) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.relay.Run(ctx)
	}()
	c.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// start submits an execution and claims it, as another node would: its
// started event is seq 1.
func (c *cluster) start(id string) *conveyor.Execution {
	c.t.Helper()
	c.now = c.now.Add(time.Second)
	ex := &conveyor.Execution{ID: id, Pipeline: "p", Status: conveyor.StatusPending, Input: json.RawMessage(`{}`), CreatedAt: c.now}
	if err := c.store.CreateExecution(context.Background(), ex); err != nil {
		c.t.Fatal(err)
	}
	return c.claim(id)
}

func (c *cluster) claim(id string) *conveyor.Execution {
	c.t.Helper()
	claims, err := c.store.ClaimPending(context.Background(), 1, func() time.Time { return c.now })
	if err != nil || len(claims) != 1 || claims[0].Execution.ID != id {
		c.t.Fatalf("claim %s: %v, %v", id, claims, err)
	}
	return claims[0].Execution
}

// write stores events of ex's attempt, as its runner on another node
// would, and returns the seq of the last.
func (c *cluster) write(ex *conveyor.Execution, types ...conveyor.EventType) int64 {
	c.t.Helper()
	got, err := c.store.GetExecution(context.Background(), ex.ID)
	if err != nil {
		c.t.Fatal(err)
	}
	seq := got.LastSeq
	var evs []conveyor.Event
	for _, typ := range types {
		seq++
		c.now = c.now.Add(time.Millisecond)
		ev := conveyor.Event{Type: typ, ExecutionID: ex.ID, Seq: seq, Time: c.now, Attempt: ex.Attempt}
		if typ == conveyor.EventProgress {
			ev.Progress = &conveyor.Progress{CurrentStep: 1, CurrentStepName: fmt.Sprint("at ", seq)}
		}
		evs = append(evs, ev)
	}
	if err := c.store.Append(context.Background(), evs); err != nil {
		c.t.Fatal(err)
	}
	return seq
}

func (c *cluster) setLocal(id string) {
	c.mu.Lock()
	c.local[id] = true
	c.mu.Unlock()
}

func notice(id string, seq int64) conveyor.Notice {
	return conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: id, Seq: seq}
}

// subscriber collects what the hub delivers to one subscription.
type subscriber struct {
	t   *testing.T
	sub *hub.Subscription
	got []conveyor.Event
}

func (c *cluster) subscribe(id string) *subscriber {
	c.t.Helper()
	sub, _ := c.hub.Subscribe(id)
	c.t.Cleanup(sub.Close)
	return &subscriber{t: c.t, sub: sub}
}

// waitFor takes events until one with seq arrives and returns the seqs of
// all taken so far.
func (s *subscriber) waitFor(seq int64) []int64 {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for !slices.ContainsFunc(s.got, func(ev conveyor.Event) bool { return ev.Seq == seq }) {
		select {
		case <-s.sub.Ready():
			s.got = s.sub.Take(s.got)
		case <-deadline:
			s.t.Fatalf("seq %d never arrived; got %v", seq, seqs(s.got))
		}
	}
	return seqs(s.got)
}

// taken returns the seqs of every event delivered so far.
func (s *subscriber) taken() []int64 {
	s.got = s.sub.Take(s.got)
	return seqs(s.got)
}

func seqs(evs []conveyor.Event) []int64 {
	out := []int64{}
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

func TestNoticePublishesEventsAfterTheWatchedSeqInOrder(t *testing.T) {
	t.Parallel()
	c := setup(t)
	c.run()
	ex := c.start("a")
	seq := c.write(ex, conveyor.EventProgress, conveyor.EventProgress)
	c.relay.Notify(notice("a", seq)) // before the subscriber's snapshot
	s := c.subscribe("a")            // its snapshot is at 3

	c.write(ex, conveyor.EventProgress, conveyor.EventRetrying) // 4, 5
	ex = c.claim("a")                                           // 6
	seq = c.write(ex, conveyor.EventProgress, conveyor.EventCompleted)
	c.relay.Notify(notice("a", seq))

	got := s.waitFor(8)
	// Status events are never dropped and everything is in order; the
	// progress event 4, followed by a status event, is not conflated.
	if want := []int64{4, 5, 6, 7, 8}; !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	for i, typ := range []conveyor.EventType{conveyor.EventProgress, conveyor.EventRetrying, conveyor.EventStarted, conveyor.EventProgress, conveyor.EventCompleted} {
		if s.got[i].Type != typ || s.got[i].ExecutionID != "a" {
			t.Errorf("event %d is %s of %s, want %s of a", s.got[i].Seq, s.got[i].Type, s.got[i].ExecutionID, typ)
		}
	}
}

func TestEventsSubscribersHoldAreNotRepublished(t *testing.T) {
	t.Parallel()
	c := setup(t)
	c.run()
	ex := c.start("a")
	seq := c.write(ex, conveyor.EventProgress, conveyor.EventProgress, conveyor.EventProgress) // 2..4
	c.relay.Notify(notice("a", seq))
	s := c.subscribe("a") // held from its snapshot: 4

	// A resync re-reads what is watched: nothing after 4 yet.
	c.relay.Notify(conveyor.Notice{Kind: conveyor.NoticeResync})
	seq = c.write(ex, conveyor.EventProgress) // 5
	c.relay.Notify(notice("a", seq))
	if got := s.waitFor(5); !slices.Equal(got, []int64{5}) {
		t.Fatalf("first catch-up published %v, want [5]", got)
	}

	// Published events are held too: the next notice brings only 6.
	seq = c.write(ex, conveyor.EventCompleted) // 6
	c.relay.Notify(notice("a", seq))
	if got := s.waitFor(6); !slices.Equal(got, []int64{5, 6}) {
		t.Fatalf("published %v, want [5 6]", got)
	}
}

// TestPublishedEventsStayHeld has the only subscriber leave and a new one
// come before the poll forgets the execution: what the relay published
// for the first is not read again for the second.
func TestPublishedEventsStayHeld(t *testing.T) {
	t.Parallel()
	c := setup(t)
	c.run()
	ex := c.start("a")
	c.relay.Notify(notice("a", 1))
	first := c.subscribe("a") // snapshot at 1
	c.relay.Notify(notice("a", c.write(ex, conveyor.EventProgress, conveyor.EventProgress)))
	first.waitFor(3)
	first.sub.Close()

	second := c.subscribe("a") // snapshot at 3
	c.relay.Notify(notice("a", c.write(ex, conveyor.EventCompleted)))
	if got := second.waitFor(4); !slices.Equal(got, []int64{4}) {
		t.Fatalf("published %v, want [4]", got)
	}
}

// TestALaterSubscriberDoesNotHideEventsFromAnEarlierOne subscribes twice,
// the second time after more events were stored: the first subscriber
// still gets every event after its own snapshot.
func TestALaterSubscriberDoesNotHideEventsFromAnEarlierOne(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ex := c.start("a")
	c.relay.Notify(notice("a", 1))
	first := c.subscribe("a") // snapshot at 1

	seq := c.write(ex, conveyor.EventProgress, conveyor.EventRetrying) // 2, 3
	c.relay.Notify(notice("a", seq))
	second := c.subscribe("a") // snapshot at 3

	c.run() // the relay acts on the notice only now
	if got := first.waitFor(3); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("first subscriber got %v, want [2 3]", got)
	}
	// The second gets them too and skips them, as a stream does.
	if got := second.waitFor(3); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("second subscriber got %v, want [2 3]", got)
	}
}

// TestASubscriberWithoutNoticesGetsEverything covers an execution the
// relay has heard nothing of: it cannot know where the subscriber's
// snapshot is, so it reads from the first event.
func TestASubscriberWithoutNoticesGetsEverything(t *testing.T) {
	t.Parallel()
	c := setup(t)
	c.run()
	ex := c.start("a")
	s := c.subscribe("a")
	seq := c.write(ex, conveyor.EventProgress) // 2
	c.relay.Notify(notice("a", seq))
	if got := s.waitFor(2); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("published %v, want [1 2]", got)
	}
}

func TestUnwatchedExecutionsAreNotPublished(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := setup(t)
		c.run()
		a, b := c.start("a"), c.start("b")
		s := c.subscribe("b")
		c.relay.Notify(notice("a", c.write(a, conveyor.EventProgress)))
		c.relay.Notify(notice("b", c.write(b, conveyor.EventProgress)))
		synctest.Wait()
		if got := s.taken(); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("b: published %v, want [1 2]", got)
		}
		if last, ok := c.hub.Last("a"); ok {
			t.Fatalf("a, which has no subscribers, was published: %+v", last)
		}
	})
}

func TestPollCatchesUpALostNotice(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := setup(t)
		ex := c.start("a")
		c.relay.Notify(notice("a", 1))
		s := c.subscribe("a") // snapshot at 1
		c.run()
		c.write(ex, conveyor.EventProgress, conveyor.EventCompleted) // 2, 3: the notice is lost

		time.Sleep(pollInterval - time.Second)
		synctest.Wait()
		if got := s.taken(); len(got) != 0 {
			t.Fatalf("before the poll: published %v", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := s.taken(); !slices.Equal(got, []int64{2, 3}) {
			t.Fatalf("after the poll: published %v, want [2 3]", got)
		}
	})
}

func TestPollSkipsExecutionsRunningHere(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := setup(t)
		local, remote := c.start("local"), c.start("remote")
		c.setLocal("local")
		sl, sr := c.subscribe("local"), c.subscribe("remote")
		c.run()
		c.write(local, conveyor.EventProgress)
		c.write(remote, conveyor.EventProgress)

		time.Sleep(pollInterval)
		synctest.Wait()
		if got := sr.taken(); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("remote: published %v, want [1 2]", got)
		}
		if got := sl.taken(); len(got) != 0 {
			t.Fatalf("local: published %v, want nothing (its engine publishes it)", got)
		}
	})
}

func TestForgetsExecutionsWithoutSubscribers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := setup(t)
		ex := c.start("a")
		c.run()
		c.relay.Notify(notice("a", 1))
		s := c.subscribe("a") // held: 1
		s.sub.Close()
		time.Sleep(pollInterval) // the poll forgets a
		synctest.Wait()

		// A new subscriber's held seq comes from what is stored now.
		c.relay.Notify(notice("a", c.write(ex, conveyor.EventProgress)))
		s = c.subscribe("a") // snapshot at 2
		c.relay.Notify(notice("a", c.write(ex, conveyor.EventCompleted)))
		synctest.Wait()
		if got := s.taken(); !slices.Equal(got, []int64{3}) {
			t.Fatalf("published %v, want [3]", got)
		}
	})
}

func TestRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			c.relay.Run(ctx)
			close(done)
		}()
		synctest.Wait()
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return when its context ended")
		}
		// synctest.Test fails if any goroutine Run started is still
		// alive; goleak in TestMain checks the whole package.
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	h := hub.New()
	for _, cfg := range []relay.Config{
		{Hub: h},
		{Store: fakeStore{}},
		{Store: fakeStore{}, Hub: h, PollInterval: -time.Second},
	} {
		if _, err := relay.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// fakeStore is a relay.Store for the config checks; no test reads it.
type fakeStore struct{}

func (fakeStore) Events(context.Context, string, int64, int) ([]conveyor.Event, error) {
	return nil, nil
}

func TestStoredSeqsAreBounded(t *testing.T) {
	t.Parallel()
	c := setup(t)
	c.run() // a full queue makes Notify wait
	c.relay.Notify(notice("first", 7))
	c.relay.Notify(notice("first", 5)) // an older notice
	if seq, _ := c.relay.StoredSeq("first"); seq != 7 {
		t.Fatalf("stored seq of first = %d, want 7", seq)
	}
	for i := range 2 * relay.MaxStored {
		c.relay.Notify(notice(fmt.Sprint(i), 1))
	}
	seq, n := c.relay.StoredSeq("first")
	if seq != 0 || n > 2*relay.MaxStored {
		t.Fatalf("after %d more executions: first at %d, %d remembered", 2*relay.MaxStored, seq, n)
	}
	if seq, _ := c.relay.StoredSeq(fmt.Sprint(2*relay.MaxStored - 1)); seq != 1 {
		t.Fatalf("the newest execution is forgotten")
	}
}
