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

// source opens a stream: it sends the opening messages through send and
// returns follow, which forwards the live ones through send until the
// stream ends, calling keepalive every keepaliveEvery while it waits (so
// a transport needs no goroutine of its own for pings or heartbeats).
// follow returns errStreamEnded after the final message, or the error of
// send or keepalive; once the source returned it, it must be called, and
// it releases what the stream holds. The source itself returns
// errStreamEnded when the opening messages ended the stream, or why the
// stream could not open (before anything was sent), and then holds
// nothing.
//
// Opening and following are apart so that a transport can follow on a
// goroutine of its own (see detach): opening reads the store and encodes
// messages on the goroutine that serves the request, whose stack grows to
// do so, and an idle stream should not keep that stack, nor the
// request's buffers. ctx must outlive the request then.
type source func(ctx context.Context, send func(message) error, keepaliveEvery time.Duration, keepalive func() error) (follow func() error, err error)

// executionSource is the stream of execution id from after (or
// noResume); with logs, its log lines after number logsAfter are mixed
// in (see stream).
func (s *Server) executionSource(id string, after int64, logs bool, logsAfter int64) source {
	return func(ctx context.Context, send func(message) error, keepaliveEvery time.Duration, keepalive func() error) (func() error, error) {
		var tail *logTail
		if logs {
			tail = s.tailLogs(id, logsAfter, false)
		}
		return s.stream(ctx, id, after, tail, send, keepaliveEvery, keepalive)
	}
}

// stream opens the stream of execution id's events, in seq order, until
// the final one; WebSocket and SSE are two transports over it. It is a
// source (see there for what it returns) over one execution.
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
// The stream closes logs when it ends.
func (s *Server) stream(ctx context.Context, id string, after int64, logs *logTail, sendMsg func(message) error,
	keepaliveEvery time.Duration, keepalive func() error) (follow func() error, err error) {
	w, err := s.cfg.Executions.Watch(ctx, id)
	if err != nil {
		logs.close()
		return nil, err
	}
	f := &follower{s: s, ctx: ctx, feed: w.Subscription, logs: logs, sendMsg: sendMsg, keepalive: keepalive}
	if after == noResume {
		after, err = openFresh(w.Execution, f.send)
	} else {
		after, err = s.resume(ctx, w, after, f.send)
	}
	if err == nil {
		err = logs.send(ctx, sendMsg) // the kept lines
	}
	if err != nil {
		f.close()
		return nil, err
	}
	// The follower keeps the feed, not the snapshot (whose input alone
	// may be a MiB), and allocates what it needs now, not on the
	// goroutine that follows (see follower.run).
	f.after, f.tick = after, time.NewTicker(keepaliveEvery)
	return f.run, nil
}

// follower forwards the live events of one execution newer than seq
// after, and the new lines of logs, until the final event, ctx ends or
// the server closes its streams.
type follower struct {
	s         *Server
	ctx       context.Context
	feed      conveyor.Subscription
	after     int64
	logs      *logTail
	sendMsg   func(message) error
	keepalive func() error
	tick      *time.Ticker
	buf       []conveyor.Event
}

// run follows until the stream ends: errStreamEnded after the final
// event, errServerClosed after CloseStreams, or the error of a send.
//
// An idle stream's goroutine waits here, and should fit in the smallest
// stack (2 KiB, of which about 1 KiB is free for frames): so each
// wake-up's work is done in a call that is not inlined, whose frame
// exists only while it runs, and nothing here allocates before waiting.
// (The stack grows to send a message, and a garbage collection gives
// back only part of that growth.)
func (f *follower) run() error {
	defer f.close()
	for {
		var err error
		select {
		case <-f.ctx.Done():
			return f.ctx.Err()
		case <-f.tick.C:
			err = f.keepaliveTick()
		case <-f.logs.woken():
			err = f.sendLogs()
		case <-f.s.closing:
			err = f.drain()
		case <-f.feed.Ready():
			err = f.forward()
		}
		if err != nil {
			return err
		}
	}
}

func (f *follower) close() {
	if f.tick != nil {
		f.tick.Stop()
	}
	f.feed.Close()
	f.logs.close()
}

// send sends ev, after the last log lines when it is the final event:
// the run's last lines were stored before it.
func (f *follower) send(ev conveyor.Event) error {
	if ev.Type.Final() {
		if err := f.logs.send(f.ctx, f.sendMsg); err != nil {
			return err
		}
	}
	return f.sendMsg(eventMessage(ev))
}

//go:noinline
func (f *follower) keepaliveTick() error {
	if err := f.keepalive(); err != nil {
		return err
	}
	// In case a notice from another node was lost.
	return f.logs.send(f.ctx, f.sendMsg)
}

//go:noinline
func (f *follower) sendLogs() error { return f.logs.send(f.ctx, f.sendMsg) }

// drain sends what is already queued (the final events of runs the
// engine just stopped), then ends the stream.
//
//go:noinline
func (f *follower) drain() error {
	if _, err := forward(f.feed.Take(f.buf[:0]), f.after, f.send); err != nil {
		return err
	}
	return errServerClosed
}

//go:noinline
func (f *follower) forward() error {
	f.buf = f.feed.Take(f.buf[:0])
	var err error
	f.after, err = forward(f.buf, f.after, f.send)
	return err
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
		Since:   ex.StalledSince, // set while the execution is stalled
		RetryAt: ex.RetryAt,      // set while it waits to retry
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
