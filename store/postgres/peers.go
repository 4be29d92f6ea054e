package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hellos: every listening node tells the others, on conveyor_hello,
// whether it has streams open, so that a node sends the notifications
// that only feed other nodes' streams (events, live events, logs) only
// while some other node has a stream to feed.
const (
	// helloInterval is how often a listening node says hello.
	helloInterval = time.Second
	// helloTimeout is how long a node not heard from counts as there.
	helloTimeout = 3 * helloInterval
	// helloSettle is how long a node listens before it trusts what it
	// heard: the others answer its first hello at once.
	helloSettle = 250 * time.Millisecond
	// helloSendTimeout bounds saying hello, which also checks that the
	// listening connection is alive.
	helloSendTimeout = 10 * time.Second
)

// Watching implements conveyor.Notifier: this node has streams open, or
// none. Listen says so at once.
func (db *DB) Watching(streams bool) {
	if db.streams.Swap(streams) == streams {
		return
	}
	db.waitMu.Lock()
	defer db.waitMu.Unlock()
	if db.stopWait != nil {
		db.stopWait()
	}
}

// setStopWait records how to interrupt Listen's wait for a notification.
func (db *DB) setStopWait(stop context.CancelFunc) {
	db.waitMu.Lock()
	db.stopWait = stop
	db.waitMu.Unlock()
}

// peers is what a listening connection heard from the other nodes' ones:
// when each last said hello, and whether it had streams open.
type peers struct {
	since time.Time // listening since
	heard map[uint32]peer
}

type peer struct {
	at      time.Time
	streams bool
}

func newPeers(now time.Time) *peers {
	return &peers{since: now, heard: make(map[uint32]peer)}
}

// hello records a hello from the listening backend pid, reporting
// whether it is the first from it.
func (p *peers) hello(pid uint32, payload string, now time.Time) (first bool) {
	_, known := p.heard[pid]
	p.heard[pid] = peer{at: now, streams: payload == "1"}
	return !known
}

// unwatched reports whether no other node has streams open, forgetting
// the nodes not heard from for helloTimeout. Until it has listened for
// helloSettle it cannot tell, and reports false.
func (p *peers) unwatched(now time.Time) bool {
	watched := now.Sub(p.since) < helloSettle
	for pid, h := range p.heard {
		switch {
		case now.Sub(h.at) >= helloTimeout:
			delete(p.heard, pid)
		case h.streams:
			watched = true
		}
	}
	return !watched
}

// greeter is what a listening connection says and hears on
// conveyor_hello.
type greeter struct {
	heard    *peers
	said     time.Time // when this node last said hello
	saidHad  bool      // what it said: streams open or not
	resyncAt time.Time // when the streams here should read again; zero: no need
}

// greet says hello on conn when it is time to, or when whether this
// node has streams open changed.
func (g *greeter) greet(ctx context.Context, conn *pgx.Conn, streams bool) error {
	if time.Since(g.said) < helloInterval && streams == g.saidHad {
		return nil
	}
	if err := sayHello(ctx, conn, streams); err != nil {
		return err
	}
	if streams && !g.saidHad {
		// Until the others hear this, they notify nothing: what they
		// store meanwhile, the streams here read again once they have
		// had time to hear it.
		g.resyncAt = time.Now().Add(helloSettle)
	}
	g.said, g.saidHad = time.Now(), streams
	return nil
}

// hello records a hello from the listening backend pid; a node that just
// started is told at once.
func (g *greeter) hello(pid uint32, payload string) {
	if g.heard.hello(pid, payload, time.Now()) {
		g.said = time.Time{}
	}
}

// resyncDue reports whether the streams here should read again now, once.
func (g *greeter) resyncDue(now time.Time) bool {
	if g.resyncAt.IsZero() || now.Before(g.resyncAt) {
		return false
	}
	g.resyncAt = time.Time{}
	return true
}

// wake is when the listening connection has something to do next if no
// notification comes: say hello, trust what it heard, or resync.
func (g *greeter) wake() time.Time {
	wake := g.said.Add(helloInterval)
	if settled := g.heard.since.Add(helloSettle); settled.After(time.Now()) {
		wake = settled
	}
	if !g.resyncAt.IsZero() && g.resyncAt.Before(wake) {
		wake = g.resyncAt
	}
	return wake
}

// sayHello tells the other nodes, on conn, whether this one has streams
// open.
func sayHello(ctx context.Context, conn *pgx.Conn, streams bool) error {
	ctx, cancel := context.WithTimeout(ctx, helloSendTimeout)
	defer cancel()
	payload := "0"
	if streams {
		payload = "1"
	}
	if _, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", channelHello, payload); err != nil {
		return fmt.Errorf("say hello: %w", err)
	}
	return nil
}
