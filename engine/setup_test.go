package engine

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

// The white-box tests of this package run the engine's parts on a real
// SQLite store in t.TempDir(). faultStore wraps it to watch the calls the
// engine makes and to refuse some of them; everything else is the real
// store's behaviour.

// openStore opens a SQLite store in a temporary folder, closed when the
// test ends (after anything registered later, such as an engine's Stop).
func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	s, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// faultStore is a real store that records the batch writes it is asked
// for and lets a test fail them.
type faultStore struct {
	conveyor.Store

	// Each Func runs before its call reaches the store; an error it
	// returns is the call's and the store never sees the call. Set them
	// before the store is used.
	createFunc     func(es []*conveyor.Execution) error
	appendFunc     func(evs []conveyor.Event) error
	appendLogsFunc func(lines []conveyor.LogLine) error
	// claimedFunc runs after each ClaimPending, with how many it claimed.
	claimedFunc func(n int, err error)

	mu         sync.Mutex
	creates    [][]string         // the ids of each CreateExecutions call
	appends    [][]conveyor.Event // each Append call's events, as given
	appendLogs [][]conveyor.LogLine
}

func (s *faultStore) CreateExecutions(ctx context.Context, es []*conveyor.Execution) error {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	s.mu.Lock()
	s.creates = append(s.creates, ids)
	s.mu.Unlock()
	if s.createFunc != nil {
		if err := s.createFunc(es); err != nil {
			return err
		}
	}
	return s.Store.CreateExecutions(ctx, es)
}

func (s *faultStore) Append(ctx context.Context, evs []conveyor.Event) error {
	s.mu.Lock()
	s.appends = append(s.appends, append([]conveyor.Event(nil), evs...))
	s.mu.Unlock()
	if s.appendFunc != nil {
		if err := s.appendFunc(evs); err != nil {
			return err
		}
	}
	return s.Store.Append(ctx, evs)
}

func (s *faultStore) AppendLogs(ctx context.Context, lines []conveyor.LogLine) error {
	s.mu.Lock()
	s.appendLogs = append(s.appendLogs, append([]conveyor.LogLine(nil), lines...))
	s.mu.Unlock()
	if s.appendLogsFunc != nil {
		if err := s.appendLogsFunc(lines); err != nil {
			return err
		}
	}
	return s.Store.AppendLogs(ctx, lines)
}

func (s *faultStore) ClaimPending(ctx context.Context, limit int, now func() time.Time) ([]conveyor.Claim, error) {
	cs, err := s.Store.ClaimPending(ctx, limit, now)
	if s.claimedFunc != nil {
		s.claimedFunc(len(cs), err)
	}
	return cs, err
}

// createCalls returns the ids of every CreateExecutions call so far.
func (s *faultStore) createCalls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.creates...)
}

// appendCalls returns the events of every Append call so far.
func (s *faultStore) appendCalls() [][]conveyor.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]conveyor.Event(nil), s.appends...)
}

// appendLogsCalls returns the lines of every AppendLogs call so far.
func (s *faultStore) appendLogsCalls() [][]conveyor.LogLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]conveyor.LogLine(nil), s.appendLogs...)
}

// gate blocks the first call that passes through it until open is
// called, so that a test can queue work behind a write in progress.
type gate struct {
	once    sync.Once
	entered chan struct{} // closed when the first call is blocked
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

// pass blocks the first caller until open; later callers go through.
func (g *gate) pass() {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
}

// waitEntered waits until the first call is blocked in the gate.
func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no call reached the gate in 30s")
	}
}

func (g *gate) open() { close(g.release) }

// waitUntil polls cond until it holds, failing the test after 30s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// newExecution returns a pending execution of pipeline p, as Submit
// makes one.
func newExecution(p string) *conveyor.Execution {
	return &conveyor.Execution{
		ID:        uuid.NewString(),
		Pipeline:  p,
		Status:    conveyor.StatusPending,
		Input:     json.RawMessage("{}"),
		CreatedAt: time.Now().UTC(),
	}
}

// runningExecutions creates n executions in s and claims them, as the
// claim loop would: each is running its first attempt, its started event
// seq 1.
func runningExecutions(t *testing.T, s conveyor.Store, n int) []conveyor.Claim {
	t.Helper()
	es := make([]*conveyor.Execution, n)
	for i := range es {
		es[i] = newExecution("p")
	}
	if err := s.CreateExecutions(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	cs, err := s.ClaimPending(t.Context(), n, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != n {
		t.Fatalf("claimed %d executions, want %d", len(cs), n)
	}
	return cs
}

// published records what an engine publishes and lets a test wait for it.
type published struct {
	mu      sync.Mutex
	events  []conveyor.Event
	changed chan struct{} // closed and replaced on every event
}

func newPublished() *published { return &published{changed: make(chan struct{})} }

func (p *published) publish(ev conveyor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
	close(p.changed)
	p.changed = make(chan struct{})
}

// waitFor waits until match holds for a published event and returns it.
func (p *published) waitFor(t *testing.T, what string, match func(conveyor.Event) bool) conveyor.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.events); i++ {
			if ev := p.events[i]; match(ev) {
				p.mu.Unlock()
				return ev
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("nothing published in 30s: %s", what)
		}
	}
}

// waitFinal waits for the final event of execution id.
func (p *published) waitFinal(t *testing.T, id string) conveyor.Event {
	t.Helper()
	return p.waitFor(t, "the final event of "+id, func(ev conveyor.Event) bool {
		return ev.ExecutionID == id && ev.Type.Final()
	})
}

// startEngine starts an engine with cfg on cfg.Store, or on a new SQLite
// store if it has none, and stops it when the test ends. It returns the
// engine and what it publishes.
func startEngine(t *testing.T, cfg Config) (*Engine, *published) {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = openStore(t)
	}
	pub := newPublished()
	cfg.PublishFunc = pub.publish
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e, pub
}
