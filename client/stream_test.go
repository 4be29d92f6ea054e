package client_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestWatchSurvivesADroppedConnection cuts a single execution's stream
// after its first progress; the execution moves on and ends while the
// client is away. The caller sees seq strictly rising to the final event.
func TestWatchSurvivesADroppedConnection(t *testing.T) {
	t.Parallel()
	n := setup(t, 1, nil)
	ex, err := n.ctl.Submit(t.Context(), "gated", nil)
	if err != nil {
		t.Fatal(err)
	}
	n.gate.waitStarted(t, 1)
	proxy := newCutter(t, n.url)
	s, err := newClient(t, proxy.url).Watch(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var evs []conveyor.Event
	next := func() (conveyor.Event, error) {
		ev, err := s.Next(ctx)
		if err == nil {
			if len(evs) > 0 && ev.Seq <= evs[len(evs)-1].Seq {
				t.Fatalf("%s seq %d after seq %d", ev.Type, ev.Seq, evs[len(evs)-1].Seq)
			}
			evs = append(evs, ev)
		}
		return ev, err
	}
	// The status message first: an update before the stream opened would
	// be in it instead of an event of its own.
	if ev, err := next(); err != nil || ev.Type != conveyor.EventStatus {
		t.Fatalf("first message %+v, %v; want the status message", ev, err)
	}
	n.gate.update(t, conveyor.Update{Step: 1, Steps: 3, Message: "one"})
	for {
		ev, err := next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == conveyor.EventProgress {
			break
		}
	}

	proxy.cut()
	n.gate.update(t, conveyor.Update{Step: 2, Steps: 3, Message: "two"})
	n.gate.update(t, conveyor.Update{Step: 3, Steps: 3, Message: "three"})
	n.gate.open(ex.ID)
	n.waitStatus(t, ex.ID, conveyor.StatusCompleted)
	for {
		_, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if evs[0].Type != conveyor.EventStatus || evs[len(evs)-1].Type != conveyor.EventCompleted {
		t.Errorf("events %v to %v, want status to completed", evs[0].Type, evs[len(evs)-1].Type)
	}
	if got := proxy.connections(); got < 2 {
		t.Errorf("%d connections, want a reconnection", got)
	}
}
