package api

import (
	"context"
	"errors"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Why a stream ended without an error of its transport.
var (
	errStreamEnded  = errors.New("stream ended")         // the final event was sent
	errServerClosed = errors.New("server shutting down") // CloseStreams
)

// noResume asks stream for a fresh stream: a status message first.
const noResume = -1

// message is one message of a stream: SSE writes it as id:, event: and
// data:, WebSocket as a JSON text message.
type message struct {
	id   int64  // where a client resumes: an execution's seq, or a many-execution stream's time
	typ  string // the body's "type"
	body any
}

// eventMessage is ev as a stream message.
func eventMessage(ev conveyor.Event) message { return message{ev.Seq, string(ev.Type), ev} }

// source produces a stream's messages through send until the stream ends,
// calling keepalive every keepaliveEvery while it waits (so a transport
// needs no goroutine of its own for pings or heartbeats: goroutines are
// most of an idle stream's memory). It returns errStreamEnded after the
// final message, the error of send or keepalive, or why the stream could
// not open (before anything was sent).
type source func(ctx context.Context, send func(message) error, keepaliveEvery time.Duration, keepalive func() error) error

// executionSource is the stream of execution id from after (or
// noResume); with logs, its log lines after number logsAfter are mixed
// in (see stream).
func (s *Server) executionSource(id string, after int64, logs bool, logsAfter int64) source {
	return func(ctx context.Context, send func(message) error, keepaliveEvery time.Duration, keepalive func() error) error {
		var tail *logTail
		if logs {
			tail = s.tailLogs(id, logsAfter, false)
			defer tail.close()
		}
		return s.stream(ctx, id, after, tail, send, keepaliveEvery, keepalive)
	}
}

// stream sends the events of execution id, in seq order, until the final
// one; WebSocket and SSE are two transports over it.
//
// A fresh stream (after == noResume) opens with a status message; for a
// finished execution the final message follows and the stream ends. A
// resumed stream (after >= 0) replays the stored events after that seq
// instead. Either way it then forwards live events: the subscription is
// made before the store is read, so nothing falls between the two, and a
// slow sender is given only the newest progress.
//
// With logs, the execution's stored log lines are mixed in: those kept
// once the opening messages are sent, then new ones whenever logs is
// woken, and the last ones just before the final event (see logs.go).
//
// keepalive is called every keepaliveEvery while the stream waits, from
// the stream's own goroutine, so a transport needs no goroutine of its own
// for pings or heartbeats (goroutines are most of an idle stream's memory).
//
// It returns errStreamEnded after the final event, the error of send or
// keepalive, or the error of reading the execution (before anything was
// sent).
func (s *Server) stream(ctx context.Context, id string, after int64, logs *logTail, sendMsg func(message) error,
	keepaliveEvery time.Duration, keepalive func() error) error {
	w, err := s.cfg.Executions.Watch(ctx, id)
	if err != nil {
		return err
	}
	defer w.Close()
	send := func(ev conveyor.Event) error {
		if ev.Type.Final() {
			// The run's last lines were stored before this event.
			if err := logs.send(ctx, sendMsg); err != nil {
				return err
			}
		}
		return sendMsg(eventMessage(ev))
	}
	if after == noResume {
		after, err = openFresh(w.Execution, send)
	} else {
		after, err = s.resume(ctx, w, after, send)
	}
	if err == nil {
		err = logs.send(ctx, sendMsg) // the kept lines
	}
	if err != nil {
		return err
	}

	tick := time.NewTicker(keepaliveEvery)
	defer tick.Stop()
	var buf []conveyor.Event
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := keepalive(); err != nil {
				return err
			}
			// In case a notice from another node was lost.
			if err := logs.send(ctx, sendMsg); err != nil {
				return err
			}
		case <-logs.woken():
			if err := logs.send(ctx, sendMsg); err != nil {
				return err
			}
		case <-s.closing:
			// Send what is already queued (the final events of runs the
			// engine just stopped), then end.
			if _, err := forward(w.Take(buf[:0]), after, send); err != nil {
				return err
			}
			return errServerClosed
		case <-w.Ready():
			buf = w.Take(buf[:0])
			if after, err = forward(buf, after, send); err != nil {
				return err
			}
		}
	}
}

// openFresh starts a fresh stream: the status message, and for a finished
// execution the final message (then errStreamEnded). It returns the seq
// the stream is at.
func openFresh(ex *conveyor.Execution, send func(conveyor.Event) error) (int64, error) {
	first, final := openingMessages(ex)
	if err := send(first); err != nil {
		return 0, err
	}
	if final == nil {
		return first.Seq, nil
	}
	if err := send(*final); err != nil {
		return 0, err
	}
	return final.Seq, errStreamEnded
}

// resume replays the stored events after seq after, then the newer live
// progress the store did not have yet, and returns the seq the stream is
// at (errStreamEnded once the final event was sent or the client had it).
func (s *Server) resume(ctx context.Context, w *conveyor.Watch, after int64, send func(conveyor.Event) error) (int64, error) {
	after, err := s.replay(ctx, w.Execution.ID, after, send)
	if err != nil {
		return after, err
	}
	if w.Execution.Status.Final() {
		return after, errStreamEnded // the client already had the final event
	}
	if w.Newer != nil && w.Newer.Seq > after {
		if err := send(*w.Newer); err != nil {
			return after, err
		}
		after = w.Newer.Seq
	}
	return after, nil
}

// forward sends the events newer than after, in order, and returns the
// seq of the last one sent; errStreamEnded after the final event.
func forward(evs []conveyor.Event, after int64, send func(conveyor.Event) error) (int64, error) {
	for _, ev := range evs {
		if ev.Seq <= after {
			continue // already sent from the snapshot or the store
		}
		if err := send(ev); err != nil {
			return after, err
		}
		after = ev.Seq
		if ev.Type.Final() {
			return after, errStreamEnded
		}
	}
	return after, nil
}

// replay sends the stored events after seq and returns the last seq sent,
// or errStreamEnded if that was the final event.
func (s *Server) replay(ctx context.Context, id string, after int64, send func(conveyor.Event) error) (int64, error) {
	const page = 500
	for {
		evs, err := s.cfg.Store.Events(ctx, id, after, page)
		if err != nil {
			return after, err
		}
		for _, ev := range evs {
			if err := send(ev); err != nil {
				return after, err
			}
			after = ev.Seq
			if ev.Type.Final() {
				return after, errStreamEnded
			}
		}
		if len(evs) < page {
			return after, nil
		}
	}
}

// openingMessages builds the status message from the execution as
// clients see it. For a finished execution it also returns the final
// message; the status message then carries the seq before it, since seq
// strictly rises in a stream.
func openingMessages(ex *conveyor.Execution) (conveyor.Event, *conveyor.Event) {
	status := conveyor.Event{
		Type: conveyor.EventStatus, ExecutionID: ex.ID, Seq: ex.LastSeq, Time: time.Now().UTC(),
		Attempt: ex.Attempt, Status: ex.Status, Progress: ex.Progress, Error: ex.Error, Data: ex.Data,
		Since: ex.StalledSince, // set while the execution is stalled
	}
	if !ex.Status.Final() {
		return status, nil
	}
	status.Seq = ex.LastSeq - 1
	finished := status.Time
	if ex.FinishedAt != nil {
		finished = *ex.FinishedAt
	}
	final := conveyor.Event{
		Type: conveyor.EventType(ex.Status), ExecutionID: ex.ID, Seq: ex.LastSeq, Time: finished,
		Attempt: ex.Attempt, Status: ex.Status, Progress: ex.Progress, Error: ex.Error, Result: ex.Result,
	}
	return status, &final
}

// errorMessage is the stream message for a failure to open a stream.
func (s *Server) errorMessage(ctx context.Context, id string, err error) conveyor.Event {
	err = s.classify(ctx, err)
	return conveyor.Event{Type: conveyor.EventError, ExecutionID: id, Time: time.Now().UTC(),
		Error: &conveyor.Error{Code: conveyor.ErrorCode(err), Message: conveyor.ErrorMessage(err)}}
}

// resumeAfter reads where a client resumes a stream: the Last-Event-ID
// header (SSE reconnects send it) or ?after=, else noResume.
func resumeAfter(lastEventID, after string) (int64, error) {
	v := lastEventID
	if v == "" {
		v = after
	}
	if v == "" {
		return noResume, nil
	}
	return parseAfter(v, "seq")
}
