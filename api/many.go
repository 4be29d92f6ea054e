package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Streams of many executions: GET /executions/progress/sse and
// /executions/progress/ws with the list filters batch, pipeline, status
// and tag. Every member message is the per-execution stream's message;
// with batch= the stream also sends batch messages and ends after the one
// whose status is final.

// batchMessageInterval bounds how often a stream sends batch messages.
const batchMessageInterval = 100 * time.Millisecond

// batchPoll is how often a batch stream reads its batch even when no
// member event arrived (a member on another node whose events were
// missed still moves the counts).
const batchPoll = time.Second

// resumeMargin widens a resume: members that ended this long before the
// client's last message get their final message again, against clocks
// of nodes that differ a little. Clients drop repeats by execution_id and
// seq.
const resumeMargin = 5 * time.Second

// manyFilter selects the executions of a stream of many.
type manyFilter struct {
	batch string
	list  conveyor.ListFilter // pipeline, status, tags
}

// batchMessage is the "batch" message of a batch stream.
type batchMessage struct {
	Type      string                 `json:"type"` // "batch"
	BatchID   string                 `json:"batch_id"`
	Status    conveyor.Status        `json:"status"`
	Total     int                    `json:"total"`
	Counts    conveyor.Counts        `json:"counts"`
	Progress  conveyor.BatchProgress `json:"progress"`
	Timestamp time.Time              `json:"timestamp"`
}

func newBatchMessage(b *conveyor.Batch, now time.Time) message {
	m := batchMessage{Type: "batch", BatchID: b.ID, Status: b.Status, Total: b.Total, Counts: b.Counts, Progress: b.Progress, Timestamp: now}
	return message{now.UnixMilli(), m.Type, m}
}

// parseManyFilter reads the filters of a stream of many executions; at
// least one is required.
func parseManyFilter(q url.Values) (manyFilter, error) {
	var f manyFilter
	for _, k := range []string{"batch", "pipeline", "status", "after"} {
		if len(q[k]) > 1 {
			return f, conveyor.Errorf(conveyor.EBADREQUEST, "%s is given more than once", k)
		}
	}
	f.batch, f.list.Pipeline = q.Get("batch"), q.Get("pipeline")
	var err error
	if f.list.Status, f.list.Tags, _, _, err = listParams(url.Values{"status": q["status"], "tag": q["tag"]}); err != nil {
		return f, err
	}
	if f.batch == "" && f.list.Pipeline == "" && f.list.Status == "" && len(f.list.Tags) == 0 {
		return f, conveyor.Errorf(conveyor.EBADREQUEST, "give at least one filter: batch, pipeline, status or tag")
	}
	if !conveyor.StorableText(f.batch) || !conveyor.StorableText(f.list.Pipeline) {
		return f, conveyor.Errorf(conveyor.EBADREQUEST, "batch and pipeline must be UTF-8 without NUL")
	}
	return f, nil
}

// matches reports whether ex passes the filter's batch, pipeline and tags.
func (f manyFilter) matches(ex *conveyor.Execution) bool {
	if f.batch != "" && (ex.BatchID == nil || *ex.BatchID != f.batch) {
		return false
	}
	if f.list.Pipeline != "" && ex.Pipeline != f.list.Pipeline {
		return false
	}
	for _, t := range f.list.Tags {
		if v, ok := ex.Tags[t.Key]; !ok || v != t.Value {
			return false
		}
	}
	return true
}

func (s *Server) streamManySSE(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseManyFilter(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := resumeAfter(r.Header.Get("Last-Event-ID"), q.Get("after"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveSSE(w, r, s.manySource(f, after))
}

func (s *Server) streamManyWebSocket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseManyFilter(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := resumeAfter("", q.Get("after"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveWebSocket(w, r, "", s.manySource(f, after))
}

// manyStream is the state of one stream of many executions.
type manyStream struct {
	s      *Server
	f      manyFilter
	send   func(message) error
	sent   map[string]int64 // seq last sent per execution; final ones leave
	member map[string]bool  // executions known to match (true) or not (false)
	batch  *conveyor.Batch  // the last batch message's, with batch=

	// Following (run).
	ctx       context.Context
	feed      conveyor.Subscription
	keepalive func() error
	keep      *time.Ticker
	batchTick *time.Ticker // with batch=
	dirty     bool         // a member moved since the last batch message
	lastRead  time.Time    // of the batch
	buf       []conveyor.Event
}

// manySource is the stream of the executions f selects. A fresh stream
// (after == noResume) opens with a status message for every selected
// execution that is not final (with batch=: every member); a resumed one
// (after = the id of the client's last message, a time in Unix
// milliseconds) also sends the final message of each that ended since.
// Then it forwards the live events of the selected executions.
func (s *Server) manySource(f manyFilter, after int64) source {
	return func(ctx context.Context, send func(message) error, keepaliveEvery time.Duration, keepalive func() error) (func() error, error) {
		ms := &manyStream{s: s, f: f, send: send, sent: map[string]int64{}, member: map[string]bool{}, ctx: ctx, keepalive: keepalive}
		if f.batch != "" {
			b, err := s.cfg.Store.GetBatch(ctx, f.batch)
			if err != nil {
				return nil, err
			}
			ms.batch = b
		}
		// Subscribe before reading the snapshot, so nothing falls between.
		ms.feed = s.cfg.Executions.WatchAll()
		if err := ms.start(ctx, after, keepalive); err != nil {
			ms.feed.Close()
			return nil, err
		}
		// Allocate now what following needs, not on the goroutine that
		// follows (see follower.run).
		ms.keep, ms.lastRead = time.NewTicker(keepaliveEvery), time.Now()
		if ms.batch != nil {
			ms.batchTick = time.NewTicker(batchMessageInterval)
		}
		return ms.run, nil
	}
}

// start sends the opening messages: the snapshot's, then with a batch
// the batch message (errStreamEnded if the batch is final).
func (ms *manyStream) start(ctx context.Context, after int64, keepalive func() error) error {
	if err := ms.snapshot(ctx, after); err != nil {
		return err
	}
	if ms.batch != nil {
		if err := ms.send(newBatchMessage(ms.batch, time.Now().UTC())); err != nil {
			return err
		}
		if ms.batch.Status.Final() {
			return errStreamEnded
		}
	}
	// Open the response now, even when the filter selected nothing
	// yet: a client must not wait a keepalive interval for headers.
	return keepalive()
}

// sendEvent sends an execution's event. Its id is the time it is sent,
// like every message of a stream of many: a client resumes by time, not
// by one execution's seq.
func (ms *manyStream) sendEvent(ev conveyor.Event) error {
	return ms.send(message{time.Now().UnixMilli(), string(ev.Type), ev})
}

// snapshot sends the opening messages, page by page.
func (ms *manyStream) snapshot(ctx context.Context, after int64) error {
	since := time.UnixMilli(after).Add(-resumeMargin)
	var statuses []conveyor.Status
	switch {
	case ms.f.batch != "":
		statuses = []conveyor.Status{""} // every member
	case ms.f.list.Status.Final():
		statuses = nil // no final execution opens a stream but a batch's
	case ms.f.list.Status != "":
		statuses = []conveyor.Status{ms.f.list.Status}
	default:
		statuses = []conveyor.Status{conveyor.StatusPending, conveyor.StatusRunning}
	}
	type query struct {
		status conveyor.Status
		since  time.Time
	}
	var queries []query
	for _, st := range statuses {
		queries = append(queries, query{status: st})
	}
	if after != noResume && ms.f.batch == "" {
		// The executions that ended while the client was away: their
		// final messages (a batch's members are all listed above).
		queries = append(queries, query{since: since})
	}
	for _, qu := range queries {
		lf := ms.f.list
		// Final messages carry the result.
		lf.Batch, lf.Status, lf.FinishedSince, lf.WithResult, lf.Limit = ms.f.batch, qu.status, qu.since, true, conveyor.MaxPayloadListLimit
		for {
			page, err := ms.s.cfg.Store.ListExecutions(ctx, lf)
			if err != nil {
				return err
			}
			for _, ex := range page.Executions {
				// Progress is stored only now and then: the status message
				// carries the newest published (the feed subscribed first).
				ms.s.cfg.Executions.Merge(ex)
				if err := ms.open(ex, after != noResume && ex.FinishedAt != nil && !ex.FinishedAt.Before(since)); err != nil {
					return err
				}
			}
			if page.NextCursor == nil {
				break
			}
			lf.Cursor = *page.NextCursor
		}
	}
	return nil
}

// open sends the status message of ex, and its final message too when
// final is set (ex is final), and starts following it.
func (ms *manyStream) open(ex *conveyor.Execution, final bool) error {
	status, last := openingMessages(ex)
	if !final || last == nil {
		status.Seq = ex.LastSeq // a lone status message carries the state as of the last event
		last = nil
	}
	if err := ms.sendEvent(status); err != nil {
		return err
	}
	if last != nil {
		if err := ms.sendEvent(*last); err != nil {
			return err
		}
	}
	ms.member[ex.ID] = true
	if !ex.Status.Final() {
		ms.sent[ex.ID] = ex.LastSeq
	}
	return nil
}

// run sends the live events of selected executions, and batch messages
// at most every batchMessageInterval when the batch changed, until the
// stream ends. Like follower.run, it waits with a small frame: the work
// is done in calls.
func (ms *manyStream) run() error {
	defer ms.close()
	var batchTick <-chan time.Time
	if ms.batchTick != nil {
		batchTick = ms.batchTick.C
	}
	for {
		var err error
		select {
		case <-ms.ctx.Done():
			return ms.ctx.Err()
		case <-ms.keep.C:
			err = ms.keepalive()
		case <-ms.s.closing:
			err = ms.drain()
		case <-ms.feed.Ready():
			err = ms.forward()
		case <-batchTick:
			err = ms.batchTicked()
		}
		if err != nil {
			return err
		}
	}
}

func (ms *manyStream) close() {
	ms.keep.Stop()
	if ms.batchTick != nil {
		ms.batchTick.Stop()
	}
	ms.feed.Close()
}

// drain sends what is already queued, then ends the stream.
//
//go:noinline
func (ms *manyStream) drain() error {
	if _, err := ms.deliver(ms.ctx, ms.feed.Take(ms.buf[:0])); err != nil {
		return err
	}
	return errServerClosed
}

//go:noinline
func (ms *manyStream) forward() error {
	ms.buf = ms.feed.Take(ms.buf[:0])
	moved, err := ms.deliver(ms.ctx, ms.buf)
	ms.dirty = ms.dirty || moved
	return err
}

// batchTicked sends a batch message if a member moved, or the batch was
// not read for batchPoll (members on other nodes).
//
//go:noinline
func (ms *manyStream) batchTicked() error {
	if !ms.dirty && time.Since(ms.lastRead) < batchPoll {
		return nil
	}
	ms.dirty, ms.lastRead = false, time.Now()
	return ms.sendBatchIfChanged(ms.ctx)
}

// deliver sends the events of selected executions that the client does
// not have yet. It reports whether any was of a member of the batch.
func (ms *manyStream) deliver(ctx context.Context, evs []conveyor.Event) (moved bool, err error) {
	for _, ev := range evs {
		ok, err := ms.selected(ctx, ev.ExecutionID)
		if err != nil {
			return moved, err
		}
		if !ok {
			if ev.Type.Final() && ms.f.batch == "" {
				delete(ms.member, ev.ExecutionID) // no more events will ask
			}
			continue
		}
		last, following := ms.sent[ev.ExecutionID]
		if following && ev.Seq <= last || !following && ms.f.batch != "" {
			continue // already sent, or a member that was final at the snapshot
		}
		if err := ms.sendEvent(ev); err != nil {
			return moved, err
		}
		moved = true
		if ev.Type.Final() {
			delete(ms.sent, ev.ExecutionID)
			if ms.f.batch == "" {
				delete(ms.member, ev.ExecutionID) // bounded by executions not final
			}
		} else {
			ms.sent[ev.ExecutionID] = ev.Seq
		}
	}
	return moved, nil
}

// selected reports whether execution id belongs to the stream. A batch's
// members are known from the snapshot (a batch never gains any); an
// execution other filters have not met yet is read once and judged by
// its pipeline and tags (the status filter chooses only the opening
// messages: an execution's status changes as it is followed).
func (ms *manyStream) selected(ctx context.Context, id string) (bool, error) {
	if ok, known := ms.member[id]; known || ms.f.batch != "" {
		return ok, nil
	}
	ex, err := ms.s.cfg.Store.GetExecution(ctx, id)
	if errors.Is(err, context.Canceled) || conveyor.ErrorCode(err) == conveyor.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ok := ms.f.matches(ex)
	ms.member[id] = ok
	return ok, nil
}

// sendBatchIfChanged reads the batch and sends a batch message when its
// counts, status or percentage changed; errStreamEnded after a final one.
func (ms *manyStream) sendBatchIfChanged(ctx context.Context) error {
	b, err := ms.s.cfg.Store.GetBatch(ctx, ms.f.batch)
	if err != nil {
		return err
	}
	if b.Counts == ms.batch.Counts && b.Status == ms.batch.Status && b.Progress == ms.batch.Progress {
		return nil
	}
	ms.batch = b
	if b.Status.Final() {
		// The counts come from the store, the members' events from the
		// live feed (from other nodes, through the relay): the store can
		// be ahead. Send each member's final message the stream still
		// owes before the message that ends it.
		if err := ms.finishMembers(ctx); err != nil {
			return err
		}
	}
	if err := ms.send(newBatchMessage(b, time.Now().UTC())); err != nil {
		return err
	}
	if b.Status.Final() {
		return errStreamEnded
	}
	return nil
}

// finishMembers sends, from the store, the final message of every member
// the stream follows but has not seen end.
func (ms *manyStream) finishMembers(ctx context.Context) error {
	for id, last := range ms.sent {
		ex, err := ms.s.cfg.Store.GetExecution(ctx, id)
		if err != nil {
			return err
		}
		if _, final := openingMessages(ex); final != nil && final.Seq > last {
			if err := ms.sendEvent(*final); err != nil {
				return err
			}
		}
		delete(ms.sent, id)
	}
	return nil
}
