package hub

import (
	"slices"
	"sync"

	"github.com/conveyor-run/conveyor"
)

// Feed receives the events of every execution published after it was
// made: what a stream of many executions reads. Each execution's waiting
// events are queued apart, progress conflated at the tail as for a
// Subscription, so a feed that is not read costs memory by the executions
// with undelivered events (a few events each), not by the events.
type Feed struct {
	hub   *Hub
	ready chan struct{}

	mu     sync.Mutex
	queues map[string][]conveyor.Event
	order  []string // executions with waiting events, oldest first
}

// SubscribeAll starts delivering the events of every execution.
func (h *Hub) SubscribeAll() *Feed {
	f := &Feed{hub: h, ready: make(chan struct{}, 1), queues: map[string][]conveyor.Event{}}
	h.feedsMu.Lock()
	defer h.feedsMu.Unlock()
	feeds := append(slices.Clone(h.loadFeeds()), f)
	h.feeds.Store(&feeds)
	return f
}

func (h *Hub) loadFeeds() []*Feed {
	if p := h.feeds.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *Feed) push(ev conveyor.Event) {
	f.mu.Lock()
	q, waiting := f.queues[ev.ExecutionID]
	f.queues[ev.ExecutionID] = enqueue(q, ev)
	if !waiting {
		f.order = append(f.order, ev.ExecutionID)
	}
	f.mu.Unlock()
	signal(f.ready)
}

// Ready is signalled when events may be waiting for Take.
func (f *Feed) Ready() <-chan struct{} { return f.ready }

// Take appends the waiting events to buf and returns it: each execution's
// in the order they were published, executions in the order their first
// waiting event was.
func (f *Feed) Take(buf []conveyor.Event) []conveyor.Event {
	f.mu.Lock()
	for _, id := range f.order {
		buf = append(buf, f.queues[id]...)
	}
	clear(f.queues)
	f.order = f.order[:0]
	f.mu.Unlock()
	return buf
}

// Close stops delivery. It is safe to call more than once.
func (f *Feed) Close() {
	h := f.hub
	h.feedsMu.Lock()
	defer h.feedsMu.Unlock()
	feeds := slices.DeleteFunc(slices.Clone(h.loadFeeds()), func(x *Feed) bool { return x == f })
	h.feeds.Store(&feeds)
}
