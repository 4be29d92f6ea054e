package hub

import "testing"

// woken reports whether ready holds a wake-up, taking it.
func woken(ready <-chan struct{}) bool {
	select {
	case <-ready:
		return true
	default:
		return false
	}
}

func TestWakeupsCoalesceAndReachOnlyTheirExecution(t *testing.T) {
	t.Parallel()
	w := NewWakeups()
	a1, stopA1 := w.Wait("a")
	a2, stopA2 := w.Wait("a")
	b, stopB := w.Wait("b")
	defer stopB()

	w.Wake("a")
	w.Wake("a") // coalesces with the first: one read covers both
	if !woken(a1) || !woken(a2) {
		t.Fatal("a waiter of a was not woken")
	}
	if woken(a1) || woken(a2) {
		t.Fatal("two wake-ups before a read were not coalesced")
	}
	if woken(b) {
		t.Fatal("a wake-up of a reached b")
	}

	w.WakeAll()
	if !woken(a1) || !woken(b) {
		t.Fatal("WakeAll missed a waiter")
	}

	stopA1()
	stopA1() // more than once is fine
	w.Wake("a")
	if woken(a1) {
		t.Fatal("a stopped waiter was woken")
	}
	if !woken(a2) {
		t.Fatal("stopping one waiter stopped another")
	}
	stopA2()
	if n := len(w.waiters); n != 1 {
		t.Fatalf("%d executions have waiters, want 1 (b): a's entry leaks", n)
	}
	w.Wake("nobody") // no waiters: nothing happens
}
