package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// DefaultPingInterval is how often WebSocket streams are pinged when
// Config.PingInterval is zero.
const DefaultPingInterval = 30 * time.Second

// writeTimeout bounds one message write; a client that cannot take a
// message for this long is disconnected.
const writeTimeout = 10 * time.Second

// streamWebSocket serves GET /executions/{id}/progress/ws: a status message
// first (or, with ?after=SEQ, the stored events after SEQ), then every
// event as it happens, and a normal close after the final one. An unknown
// execution gets an error message, then a normal close.
func (s *Server) streamWebSocket(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := resumeAfter("", r.URL.Query().Get("after"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	logs, logsAfter, err := progressLogs(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveWebSocket(w, r, id, s.executionSource(id, after, logs, logsAfter))
}

// serveWebSocket sends what src produces as WebSocket text messages, each
// a JSON object. A failure before the first message is an error message
// (about execution id, if the stream is of one), then a normal close.
// Once the stream is open, it follows on a goroutine of its own (detach).
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, id string, src source) {
	release, ok := s.openStream(w, r)
	if !ok {
		return
	}
	detached := false
	defer func() {
		if !detached {
			release()
		}
	}()
	liftReadDeadline(w)
	c, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		return // Accept has answered the request
	}
	defer func() {
		if !detached {
			c.CloseNow()
		}
	}()
	// Clients send nothing but control frames (at most 125 bytes); a data
	// message closes the stream with 1008 policy violation (CloseRead).
	c.SetReadLimit(128)
	// The stream outlives the request: its context is the connection's,
	// and holds nothing of the request's (see detach.go).
	ctx := c.CloseRead(context.Background())

	sent, ws := false, newWSWriter(c)
	defer func() {
		if !detached {
			ws.stop()
		}
	}()
	follow, err := src(ctx, func(m message) error {
		sent = true
		return ws.write(ctx, m.body)
	}, s.cfg.PingInterval, func() error {
		go ping(ctx, c)
		return nil
	})
	if err != nil {
		s.endWebSocket(ctx, ws, id, err, sent)
		return
	}
	detached = true
	s.detach(func() { c.CloseNow() }, follow, func(err error) {
		s.endWebSocket(ctx, ws, id, err, sent)
		ws.stop()
		c.CloseNow()
		release()
	})
}

// endWebSocket closes c as a stream that ended with err: normally after
// the final message, going away on shutdown, and after an error message
// when it could not open (nothing sent).
func (s *Server) endWebSocket(ctx context.Context, w *wsWriter, id string, err error, sent bool) {
	c := w.c
	switch {
	case errors.Is(err, errStreamEnded):
		c.Close(websocket.StatusNormalClosure, "")
	case errors.Is(err, errServerClosed):
		c.Close(websocket.StatusGoingAway, "server shutting down")
	case !sent && ctx.Err() == nil:
		msg := s.errorMessage(ctx, id, err)
		if w.write(ctx, msg) == nil {
			c.Close(websocket.StatusNormalClosure, msg.Error.Code)
		}
	}
}

// wsWriter writes a stream's messages, one at a time, each within
// writeTimeout. A write with a context that ends registers a callback and,
// with a timeout, a timer of its own: at ten messages a second on each of
// a thousand streams, that was an eighth of what the server allocated.
// So it writes without a context, and one timer per stream, reset for
// each write, closes the connection when a write takes too long.
type wsWriter struct {
	c     *websocket.Conn
	stuck *time.Timer
}

func newWSWriter(c *websocket.Conn) *wsWriter {
	stuck := time.AfterFunc(time.Hour, func() { c.CloseNow() })
	stuck.Stop()
	return &wsWriter{c: c, stuck: stuck}
}

// write sends v as a JSON text message, unless ctx, the stream's, ended:
// then the connection is closing, and that ends a write under way.
func (w *wsWriter) write(ctx context.Context, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.stuck.Reset(writeTimeout)
	err := wsjson.Write(context.Background(), w.c, v)
	if !w.stuck.Stop() && err == nil {
		err = errors.New("write timed out")
	}
	return err
}

// stop disarms the timer for good.
func (w *wsWriter) stop() { w.stuck.Stop() }

// ping keeps an idle connection alive through proxies and closes it if
// the peer does not answer. It waits for the pong, so it runs on a
// goroutine of its own that lives only that long.
func ping(ctx context.Context, c *websocket.Conn) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if c.Ping(ctx) != nil {
		c.CloseNow()
	}
}
