package hub

import (
	"fmt"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func ev(id string, seq int64, typ conveyor.EventType) conveyor.Event {
	return conveyor.Event{ExecutionID: id, Seq: seq, Type: typ}
}

func seqs(evs []conveyor.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func TestConflatesProgressKeepsStatusAndOrder(t *testing.T) {
	t.Parallel()
	h := New()
	s, _ := h.Subscribe("a")
	defer s.Close()

	h.Publish(ev("a", 1, conveyor.EventStarted))
	h.Publish(ev("a", 2, conveyor.EventProgress))
	h.Publish(ev("a", 3, conveyor.EventProgress))
	h.Publish(ev("a", 4, conveyor.EventProgress))
	h.Publish(ev("a", 5, conveyor.EventRetrying))
	h.Publish(ev("a", 6, conveyor.EventProgress))
	h.Publish(ev("b", 1, conveyor.EventStarted)) // another execution
	h.Publish(ev("a", 7, conveyor.EventCompleted))

	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	got := fmt.Sprint(seqs(s.Take(nil)))
	if want := "[1 4 5 6 7]"; got != want {
		t.Fatalf("got seqs %s, want %s", got, want)
	}
	if rest := s.Take(nil); len(rest) != 0 {
		t.Fatalf("second Take returned %v", seqs(rest))
	}
}

func TestConflatesDataLikeProgress(t *testing.T) {
	t.Parallel()
	h := New()
	s, _ := h.Subscribe("a")
	defer s.Close()

	// Each data event carries the whole data: the newest of a run of them
	// says it all. A data event does not replace progress, nor progress
	// data, and a stalled event is never conflated.
	for _, e := range []conveyor.Event{
		ev("a", 1, conveyor.EventStarted),
		ev("a", 2, conveyor.EventData),
		ev("a", 3, conveyor.EventData),
		ev("a", 4, conveyor.EventProgress),
		ev("a", 5, conveyor.EventData),
		ev("a", 6, conveyor.EventStalled),
		ev("a", 7, conveyor.EventStalled),
		ev("a", 8, conveyor.EventData),
		ev("a", 9, conveyor.EventData),
	} {
		h.Publish(e)
	}
	if got, want := fmt.Sprint(seqs(s.Take(nil))), "[1 3 4 5 6 7 9]"; got != want {
		t.Fatalf("got seqs %s, want %s", got, want)
	}
}

func TestSubscribeReturnsNewestPublished(t *testing.T) {
	t.Parallel()
	h := New()
	if _, last := h.Subscribe("x"); last.Seq != 0 {
		t.Fatalf("fresh topic last seq = %d", last.Seq)
	}
	h.Publish(ev("a", 1, conveyor.EventStarted))
	h.Publish(ev("a", 2, conveyor.EventProgress))
	s, last := h.Subscribe("a")
	defer s.Close()
	if last.Seq != 2 || last.Type != conveyor.EventProgress {
		t.Fatalf("last = %+v, want progress seq 2", last)
	}
	if got := s.Take(nil); len(got) != 0 {
		t.Fatalf("events before subscribing were delivered: %v", seqs(got))
	}
}

func TestTopicsAreReleased(t *testing.T) {
	t.Parallel()
	h := New()
	h.Publish(ev("a", 1, conveyor.EventStarted))
	h.Publish(ev("a", 2, conveyor.EventCompleted))
	if n := h.Topics(); n != 0 {
		t.Fatalf("after final event with no subscribers: %d topics", n)
	}

	s, _ := h.Subscribe("b")
	h.Publish(ev("b", 1, conveyor.EventStarted))
	h.Publish(ev("b", 2, conveyor.EventFailed))
	if n := h.Topics(); n != 1 {
		t.Fatalf("topic with a subscriber: %d topics, want 1", n)
	}
	s.Close()
	s.Close()
	if n := h.Topics(); n != 0 {
		t.Fatalf("after the last subscriber left a finished topic: %d topics", n)
	}

	// An execution retried on another node never publishes its final
	// event here: the retrying event must release the topic.
	h.Publish(ev("c", 1, conveyor.EventProgress))
	h.Publish(ev("c", 2, conveyor.EventRetrying))
	if n := h.Topics(); n != 0 {
		t.Fatalf("after retrying with no subscribers: %d topics", n)
	}

	s, _ = h.Subscribe("never-published")
	s.Close()
	if n := h.Topics(); n != 0 {
		t.Fatalf("empty topic kept: %d topics", n)
	}
}

func TestSlowSubscriberDoesNotGrow(t *testing.T) {
	t.Parallel()
	h := New()
	s, _ := h.Subscribe("a")
	defer s.Close()
	for i := int64(1); i <= 10000; i++ {
		h.Publish(ev("a", i, conveyor.EventProgress))
	}
	got := s.Take(nil)
	if len(got) != 1 || got[0].Seq != 10000 {
		t.Fatalf("got %v, want only the latest progress", seqs(got))
	}
}

// BenchmarkPublish measures one progress publish to n subscribers that
// never read: the cost the engine pays per update, whoever listens.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := New()
			for range n {
				s, _ := h.Subscribe("a")
				defer s.Close()
			}
			p := &conveyor.Progress{CurrentStep: 1}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.Publish(conveyor.Event{ExecutionID: "a", Seq: int64(i + 1), Type: conveyor.EventProgress, Progress: p})
			}
		})
	}
}

func TestSubscribed(t *testing.T) {
	t.Parallel()
	h := New()
	if _, ok := h.Subscribed("a"); ok {
		t.Fatal("unknown execution has subscribers")
	}
	s, _ := h.Subscribe("a")
	if seq, ok := h.Subscribed("a"); !ok || seq != 0 {
		t.Fatalf("Subscribed = %d %v, want 0 true", seq, ok)
	}
	h.Publish(ev("a", 9, conveyor.EventProgress))
	if seq, _ := h.Subscribed("a"); seq != 9 {
		t.Fatalf("after publish: %d, want 9", seq)
	}
	if ids := h.SubscribedIDs(); len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("SubscribedIDs = %v", ids)
	}
	s.Close()
	if _, ok := h.Subscribed("a"); ok {
		t.Fatal("subscribed after the last subscriber left")
	}
	if ids := h.SubscribedIDs(); len(ids) != 0 {
		t.Fatalf("SubscribedIDs = %v after the last subscriber left", ids)
	}
}

// TestOnSubscribe checks that the hook sees the subscription already made,
// before Subscribe returns.
func TestOnSubscribe(t *testing.T) {
	t.Parallel()
	h := New()
	var called []string
	h.OnSubscribe(func(id string) {
		if _, ok := h.Subscribed(id); !ok {
			t.Errorf("hook for %s ran before the subscription was made", id)
		}
		called = append(called, id)
	})
	s1, _ := h.Subscribe("a")
	defer s1.Close()
	s2, _ := h.Subscribe("a")
	defer s2.Close()
	if fmt.Sprint(called) != "[a a]" {
		t.Fatalf("hook called with %v, want [a a]", called)
	}
	h.OnSubscribe(nil)
	s3, _ := h.Subscribe("b")
	defer s3.Close()
	if len(called) != 2 {
		t.Fatalf("hook called after it was removed: %v", called)
	}
}
