package hub

import (
	"testing"

	"github.com/conveyor-run/conveyor"
)

func feedEvent(id string, seq int64, typ conveyor.EventType) conveyor.Event {
	return conveyor.Event{Type: typ, ExecutionID: id, Seq: seq}
}

func TestFeedGetsEveryExecutionConflatedPerExecution(t *testing.T) {
	h := New()
	f := h.SubscribeAll()
	defer f.Close()
	if _, ok := h.Subscribed("anything"); !ok {
		t.Error("with a feed open every execution counts as subscribed (the relay must bring its events)")
	}
	h.Publish(feedEvent("a", 1, conveyor.EventStarted))
	h.Publish(feedEvent("b", 1, conveyor.EventStarted))
	h.Publish(feedEvent("a", 2, conveyor.EventProgress))
	h.Publish(feedEvent("a", 3, conveyor.EventProgress)) // replaces a#2
	h.Publish(feedEvent("b", 2, conveyor.EventProgress))
	h.Publish(feedEvent("a", 4, conveyor.EventCompleted))
	h.Publish(feedEvent("b", 3, conveyor.EventProgress)) // replaces b#2

	select {
	case <-f.Ready():
	default:
		t.Fatal("feed not ready after publishes")
	}
	var got []string
	for _, e := range f.Take(nil) {
		got = append(got, e.ExecutionID+string(rune('0'+e.Seq)))
	}
	want := []string{"a1", "a3", "a4", "b1", "b3"}
	if len(got) != len(want) {
		t.Fatalf("took %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("took %v, want %v", got, want)
		}
	}
	if more := f.Take(nil); len(more) != 0 {
		t.Errorf("second Take = %v, want nothing", more)
	}

	f.Close()
	f.Close() // twice is fine
	h.Publish(feedEvent("c", 1, conveyor.EventStarted))
	if more := f.Take(nil); len(more) != 0 {
		t.Errorf("closed feed got %v", more)
	}
	if _, ok := h.Subscribed("c"); ok {
		t.Error("without feeds or subscribers an execution is not subscribed")
	}
}

func BenchmarkPublishWithFeed(b *testing.B) {
	h := New()
	f := h.SubscribeAll()
	defer f.Close()
	e := feedEvent("a", 1, conveyor.EventProgress)
	for b.Loop() {
		h.Publish(e)
		if len(f.order) > 1000 {
			f.Take(nil)
		}
	}
}
