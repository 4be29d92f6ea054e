package api

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/conveyor-run/conveyor"
)

// writeTimeout bounds one message write; a client that cannot take a
// message for this long is disconnected.
const writeTimeout = 10 * time.Second

// streamWebSocket serves GET /executions/{id}/progress/ws: a status message
// first, then every event as it happens (progress conflated for slow
// readers), and a normal close after the final one.
func (s *Server) streamWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		return // Accept has answered the request
	}
	defer c.CloseNow()
	c.SetReadLimit(4096) // clients send nothing but control frames
	ctx := c.CloseRead(r.Context())

	id := r.PathValue("id")
	sub, last := s.cfg.Hub.Subscribe(id) // before the snapshot: nothing falls between
	defer sub.Close()

	first, final, err := s.openingMessages(ctx, id, last)
	if err == nil {
		s.cfg.Hub.Seen(id, first.Seq)
	}
	if err != nil {
		msg := conveyor.Event{Type: conveyor.EventError, ExecutionID: id, Time: time.Now().UTC(),
			Error: &conveyor.Error{Code: conveyor.ErrorCode(err), Message: conveyor.ErrorMessage(err)}}
		if writeEvent(ctx, c, msg) == nil {
			c.Close(websocket.StatusNormalClosure, msg.Error.Code)
		}
		return
	}
	if writeEvent(ctx, c, first) != nil {
		return
	}
	if final != nil {
		if writeEvent(ctx, c, *final) == nil {
			c.Close(websocket.StatusNormalClosure, "")
		}
		return
	}

	go s.ping(ctx, c)
	after := first.Seq
	var buf []conveyor.Event
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Ready():
		}
		buf = sub.Take(buf[:0])
		for _, ev := range buf {
			if ev.Seq <= after {
				continue // already in the snapshot
			}
			if err := writeEvent(ctx, c, ev); err != nil {
				return
			}
			after = ev.Seq
			if ev.Type.Final() {
				c.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	}
}

// openingMessages builds the status message from the stored execution,
// with newer progress from the live feed if the store is behind it. For a
// finished execution it also returns the final message; the status message
// then carries the seq before it, since seq strictly rises in a stream.
func (s *Server) openingMessages(ctx context.Context, id string, last conveyor.Event) (conveyor.Event, *conveyor.Event, error) {
	ex, err := s.cfg.Store.GetExecution(ctx, id)
	if err != nil {
		return conveyor.Event{}, nil, err
	}
	status := conveyor.Event{
		Type: conveyor.EventStatus, ExecutionID: id, Seq: ex.LastSeq, Time: time.Now().UTC(),
		Attempt: ex.Attempt, Status: ex.Status, Progress: ex.Progress, Error: ex.Error,
	}
	if last.Seq > ex.LastSeq && last.Type == conveyor.EventProgress {
		status.Seq, status.Progress = last.Seq, last.Progress
	}
	if !ex.Status.Final() {
		return status, nil, nil
	}
	status.Seq = ex.LastSeq - 1
	finished := status.Time
	if ex.FinishedAt != nil {
		finished = *ex.FinishedAt
	}
	final := conveyor.Event{
		Type: conveyor.EventType(ex.Status), ExecutionID: id, Seq: ex.LastSeq, Time: finished,
		Attempt: ex.Attempt, Progress: ex.Progress, Error: ex.Error, Result: ex.Result,
	}
	return status, &final, nil
}

func writeEvent(ctx context.Context, c *websocket.Conn, ev conveyor.Event) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return wsjson.Write(ctx, c, ev)
}

// ping keeps idle connections alive through proxies and finds dead peers.
func (s *Server) ping(ctx context.Context, c *websocket.Conn) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				c.CloseNow()
				return
			}
		}
	}
}
