package postgres

import (
	"testing"
	"time"
)

func TestPeers(t *testing.T) {
	start := base
	p := newPeers(start)
	if p.unwatched(start.Add(helloSettle - time.Millisecond)) {
		t.Error("unwatched before listening for helloSettle: it cannot tell yet")
	}
	if !p.unwatched(start.Add(helloSettle)) {
		t.Error("watched with no node heard")
	}
	at := start.Add(5 * time.Second)
	if !p.hello(7, "0", at) || p.hello(7, "0", at) {
		t.Error("hello: want the first from a node told apart from the next")
	}
	if !p.unwatched(at) {
		t.Error("watched by a node with no streams")
	}
	p.hello(8, "1", at)
	if p.unwatched(at.Add(helloTimeout - time.Millisecond)) {
		t.Error("unwatched while a node with streams is heard from")
	}
	if !p.unwatched(at.Add(helloTimeout)) {
		t.Error("watched by a node not heard from for helloTimeout")
	}
	if len(p.heard) != 0 {
		t.Errorf("%d nodes remembered after helloTimeout, want them forgotten", len(p.heard))
	}
}
