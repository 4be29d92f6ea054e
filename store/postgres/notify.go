package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/conveyor-run/conveyor"
)

// ListenApplicationName is the application_name of Listen's connection,
// to find it in pg_stat_activity.
const ListenApplicationName = "conveyor-listen"

// Notification tuning.
const (
	// maxPayload bounds one conveyor_events payload, well below
	// PostgreSQL's 8000 bytes; a batch that needs more sends several.
	maxPayload = 4000
	// maxLivePayload bounds one conveyor_live payload: PostgreSQL takes
	// payloads shorter than 8000 bytes.
	maxLivePayload = 7900
	// notifyTimeout bounds a NOTIFY sent after a commit, which runs even
	// when the caller's context ended: the write is durable and the other
	// nodes should hear of it.
	notifyTimeout = 5 * time.Second
	// Reconnection backoff of Listen: doubling from the first to the last.
	listenBackoffFirst = 100 * time.Millisecond
	listenBackoffLast  = 5 * time.Second
)

// eventMark says an execution has events up to seq.
type eventMark struct {
	id  string
	seq int64
}

// notifyEvents sends conveyor_events notifications for marks: payloads
// of comma-separated "id:seq" pairs, only the highest seq of each
// execution, each payload at most maxPayload bytes. All go in one
// statement, so one transaction takes PostgreSQL's notification lock once
// for the whole batch.
func (db *DB) notifyEvents(ctx context.Context, marks []eventMark) {
	if len(marks) == 0 || db.unwatched.Load() {
		return
	}
	highest := make(map[string]int64, len(marks))
	var order []string
	for _, m := range marks {
		seq, ok := highest[m.id]
		if !ok {
			order = append(order, m.id)
		}
		if !ok || m.seq > seq {
			highest[m.id] = m.seq
		}
	}
	// "id:seq" pairs; joinPayloads leaves out one with a comma in its id,
	// which a payload cannot carry unambiguously.
	pairs := make([]string, len(order))
	for i, id := range order {
		pairs[i] = id + ":" + strconv.FormatInt(highest[id], 10)
	}
	db.notify(ctx, channelEvents, joinPayloads(pairs))
}

// joinPayloads joins items (ids, or id:seq pairs) into comma-separated
// payloads of at most maxPayload bytes, leaving out one that a payload
// cannot carry unambiguously (notifications are hints: receivers poll
// what they watch).
func joinPayloads(ids []string) []string {
	var (
		payloads []string
		b        strings.Builder
	)
	for _, id := range ids {
		if id == "" || strings.ContainsRune(id, ',') || len(id) > maxPayload {
			continue
		}
		if b.Len() > 0 && b.Len()+1+len(id) > maxPayload {
			payloads = append(payloads, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id)
	}
	if b.Len() > 0 {
		payloads = append(payloads, b.String())
	}
	return payloads
}

// notify sends one notification per payload on channel, after the write
// it announces committed. A failure is logged, not returned: the write is
// durable, and a notification is only a hint that receivers back up with
// polling and a resync after each reconnect.
func (db *DB) notify(ctx context.Context, channel string, payloads []string) {
	if len(payloads) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	if _, err := db.pool.Exec(ctx, sqlNotify, channel, payloads); err != nil {
		db.logger.Warn("postgres: notify other nodes", "channel", channel, "notifications", len(payloads), "err", err)
	}
}

// Announce implements conveyor.Notifier: conveyor_live payloads of
// "prev event-JSON" lines, as many as fit in maxLivePayload bytes, all in
// one statement. An event whose line does not fit is announced on
// conveyor_events as "id:seq", a mark whose receivers read the store.
// Unlike notify it returns the error: the caller decides what a lost
// announcement costs. Nothing is sent while no other node has streams
// open (see peers.go).
func (db *DB) Announce(ctx context.Context, evs []conveyor.Announced) error {
	if db.unwatched.Load() {
		return nil
	}
	var (
		payloads, marks []string
		b               strings.Builder
	)
	for i := range evs {
		line, err := conveyor.EncodeEvent(&evs[i].Event)
		if err != nil {
			return err
		}
		prev := strconv.FormatInt(evs[i].Prev, 10)
		n := len(prev) + 1 + len(line)
		if n > maxLivePayload {
			ev := &evs[i].Event
			marks = append(marks, ev.ExecutionID+":"+strconv.FormatInt(ev.Seq, 10))
			continue
		}
		if b.Len() > 0 && b.Len()+1+n > maxLivePayload {
			payloads = append(payloads, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(prev)
		b.WriteByte(' ')
		b.Write(line)
	}
	if b.Len() > 0 {
		payloads = append(payloads, b.String())
	}
	if len(payloads) > 0 {
		if _, err := db.pool.Exec(ctx, sqlNotify, channelLive, payloads); err != nil {
			return fmt.Errorf("announce events: %w", err)
		}
	}
	db.notify(ctx, channelEvents, joinPayloads(marks))
	return nil
}

// NotifyPending implements conveyor.Notifier: a conveyor_submitted
// notification with an empty payload.
func (db *DB) NotifyPending(ctx context.Context) {
	db.notify(ctx, channelSubmitted, []string{""})
}

// Listen implements conveyor.Notifier. It holds a connection of its own,
// outside the pool (LISTEN needs a session: it does not work through a
// pooler in transaction mode), with application_name
// ListenApplicationName, listens on conveyor_submitted, conveyor_events,
// conveyor_cancel, conveyor_logs, conveyor_live and conveyor_hello, and
// calls fn with a NoticeResync after every (re)connect (and helloSettle
// after this node says it has streams open when it had none: see
// greeter) and then with each notice, one per "id:seq" pair of an
// events payload. Notifications that this DB's own connections sent are
// skipped: the node knows what it did itself. It also says hello on
// conveyor_hello every helloInterval, and at once when Watching changes,
// and hears the other nodes' hellos: while no other node has streams
// open, the notifications that only feed other nodes' streams (events,
// live events, logs) are not sent (peers.go). fn is called from Listen's
// goroutine and must not block for long. When the connection drops,
// Listen reconnects with backoff (100ms doubling to 5s) until ctx ends;
// then it returns nil.
func (db *DB) Listen(ctx context.Context, fn func(conveyor.Notice)) error {
	cfg := db.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenApplicationName
	backoff := listenBackoffFirst
	for {
		err := db.listenOnce(ctx, cfg, fn, func() { backoff = listenBackoffFirst })
		db.unwatched.Store(false) // unknown again: notify
		if ctx.Err() != nil {
			return nil
		}
		db.logger.Warn("postgres: listen connection lost; reconnecting", "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, listenBackoffLast)
	}
}

// listenOnce connects, listens and delivers notices until the connection
// fails or ctx ends. connected is called once listening has started.
func (db *DB) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, fn func(conveyor.Notice), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+channelSubmitted+"; LISTEN "+channelEvents+"; LISTEN "+channelCancel+"; LISTEN "+channelLogs+"; LISTEN "+channelLive+"; LISTEN "+channelHello); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	self := conn.PgConn().PID()
	connected()
	fn(conveyor.Notice{Kind: conveyor.NoticeResync})
	g := &greeter{heard: newPeers(time.Now())}
	for {
		if err := g.greet(ctx, conn, db.streams.Load()); err != nil {
			return err
		}
		if g.resyncDue(time.Now()) {
			fn(conveyor.Notice{Kind: conveyor.NoticeResync})
		}
		db.unwatched.Store(g.heard.unwatched(time.Now()))
		wake := g.wake()
		waitCtx, cancel := context.WithDeadline(ctx, wake)
		db.setStopWait(cancel)
		if db.streams.Load() != g.saidHad {
			cancel() // Watching changed before it could stop this wait
		}
		n, err := conn.WaitForNotification(waitCtx)
		db.setStopWait(nil)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if waitCtx.Err() == nil && !pgconn.Timeout(err) {
				return fmt.Errorf("wait for notification: %w", err)
			}
			continue // time to say hello, or Watching changed
		}
		if n.PID == self || db.ownPID(n.PID) {
			continue
		}
		if n.Channel == channelHello {
			g.hello(n.PID, n.Payload)
			continue
		}
		deliver(n, fn)
	}
}

// deliver translates one notification into notices. Malformed payloads,
// which no conveyor node sends, are ignored.
func deliver(n *pgconn.Notification, fn func(conveyor.Notice)) {
	switch n.Channel {
	case channelSubmitted:
		fn(conveyor.Notice{Kind: conveyor.NoticeSubmitted, ExecutionID: n.Payload})
	case channelCancel:
		fn(conveyor.Notice{Kind: conveyor.NoticeCancel, ExecutionID: n.Payload})
	case channelLogs:
		for id := range strings.SplitSeq(n.Payload, ",") {
			if id != "" {
				fn(conveyor.Notice{Kind: conveyor.NoticeLogs, ExecutionID: id})
			}
		}
	case channelLive:
		for line := range strings.SplitSeq(n.Payload, "\n") {
			prev, data, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			p, err := strconv.ParseInt(prev, 10, 64)
			if err != nil || p < 0 {
				continue
			}
			ev, err := conveyor.DecodeEvent([]byte(data))
			if err != nil || ev.ExecutionID == "" || ev.Seq <= 0 {
				continue
			}
			fn(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: ev.ExecutionID, Seq: ev.Seq, Event: &ev, Prev: p})
		}
	case channelEvents:
		for pair := range strings.SplitSeq(n.Payload, ",") {
			i := strings.LastIndexByte(pair, ':')
			if i <= 0 {
				continue
			}
			seq, err := strconv.ParseInt(pair[i+1:], 10, 64)
			if err != nil || seq <= 0 {
				continue
			}
			fn(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: pair[:i], Seq: seq})
		}
	}
}
