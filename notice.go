package conveyor

import "context"

// Notifier is implemented by stores that several nodes share. It tells
// this node what the others did, so that work starts, streams update and
// cancels land across nodes without polling on the hot path.
type Notifier interface {
	// Listen delivers notices to fn until ctx ends, reconnecting with
	// backoff when the connection drops. After every (re)connect it
	// delivers a NoticeResync, since notices sent meanwhile are lost.
	Listen(ctx context.Context, fn func(Notice)) error

	// Announce tells the other nodes of events this node published, in
	// the order given, each with the seq of the event announced before it
	// for its execution (Announced.Prev). They arrive as NoticeEvents
	// that carry the event, so that another node's subscribers get it
	// without reading the store, whether it was stored or not. An event
	// too large for a notification is announced without itself: its
	// receivers read the store.
	Announce(ctx context.Context, evs []Announced) error

	// Watching tells the other nodes whether this node has streams open.
	// What only feeds other nodes' streams (announcements, notices of
	// stored events and logs) is sent only while some node has: a node
	// sending events that nobody on another node watches pays for them
	// as much as for the work.
	Watching(streams bool)

	// NotifyPending tells the other nodes that pending executions may be
	// waiting for a worker: they claim (NoticeSubmitted). A node calls it
	// when it cannot start at once what was submitted to it.
	NotifyPending(ctx context.Context)
}

// Announced is an event as Notifier.Announce sends it.
type Announced struct {
	Event Event
	// Prev is the seq of the event of the same execution this node
	// announced before, 0 if none: a receiver that has published Prev
	// misses nothing between the two that was announced.
	Prev int64
}

// NoticeKind says what a Notice is about.
type NoticeKind string

// The notice kinds.
const (
	NoticeSubmitted NoticeKind = "submitted" // a pending execution is waiting
	NoticeEvents    NoticeKind = "events"    // ExecutionID has events up to Seq
	NoticeCancel    NoticeKind = "cancel"    // cancel ExecutionID where it runs
	NoticeLogs      NoticeKind = "logs"      // ExecutionID has new log lines stored
	NoticeResync    NoticeKind = "resync"    // notices may have been lost: re-read
)

// Notice is one thing another node did. Notices are hints: the store holds
// the truth, and a receiver re-reads it.
type Notice struct {
	Kind        NoticeKind
	ExecutionID string
	Seq         int64
	// Event, on a NoticeEvents, is the event of seq Seq itself when the
	// node that published it announced it (Notifier.Announce), and Prev
	// the seq that node announced before it for the execution.
	Event *Event
	Prev  int64
}
