package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Announcer tuning.
const (
	// maxAnnounceQueue is how many events wait for an announcement at
	// most; past it new progress events are dropped (status events never
	// are), as a slow subscriber's progress is conflated.
	maxAnnounceQueue = 1 << 16
	// maxAnnounceBatch bounds the events of one announcement.
	maxAnnounceBatch = 4096
	// maxPrev bounds how many executions the announcer remembers the last
	// announced seq of; forgetting one costs its receivers a store read.
	maxPrev = 1 << 16
	// announceGap is the least time between two announcements.
	announceGap = 2 * time.Millisecond
	// announceTimeout bounds one announcement.
	announceTimeout = 5 * time.Second
)

// Announcer sends the events this node publishes to the other nodes of a
// shared store (conveyor.Notifier.Announce), in the order published, so
// that their subscribers get every event, stored or not, without a read
// of the store. What is published while an announcement is under way
// goes in the next one: batches grow with the load, with no timer.
type Announcer struct {
	announce func(context.Context, []conveyor.Announced) error
	logger   *slog.Logger

	mu      sync.Mutex
	queue   []conveyor.Event
	dropped int // progress events dropped since the last announcement
	wake    chan struct{}

	// prev is the seq last announced per execution (only Run uses it).
	prev map[string]int64
}

// NewAnnouncer returns an announcer that sends with announce (a shared
// store's Announce); Run sends.
func NewAnnouncer(announce func(context.Context, []conveyor.Announced) error, logger *slog.Logger) *Announcer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Announcer{announce: announce, logger: logger, wake: make(chan struct{}, 1), prev: make(map[string]int64)}
}

// Publish queues ev for announcement without blocking. Call it with
// every event the engine publishes, in its order.
func (a *Announcer) Publish(ev conveyor.Event) {
	a.mu.Lock()
	if len(a.queue) >= maxAnnounceQueue && ev.Type.Conflates() {
		a.dropped++
		a.mu.Unlock()
		return
	}
	a.queue = append(a.queue, ev)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run announces what Publish queues until ctx ends, and then what is
// still queued.
func (a *Announcer) Run(ctx context.Context) {
	for {
		select {
		case <-a.wake:
			a.flush(ctx)
			// Each announcement is a commit that PostgreSQL serializes
			// with every other notifying one: under load, gather for a
			// moment, so that many events share one.
			time.Sleep(announceGap)
		case <-ctx.Done():
			a.flush(context.WithoutCancel(ctx))
			return
		}
	}
}

// flush announces everything queued, a batch at a time.
func (a *Announcer) flush(ctx context.Context) {
	var batch []conveyor.Announced
	for {
		a.mu.Lock()
		n := min(len(a.queue), maxAnnounceBatch)
		evs := a.queue[:n:n]
		a.queue = a.queue[n:]
		if len(a.queue) == 0 {
			a.queue = nil // let the backing array go
		}
		dropped := a.dropped
		a.dropped = 0
		a.mu.Unlock()
		if dropped > 0 {
			a.logger.Warn("announcer behind: progress dropped for other nodes", "events", dropped)
		}
		if n == 0 {
			return
		}
		batch = a.number(batch[:0], evs)
		actx, cancel := context.WithTimeout(ctx, announceTimeout)
		err := a.announce(actx, batch)
		cancel()
		if err != nil {
			// The receivers see a gap in the seqs Prev links and read
			// the store; their poll covers the rest.
			a.logger.Warn("announce events to other nodes", "events", len(batch), "err", err)
		}
	}
}

// number appends evs to batch with each one's Prev, and remembers each
// execution's newest seq until its final event.
func (a *Announcer) number(batch []conveyor.Announced, evs []conveyor.Event) []conveyor.Announced {
	for _, ev := range evs {
		batch = append(batch, conveyor.Announced{Event: ev, Prev: a.prev[ev.ExecutionID]})
		switch {
		case ev.Type.Final():
			delete(a.prev, ev.ExecutionID)
		default:
			if _, ok := a.prev[ev.ExecutionID]; !ok && len(a.prev) >= maxPrev {
				clear(a.prev)
			}
			a.prev[ev.ExecutionID] = ev.Seq
		}
	}
	return batch
}
