package hub

import "sync"

// Wakeups tells the waiters of an execution that something of it may have
// changed, with nothing attached: they re-read the store. Log followers
// use it, since a log line gets its number only once stored.
//
// A wake-up never blocks the waker and coalesces: a waiter that has not
// yet taken one wake-up gets no second, and one read covers both. Waking
// an execution that nobody waits for costs a read lock and a map lookup.
type Wakeups struct {
	mu      sync.RWMutex
	waiters map[string][]chan struct{}
}

// NewWakeups returns Wakeups without waiters.
func NewWakeups() *Wakeups {
	return &Wakeups{waiters: make(map[string][]chan struct{})}
}

// Wait returns a channel signalled at each wake-up of execution id from
// now on, and stop, which ends that (safe to call more than once). Call
// it before reading the store, so that no change falls between the read
// and the wait.
func (w *Wakeups) Wait(id string) (ready <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.waiters[id] = append(w.waiters[id], ch)
	w.mu.Unlock()
	var once sync.Once
	return ch, func() { once.Do(func() { w.remove(id, ch) }) }
}

func (w *Wakeups) remove(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chs := w.waiters[id]
	for i, c := range chs {
		if c == ch {
			chs = append(chs[:i], chs[i+1:]...)
			break
		}
	}
	if len(chs) == 0 {
		delete(w.waiters, id)
	} else {
		w.waiters[id] = chs
	}
}

// Wake wakes the waiters of execution id.
func (w *Wakeups) Wake(id string) {
	w.mu.RLock()
	for _, ch := range w.waiters[id] {
		signal(ch)
	}
	w.mu.RUnlock()
}

// WakeAll wakes every waiter: after notices from other nodes may have
// been lost.
func (w *Wakeups) WakeAll() {
	w.mu.RLock()
	for _, chs := range w.waiters {
		for _, ch := range chs {
			signal(ch)
		}
	}
	w.mu.RUnlock()
}
