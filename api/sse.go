package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
// the first message is an ordinary JSON error answer. Once the stream is
// open, it follows on a goroutine of its own (detach) on the hijacked
// connection, which it writes itself (sseWriter); where the connection
// cannot be hijacked (HTTP/2), it stays with the request.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, src source) {
	release, ok := s.openStream(w, r)
	if !ok {
		return
	}
	liftReadDeadline(w)
	// The stream may outlive the request, so its context holds nothing of
	// the request's (see detach.go); it ends when the client goes, which
	// net/http tells until the connection is hijacked, and waitClosed
	// after.
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(r.Context(), cancel)
	out := &sseWriter{w: w, rc: http.NewResponseController(w), cancel: cancel, timeout: writeTimeout}
	detached := false
	defer func() {
		if !detached {
			stop()
			cancel()
			if out.conn != nil {
				out.conn.Close()
			}
			release()
		}
	}()

	follow, err := src(ctx, out.send, s.cfg.HeartbeatInterval, out.heartbeat)
	if err == nil {
		// Open the response now, even if nothing was sent yet: the
		// client must not wait for a heartbeat for its headers, and a
		// stream follows apart from the request only once hijacked.
		if err = out.start(); err == nil && out.conn != nil {
			detached = true
			stop() // the request's end is not the stream's
			// Let the request, the response and net/http's buffers go.
			out.w, out.rc = nil, nil
			conn := out.conn
			s.detach(func() { conn.Close() }, follow, func(error) {
				conn.Close()
				cancel()
				release()
			})
			return
		}
		if err != nil {
			cancel() // follow then returns at once, having released the stream
		}
		if ferr := follow(); err == nil {
			err = ferr
		}
	}
	if !out.started && err != nil && !errors.Is(err, errStreamEnded) && r.Context().Err() == nil {
		s.writeError(w, r, err)
	}
}

// sseWriter writes a Server-Sent Events response. It hijacks the
// connection before the first write and then writes the response itself,
// one write per message: net/http's buffers and its goroutine that
// watches the connection are then freed (see detach.go). The response
// has no length and no chunked encoding: it ends when the connection
// closes (Connection: close). Where the connection cannot be hijacked
// (HTTP/2), it writes through the ResponseWriter.
type sseWriter struct {
	w       http.ResponseWriter // until hijacked
	rc      *http.ResponseController
	cancel  context.CancelFunc // the stream's: the client went away
	timeout time.Duration      // of each write
	started bool
	conn    net.Conn // once hijacked
}

func (o *sseWriter) send(m message) error {
	data, err := json.Marshal(m.body)
	if err != nil {
		return err
	}
	if m.id == noID {
		return o.write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", m.typ, data))
	}
	return o.write(fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", m.id, m.typ, data))
}

func (o *sseWriter) heartbeat() error {
	return o.write([]byte(": heartbeat\n\n"))
}

// write writes b and sends it on at once. Each write gets its own
// deadline: a client that stops reading is dropped, and a server-wide
// WriteTimeout cannot cut a long stream.
func (o *sseWriter) write(b []byte) error {
	if err := o.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(o.timeout)
	if o.conn != nil {
		_ = o.conn.SetWriteDeadline(deadline)
		_, err := o.conn.Write(b)
		return err
	}
	_ = o.rc.SetWriteDeadline(deadline)
	if _, err := o.w.Write(b); err != nil {
		return err
	}
	return o.rc.Flush()
}

// start sends the response's head, once.
func (o *sseWriter) start() error {
	if o.started {
		return nil
	}
	o.started = true
	h := o.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	conn, _, err := o.rc.Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		o.w.WriteHeader(http.StatusOK)
		return o.rc.Flush()
	}
	if err != nil {
		return err
	}
	// net/http's buffers are dropped: nothing was written to them, and
	// what the client sent past the request is not read (a client of a
	// stream sends nothing).
	o.conn = conn
	go waitClosed(conn, o.cancel)
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	_ = conn.SetWriteDeadline(time.Now().Add(o.timeout))
	_, err = conn.Write(head.Bytes())
	return err
}
