// Package hub fans events out to in-process subscribers without ever making
// the publisher wait.
//
// Each subscriber has its own queue. Status events (started, completed, …)
// are always appended; a progress (or data) event replaces one of its type
// still waiting at the tail of the queue (the latest wins: each carries
// the whole state). Order is preserved and
// the queue of one execution's subscriber stays as short as the number of
// status changes, so a reader that never reads costs memory of a few
// events and the publisher a lock and an append.
package hub

import (
	"sync"
	"sync/atomic"

	"github.com/conveyor-run/conveyor"
)

// Hub routes published events to the subscribers of their execution.
type Hub struct {
	mu     sync.RWMutex
	topics map[string]*topic

	onSubscribe atomic.Pointer[func(id string)] // see OnSubscribe

	// feeds are the subscriptions to every execution (SubscribeAll),
	// replaced as a whole so Publish reads them without a lock.
	feedsMu sync.Mutex
	feeds   atomic.Pointer[[]*Feed]
}

// topic is one execution's subscribers and its newest published event,
// which lets a new subscriber see progress that is not yet stored.
type topic struct {
	mu   sync.Mutex
	subs []*Subscription
	last conveyor.Event
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{topics: make(map[string]*topic)}
}

// Subscription receives the events of one execution published after it
// was made. Read it with Ready and Take; Close it when done.
type Subscription struct {
	hub   *Hub
	id    string
	ready chan struct{}

	mu    sync.Mutex
	queue []conveyor.Event
}

// Subscribe starts delivering the events of execution id. It also returns
// the newest event already published for id (zero Seq if none is known).
// Subscribe before reading a snapshot from the store so that nothing falls
// between the two.
func (h *Hub) Subscribe(id string) (*Subscription, conveyor.Event) {
	s := &Subscription{hub: h, id: id, ready: make(chan struct{}, 1)}
	h.mu.Lock()
	t := h.topics[id]
	if t == nil {
		t = &topic{}
		h.topics[id] = t
	}
	t.mu.Lock()
	t.subs = append(t.subs, s)
	last := t.last
	t.mu.Unlock()
	h.mu.Unlock()
	if fn := h.onSubscribe.Load(); fn != nil {
		(*fn)(id)
	}
	return s, last
}

// OnSubscribe makes every later Subscribe call fn with the execution's id
// once the subscription is made and before Subscribe returns, so before
// the subscriber can read a snapshot from the store. fn runs on the
// subscriber's goroutine, holding no lock of the hub; it must be quick. A
// later call replaces fn; nil removes it.
func (h *Hub) OnSubscribe(fn func(id string)) {
	if fn == nil {
		h.onSubscribe.Store(nil)
		return
	}
	h.onSubscribe.Store(&fn)
}

// Publish delivers ev to every subscriber of its execution and every
// feed. It never blocks on a subscriber. ev must not be modified
// afterwards.
func (h *Hub) Publish(ev conveyor.Event) {
	for _, f := range h.loadFeeds() {
		f.push(ev)
	}
	t := h.lockTopic(ev.ExecutionID, ev.Type == conveyor.EventProgress)
	if t == nil {
		return // nobody listens, and the store has this status event
	}
	if ev.Seq > t.last.Seq {
		t.last = ev
	}
	for _, s := range t.subs {
		s.push(ev)
	}
	// With nobody listening, a status event ends what the topic must
	// remember: status events are stored before they are published, so a
	// later subscriber finds them in the store. (Keeping topics until the
	// final event would leak those of executions retried on another node.)
	forget := ev.Type != conveyor.EventProgress && len(t.subs) == 0
	t.mu.Unlock()
	if forget {
		h.drop(ev.ExecutionID, t)
	}
}

// drop removes t if it is still the topic of id and has no subscribers.
func (h *Hub) drop(id string, t *topic) {
	h.mu.Lock()
	t.mu.Lock()
	if h.topics[id] == t && len(t.subs) == 0 {
		delete(h.topics, id)
	}
	t.mu.Unlock()
	h.mu.Unlock()
}

// Last returns the newest event published for execution id, if the hub
// holds one: progress reaches subscribers before the store.
func (h *Hub) Last(id string) (conveyor.Event, bool) {
	h.mu.RLock()
	t := h.topics[id]
	h.mu.RUnlock()
	if t == nil {
		return conveyor.Event{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last, t.last.Seq > 0
}

// Subscribed reports whether execution id has subscribers, its own or a
// feed of every execution, and the seq of the newest event published for
// it (0 if none is known).
func (h *Hub) Subscribed(id string) (last int64, ok bool) {
	feeds := len(h.loadFeeds()) > 0
	h.mu.RLock()
	t := h.topics[id]
	h.mu.RUnlock()
	if t == nil {
		return 0, feeds
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last.Seq, feeds || len(t.subs) > 0
}

// SubscribedIDs returns the executions that have subscribers.
func (h *Hub) SubscribedIDs() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var ids []string
	for id, t := range h.topics {
		t.mu.Lock()
		if len(t.subs) > 0 {
			ids = append(ids, id)
		}
		t.mu.Unlock()
	}
	return ids
}

func (s *Subscription) push(ev conveyor.Event) {
	s.mu.Lock()
	s.queue = enqueue(s.queue, ev)
	s.mu.Unlock()
	signal(s.ready)
}

// enqueue adds ev to the events q of one execution that wait for a
// reader, conflating progress and data: such an event replaces one of its
// type that waits last, so a slow reader gets the newest progress and
// data and every status event.
func enqueue(q []conveyor.Event, ev conveyor.Event) []conveyor.Event {
	if n := len(q); ev.Type.Conflates() && n > 0 && q[n-1].Type == ev.Type {
		q[n-1] = ev
		return q
	}
	return append(q, ev)
}

// signal wakes the reader waiting on ready without blocking: one signal
// covers every event queued before it takes them.
func signal(ready chan struct{}) {
	select {
	case ready <- struct{}{}:
	default:
	}
}

// Ready is signalled when events may be waiting for Take.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take appends the waiting events to buf, oldest first, and returns it.
func (s *Subscription) Take(buf []conveyor.Event) []conveyor.Event {
	s.mu.Lock()
	buf = append(buf, s.queue...)
	clear(s.queue) // drop references to delivered progress
	s.queue = s.queue[:0]
	s.mu.Unlock()
	return buf
}

// Close stops delivery. It is safe to call more than once.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[s.id]
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.subs {
		if x == s {
			t.subs = append(t.subs[:i], t.subs[i+1:]...)
			break
		}
	}
	if len(t.subs) == 0 {
		// Nobody listens: the next progress event makes a new topic, and
		// the store has every status event. (Keeping it would leak the
		// topics of executions relayed from other nodes.)
		delete(h.topics, s.id)
	}
}

// lockTopic returns the topic of id with its lock held, making one if
// create is set, or nil. The hub's lock is held until the topic's is taken,
// so Close cannot remove the topic in between (a publish to a removed
// topic would never reach its new subscribers).
func (h *Hub) lockTopic(id string, create bool) *topic {
	h.mu.RLock()
	if t := h.topics[id]; t != nil {
		t.mu.Lock()
		h.mu.RUnlock()
		return t
	}
	h.mu.RUnlock()
	if !create {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[id]
	if t == nil {
		t = &topic{}
		h.topics[id] = t
	}
	t.mu.Lock()
	return t
}
