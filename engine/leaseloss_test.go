package engine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/engine"
	"github.com/conveyor-run/conveyor/store/postgres"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// unrenewable is a node's real PostgreSQL store whose lease renewals and
// rescues fail while cut is set, as when the node cannot reach the
// database for longer than its lease (its writes are fenced off anyway).
type unrenewable struct {
	*postgres.DB
	cut atomic.Bool
	// fencedEnd is set once the store dropped a final write (fenced off).
	fencedEnd atomic.Bool
}

func (s *unrenewable) Append(ctx context.Context, writes []conveyor.Event) error {
	err := s.DB.Append(ctx, writes)
	for _, ev := range writes {
		if err == nil && ev.Dropped && ev.Type.Final() {
			s.fencedEnd.Store(true)
		}
	}
	return err
}

func (s *unrenewable) RenewLeases(ctx context.Context, leases []conveyor.Lease, now time.Time) (conveyor.Renewal, error) {
	if s.cut.Load() {
		return conveyor.Renewal{}, fmt.Errorf("connection refused (cut by the test)")
	}
	return s.DB.RenewLeases(ctx, leases, now)
}

func (s *unrenewable) RescueExpired(ctx context.Context, now time.Time, policy func(string) conveyor.RetryPolicy) ([]conveyor.Event, error) {
	if s.cut.Load() {
		return nil, fmt.Errorf("connection refused (cut by the test)")
	}
	return s.DB.RescueExpired(ctx, now, policy)
}

// published collects what one engine publishes to its node's subscribers.
type published struct {
	mu  sync.Mutex
	evs []conveyor.Event
}

func (p *published) add(ev conveyor.Event) {
	p.mu.Lock()
	p.evs = append(p.evs, ev)
	p.mu.Unlock()
}

func (p *published) of(id string) []conveyor.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var evs []conveyor.Event
	for _, ev := range p.evs {
		if ev.ExecutionID == id {
			evs = append(evs, ev)
		}
	}
	return evs
}

// TestLeaseLoss: a node that loses an execution's lease has published
// progress its store never saw (progress is stored only now and then).
// The node that rescues the execution writes its event with a seq above
// all of it, so the first node's subscribers, who take only rising seqs,
// see the rescue instead of skipping it. And when the first node's run
// then ends, before it learns of the loss, the store drops its final
// write and the node publishes no outcome the store does not hold.
func TestLeaseLoss(t *testing.T) {
	_, url := pgtest.NewDatabase(t)
	const lease = time.Second
	open := func(node string) *postgres.DB {
		s, err := postgres.Open(t.Context(), url, &postgres.Options{NodeID: node, Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	finish := make(chan struct{})
	busy := &conveyor.Pipeline{Name: "busy", Handler: func(ctx context.Context, x *conveyor.Exec) error {
		for i := 1; ; i++ {
			x.Progress(conveyor.Update{Steps: conveyor.UnknownSteps, Message: fmt.Sprintf("update %d", i)})
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-finish:
				return nil // completed, as far as this node knows
			case <-time.After(2 * time.Millisecond):
			}
		}
	}}
	start := func(s conveyor.Store, pub *published) *engine.Engine {
		eng, err := engine.New(engine.Config{
			Store: s, Pipelines: map[string]*conveyor.Pipeline{"busy": busy}, PollInterval: 20 * time.Millisecond,
			Lease: lease, RescueInterval: 100 * time.Millisecond,
			ProgressStoreInterval: time.Hour, // stores none: every progress seq is unstored
			PublishFunc:           pub.add,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			eng.Stop(ctx)
		})
		return eng
	}

	a := &unrenewable{DB: open("a")}
	var onA, onB published
	engA := start(a, &onA)
	ex, err := engA.Submit(t.Context(), "busy", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node a to publish progress", func() bool { return len(onA.of(ex.ID)) > 10 })

	// Node a can no longer renew; node b, started now so that it never
	// claimed the execution, rescues it once the lease expires.
	a.cut.Store(true)
	start(open("b"), &onB)
	var rescue conveyor.Event
	waitFor(t, "node b to rescue the execution", func() bool {
		evs := onB.of(ex.ID)
		if len(evs) == 0 {
			return false
		}
		rescue = evs[0]
		return true
	})
	// Node a's run completes while it is still cut off: the store fences
	// its completed event off, and node a publishes no end.
	close(finish)
	waitFor(t, "node a's completed event to be fenced off", a.fencedEnd.Load)
	// Once the run is gone, whatever it published is in onA.
	waitFor(t, "node a's run to end", func() bool { return engA.Running() == 0 })
	for _, ev := range onA.of(ex.ID) {
		if ev.Type.Final() {
			t.Errorf("node a published %s #%d, which the store does not hold", ev.Type, ev.Seq)
		}
	}

	if rescue.Type != conveyor.EventFailed || conveyor.ErrorCode(rescue.Error) != conveyor.EINTERRUPTED {
		t.Fatalf("rescue event %+v, want failed interrupted", rescue)
	}
	var highest int64
	for _, ev := range onA.of(ex.ID) {
		highest = max(highest, ev.Seq)
	}
	if rescue.Seq <= highest {
		t.Errorf("the rescue took seq %d, but node a had published up to seq %d: its subscribers would skip the rescue", rescue.Seq, highest)
	}
	got, err := a.GetExecution(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != conveyor.StatusFailed || got.LastSeq != rescue.Seq {
		t.Errorf("stored: %s with last seq %d, want failed with the rescue's %d", got.Status, got.LastSeq, rescue.Seq)
	}
}
