package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Live logs. A log line is numbered only once it is stored (see
// conveyor.LogPage), so a stream that follows an execution's logs tails
// the store: it reads the lines after the last number it sent, waits for
// a wake-up (LogWakeups: this node's engine stored lines, or another
// node's notice said it did), and reads again. It also watches the
// execution's events: when the final one arrives it reads once more and
// ends. The engine stores a run's lines before its final event, and
// publishes that event only once stored, so that last read finds every
// line.

// LogWakeups tells a stream that follows an execution's logs when to read
// them again: package hub's Wakeups, woken by the engine after each write
// of lines and by the notices of other nodes.
type LogWakeups interface {
	// Wait returns a channel signalled when execution id may have new
	// log lines stored, and stop, which ends that.
	Wait(id string) (ready <-chan struct{}, stop func())
}

// noID marks a message whose SSE form has no id: line: the final event
// of a log stream, and the log messages of a progress stream, whose ids
// are seqs. A client's Last-Event-ID stays what it was.
const noID = -1

// logMessage is a log line as a stream sends it.
type logMessage struct {
	Type        string `json:"type"` // "log"
	ExecutionID string `json:"execution_id"`
	conveyor.LogLine
}

// logTail follows the stored log lines of one execution.
type logTail struct {
	store   conveyor.Store
	id      string
	after   int64           // the number of the last line sent
	withIDs bool            // messages carry their number as id (the log stream), else noID
	ready   <-chan struct{} // wake-ups; nil without LogWakeups
	stop    func()
}

// tailLogs starts following the log lines of execution id after number
// after. It waits for wake-ups before it reads anything, so that no line
// stored meanwhile is missed. The caller calls close.
func (s *Server) tailLogs(id string, after int64, withIDs bool) *logTail {
	t := &logTail{store: s.cfg.Store, id: id, after: after, withIDs: withIDs, stop: func() {}}
	if s.cfg.LogWakeups != nil {
		t.ready, t.stop = s.cfg.LogWakeups.Wait(id)
	}
	return t
}

// close stops following; a nil tail has nothing to stop.
func (t *logTail) close() {
	if t != nil {
		t.stop()
	}
}

// woken is signalled when new lines may be stored; nil (never) for a
// nil tail or without LogWakeups.
func (t *logTail) woken() <-chan struct{} {
	if t == nil {
		return nil
	}
	return t.ready
}

// send sends the stored lines after the last one sent, a page at a
// time. A nil tail sends nothing.
func (t *logTail) send(ctx context.Context, send func(message) error) error {
	for t != nil {
		page, err := t.store.Logs(ctx, t.id, t.after, conveyor.MaxLogPageBytes)
		if err != nil {
			return err
		}
		for _, l := range page.Lines {
			id := int64(noID)
			if t.withIDs {
				id = l.Number
			}
			if err := send(message{id, "log", logMessage{"log", t.id, l}}); err != nil {
				return err
			}
			t.after = l.Number
		}
		t.after = max(t.after, page.Last)
		if !page.More {
			return nil
		}
	}
	return nil
}

// getLogsOrFollow serves GET /executions/{id}/logs: a page of lines, or
// with ?follow=true the log stream (followLogs).
func (s *Server) getLogsOrFollow(w http.ResponseWriter, r *http.Request) {
	follow, err := boolParam(r.URL.Query(), "follow")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !follow {
		s.getLogs(w, r)
		return
	}
	s.followLogs(w, r)
}

// followLogs serves GET /executions/{id}/logs?follow=true as Server-Sent
// Events: the kept lines after ?after= or Last-Event-ID (a line number;
// from the oldest kept without either), then each line as it is stored,
// each a log message with id: its number and event: log. After the
// execution's final event it sends that event (without an id:, so that
// Last-Event-ID stays a line number) and ends. A stream that ends
// without it (the node shut down, the connection broke) is resumed with
// Last-Event-ID. An unknown execution is a 404 before the stream starts.
func (s *Server) followLogs(w http.ResponseWriter, r *http.Request) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	after, err := parseAfter(v, "line number")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	s.serveSSE(w, r, func(ctx context.Context, send func(message) error, keepaliveEvery time.Duration, keepalive func() error) (func() error, error) {
		return s.stream(ctx, id, noResume, s.tailLogs(id, after, true), func(m message) error {
			if ev, ok := m.body.(conveyor.Event); ok {
				if !ev.Type.Final() {
					return nil // a log stream's only event is the last
				}
				m.id = noID
			}
			return send(m)
		}, keepaliveEvery, keepalive)
	})
}

// progressLogs reads ?logs=true and ?logs_after=N of a progress stream:
// whether to mix in log messages, and after which line number. Without
// logs_after a stream sends the kept lines first. EBADREQUEST when one
// is malformed.
func progressLogs(q url.Values) (logs bool, after int64, err error) {
	if logs, err = boolParam(q, "logs"); err != nil {
		return false, 0, err
	}
	if !logs {
		if q.Has("logs_after") {
			return false, 0, conveyor.Errorf(conveyor.EBADREQUEST, "logs_after needs logs=true")
		}
		return false, 0, nil
	}
	if after, err = parseAfter(q.Get("logs_after"), "line number"); err != nil {
		return false, 0, conveyor.Errorf(conveyor.EBADREQUEST, "logs_after must be a non-negative integer line number")
	}
	return true, after, nil
}

// boolParam reads the query parameter name: true or false, false when
// absent.
func boolParam(q url.Values, name string) (bool, error) {
	switch v := q.Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, conveyor.Errorf(conveyor.EBADREQUEST, "%s must be true or false, not %q", name, v)
	}
}
