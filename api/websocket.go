package api

import (
	"context"
	"errors"
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
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		return // Accept has answered the request
	}
	defer c.CloseNow()
	c.SetReadLimit(4096) // clients send nothing but control frames
	ctx := c.CloseRead(r.Context())
	go s.ping(ctx, c)

	sent := false
	err = s.stream(ctx, id, after, func(ev conveyor.Event) error {
		sent = true
		return writeEvent(ctx, c, ev)
	})
	switch {
	case errors.Is(err, errStreamEnded):
		c.Close(websocket.StatusNormalClosure, "")
	case !sent && ctx.Err() == nil:
		msg := errorMessage(id, err)
		if writeEvent(ctx, c, msg) == nil {
			c.Close(websocket.StatusNormalClosure, msg.Error.Code)
		}
	}
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
