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
}
