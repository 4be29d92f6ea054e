package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// DefaultHeartbeatInterval is how often an idle Server-Sent Events stream
// gets a comment line, so that proxies keep it open, when
// Config.HeartbeatInterval is zero.
const DefaultHeartbeatInterval = 15 * time.Second

// streamSSE serves GET /executions/{id}/progress/sse: the same messages as
// the WebSocket stream as Server-Sent Events, each with `id:` = seq and
// `event:` = type. A client that reconnects with Last-Event-ID gets the
// stored events after it instead of a status message. The response ends
// after the final event. An unknown execution is a 404 before the stream
// starts.
func (s *Server) streamSSE(w http.ResponseWriter, r *http.Request) {
	after, err := resumeAfter(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	logs, logsAfter, err := progressLogs(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveSSE(w, r, s.executionSource(r.PathValue("id"), after, logs, logsAfter))
}

// serveSSE sends what src produces as Server-Sent Events. An error before
// the first message is an ordinary JSON error answer.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, src source) {
	release, ok := s.openStream(w, r)
	if !ok {
		return
	}
	defer release()
	liftReadDeadline(w)
	rc := http.NewResponseController(w)
	started := false
	write := func(b []byte) error {
		if !started {
			h := w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		// Each write gets its own deadline: a client that stops reading is
		// dropped, and a server-wide WriteTimeout cannot cut a long stream.
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}

	ctx := r.Context()
	err := src(ctx, func(m message) error {
		data, err := json.Marshal(m.body)
		if err != nil {
			return err
		}
		if m.id == noID {
			return write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", m.typ, data))
		}
		return write(fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", m.id, m.typ, data))
	}, s.cfg.HeartbeatInterval, func() error {
		return write([]byte(": heartbeat\n\n"))
	})
	if !started && err != nil && !errors.Is(err, errStreamEnded) && ctx.Err() == nil {
		s.writeError(w, r, err)
	}
}
