package relay

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// DefaultPollInterval is how often, when Config.PollInterval is zero, the
// relay re-reads the watched executions in case a notice was lost.
const DefaultPollInterval = time.Second

// Tuning.
const (
	// shardCount is how many executions the relay catches up at once.
	// Each shard owns the executions whose id hashes to it, so one
	// execution's events are still published in order.
	shardCount = 8
	// noticeQueue is how many notices a shard holds; past it, notices
	// that carry progress are dropped (conflated), others wait.
	noticeQueue = 4096
	// page is how many events one store read returns.
	page = 500
	// maxStored is how many executions one generation of Relay.stored
	// holds; two generations bound its memory.
	maxStored = 1 << 14
	// maxSent is how many executions one generation of a shard's sent
	// holds.
	maxSent = 1 << 12
)

// Store is what the relay reads: the event log of a store that other nodes
// write to (conveyor.Store has it).
type Store interface {
	// Events returns up to limit events of an execution with seq > after,
	// in seq order.
	Events(ctx context.Context, id string, after int64, limit int) ([]conveyor.Event, error)
}

// Hub is the fan-out the relay publishes to (hub.Hub has it).
type Hub interface {
	// Publish delivers ev to the subscribers of its execution without
	// blocking.
	Publish(ev conveyor.Event)
	// Subscribed reports whether execution id has subscribers and, if
	// so, the seq of the newest event published for it.
	Subscribed(id string) (last int64, ok bool)
	// SubscribedIDs returns the executions that have subscribers.
	SubscribedIDs() []string
	// OnSubscribe makes every later subscription call fn with its
	// execution's id before the subscriber can read a snapshot.
	OnSubscribe(fn func(id string))
}

// Config configures a Relay.
type Config struct {
	Store Store
	Hub   Hub
	// LocalFunc reports whether an execution runs on this node, whose
	// subscribers get its events straight from the engine: the poll skips
	// those. Nil means none does.
	LocalFunc func(id string) bool
	// PollInterval is how often the watched executions are re-read in
	// case a notice was lost; default DefaultPollInterval.
	PollInterval time.Duration
	Logger       *slog.Logger
}

func (c *Config) validate() error {
	if c.Store == nil {
		return errors.New("relay: Store is required")
	}
	if c.Hub == nil {
		return errors.New("relay: Hub is required")
	}
	if c.PollInterval < 0 {
		return fmt.Errorf("relay: poll interval %s is negative", c.PollInterval)
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.LocalFunc == nil {
		c.LocalFunc = func(string) bool { return false }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Relay brings events that other nodes stored to this node's subscribers;
// see the package documentation. Notify feeds it notices, Run serves them.
type Relay struct {
	cfg    Config
	seed   maphash.Seed
	shards [shardCount]shard

	// stored, then storedOld, hold the newest seq other nodes' notices
	// said is stored, per execution. When stored is full it becomes
	// storedOld: a forgotten execution costs a longer first read, never
	// an event.
	storedMu          sync.Mutex
	stored, storedOld map[string]int64

	// stopped is closed when Run returns: Notify waits for room no more.
	stopped chan struct{}
}

// shard is the part of the relay that one goroutine serves.
type shard struct {
	notices chan conveyor.Notice

	mu sync.Mutex
	// held maps each watched execution of the shard to a seq that every
	// subscriber holds the execution up to, from its snapshot or from
	// what the relay published (see the package documentation).
	held map[string]int64
	// sent, then sentOld, hold the newest seq the relay published per
	// execution, whoever watched it: a stream of many executions
	// subscribes to no execution, so neither held nor the hub (which
	// forgets an execution after a status event nobody subscribed to)
	// says what it was sent. Two generations bound it.
	sent, sentOld map[string]int64
	// skipped maps an execution to the newest seq of a progress notice
	// the shard dropped for want of room: a later notice that follows it
	// misses only progress. Cleared once a notice past it is served.
	skipped map[string]int64
}

// New returns a relay and makes cfg.Hub tell it of new subscriptions.
func New(cfg Config) (*Relay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, seed: maphash.MakeSeed(), stored: make(map[string]int64), stopped: make(chan struct{})}
	for i := range r.shards {
		r.shards[i] = shard{notices: make(chan conveyor.Notice, noticeQueue),
			held: make(map[string]int64), sent: make(map[string]int64), skipped: make(map[string]int64)}
	}
	cfg.Hub.OnSubscribe(r.subscribed)
	return r, nil
}

func (r *Relay) shardOf(id string) *shard {
	return &r.shards[maphash.String(r.seed, id)%shardCount]
}

// Notify hands the relay a notice from another node. Call it from the
// store's Listen callback. When a shard's queue is full, a notice that
// carries progress is dropped (the next one supersedes it) and any other
// waits for room: a status event must not be lost, and the wait slows
// the listener, not the node that sent it.
func (r *Relay) Notify(n conveyor.Notice) {
	switch n.Kind {
	case conveyor.NoticeEvents:
		r.noteStored(n.ExecutionID, n.Seq)
		s := r.shardOf(n.ExecutionID)
		select {
		case s.notices <- n:
			return
		default:
		}
		if n.Event != nil && n.Event.Type.Conflates() {
			s.mu.Lock()
			s.skipped[n.ExecutionID] = max(s.skipped[n.ExecutionID], n.Seq)
			s.mu.Unlock()
			return
		}
		select {
		case s.notices <- n:
		case <-r.stopped:
		}
	case conveyor.NoticeResync:
		for i := range r.shards {
			select {
			case r.shards[i].notices <- n:
			default:
			}
		}
	}
}

// noteStored records that execution id has events up to seq in the store.
func (r *Relay) noteStored(id string, seq int64) {
	r.storedMu.Lock()
	defer r.storedMu.Unlock()
	if seq <= r.storedSeqLocked(id) {
		return
	}
	if _, ok := r.stored[id]; !ok && len(r.stored) >= maxStored {
		r.storedOld, r.stored = r.stored, make(map[string]int64)
	}
	r.stored[id] = seq
}

func (r *Relay) storedSeqLocked(id string) int64 {
	if seq, ok := r.stored[id]; ok {
		return seq
	}
	return r.storedOld[id]
}

// subscribed is the hub's OnSubscribe hook. It runs before the new
// subscriber reads its snapshot, whose seq is therefore at least what is
// known to be stored now: the first subscriber's bound becomes the
// execution's held seq.
func (r *Relay) subscribed(id string) {
	r.storedMu.Lock()
	seq := r.storedSeqLocked(id)
	r.storedMu.Unlock()
	s := r.shardOf(id)
	s.mu.Lock()
	if _, ok := s.held[id]; !ok {
		s.held[id] = seq
	}
	s.mu.Unlock()
}

// Run serves every shard until ctx ends. Call it once.
func (r *Relay) Run(ctx context.Context) {
	defer close(r.stopped)
	var wg sync.WaitGroup
	for i := range r.shards {
		wg.Go(func() { r.runShard(ctx, &r.shards[i]) })
	}
	wg.Wait()
}

func (r *Relay) runShard(ctx context.Context, s *shard) {
	tick := time.NewTicker(r.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-s.notices:
			if n.Kind == conveyor.NoticeResync {
				r.catchUpAll(ctx, s)
				continue
			}
			// Not skipped when the execution runs here: only another
			// node writes to it then (a rescue after this node lost its
			// lease), and its subscribers should hear of that.
			if after, ok := r.watched(s, n.ExecutionID); ok && after < n.Seq {
				r.deliver(ctx, s, n, after)
			}
		case <-tick.C:
			r.catchUpAll(ctx, s)
			r.forgetUnwatched(s)
		}
	}
}

// watched reports whether execution id has subscribers and, if so, the
// seq after which they may miss events: the newest published to them or
// the seq they all hold, whichever is higher.
func (r *Relay) watched(s *shard, id string) (after int64, ok bool) {
	last, ok := r.cfg.Hub.Subscribed(id)
	if !ok {
		return 0, false
	}
	s.mu.Lock()
	held := max(s.held[id], s.sent[id], s.sentOld[id])
	s.mu.Unlock()
	return max(last, held), true
}

// deliver brings a watched execution's subscribers, who have every event
// up to after, the events up to the notice's. A notice that carries its
// event is published as it is when nothing announced comes between: it
// is the next seq, or its node announced Prev, which they have (the seqs
// between were progress that node dropped, or never published).
// Otherwise the store has what they miss: read it, then publish the
// carried event if the store did not have it (unstored progress).
func (r *Relay) deliver(ctx context.Context, s *shard, n conveyor.Notice, after int64) {
	s.mu.Lock()
	skipped, ok := s.skipped[n.ExecutionID]
	if ok && skipped < n.Seq {
		delete(s.skipped, n.ExecutionID)
	}
	s.mu.Unlock()
	if n.Event != nil && (n.Seq == after+1 || n.Prev > 0 && n.Prev <= max(after, skipped)) {
		r.cfg.Hub.Publish(*n.Event)
		r.published(s, n.ExecutionID, n.Seq)
		return
	}
	after = r.catchUp(ctx, s, n.ExecutionID, after)
	if n.Event != nil && n.Seq > after {
		r.cfg.Hub.Publish(*n.Event)
		r.published(s, n.ExecutionID, n.Seq)
	}
}

// published raises a watched execution's held seq to seq: every event
// up to it is published now, or was known stored before a later
// subscriber read its snapshot.
func (r *Relay) published(s *shard, id string, seq int64) {
	s.mu.Lock()
	if held, ok := s.held[id]; ok && held < seq {
		s.held[id] = seq
	}
	if _, ok := s.sent[id]; !ok && len(s.sent) >= maxSent {
		s.sentOld, s.sent = s.sent, make(map[string]int64)
	}
	s.sent[id] = seq
	s.mu.Unlock()
}

// catchUpAll catches up every watched execution of the shard that does
// not run here.
func (r *Relay) catchUpAll(ctx context.Context, s *shard) {
	for _, id := range r.cfg.Hub.SubscribedIDs() {
		if r.shardOf(id) != s || r.cfg.LocalFunc(id) {
			continue
		}
		if after, ok := r.watched(s, id); ok {
			r.catchUp(ctx, s, id, after)
		}
	}
}

// catchUp publishes the stored events of id after seq, in order, and
// returns the seq of the last one published (after if none).
func (r *Relay) catchUp(ctx context.Context, s *shard, id string, after int64) int64 {
	for {
		evs, err := r.cfg.Store.Events(ctx, id, after, page)
		if err != nil {
			if ctx.Err() == nil {
				r.cfg.Logger.Warn("relay events", "execution", id, "err", err)
			}
			return after
		}
		for _, ev := range evs {
			r.cfg.Hub.Publish(ev)
			after = ev.Seq
		}
		if len(evs) > 0 {
			r.published(s, id, after)
		}
		if len(evs) < page {
			return after
		}
	}
}

// forgetUnwatched drops the held seqs of executions without subscribers.
// The shard's lock is held while the hub is asked, so a subscription
// made meanwhile finds the entry gone and sets a new one.
func (r *Relay) forgetUnwatched(s *shard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.held {
		if _, ok := r.cfg.Hub.Subscribed(id); !ok {
			delete(s.held, id)
		}
	}
}
