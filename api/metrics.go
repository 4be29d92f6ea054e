package api

import (
	"net/http"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// Metrics counts what the API does and serves GET /metrics: package
// metrics. Its methods must be cheap and must never block.
type Metrics interface {
	http.Handler // GET /metrics, in the Prometheus text format
	// StreamOpened and StreamClosed count streams of a transport
	// (transportWebSocket, transportSSE) opening and closing.
	StreamOpened(transport string)
	StreamClosed(transport string)
	// LimitRejected counts a request refused for a limit (limitRate, …).
	LimitRejected(limit string)
}

// Labels told to Metrics.
const (
	transportWebSocket = "websocket"
	transportSSE       = "sse"

	limitRate             = "rate"
	limitStreamsPerClient = "streams_per_client"
	limitStreams          = "streams"
	limitPending          = "pending"
)

// serveMetrics serves GET /metrics, behind the API key like the rest of
// the API; a node serves it without the key on a listener of its own
// (serve --metrics-addr).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		s.writeError(w, r, conveyor.Errorf(conveyor.ENOTFOUND, "this server exports no metrics"))
		return
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

// transportOf is the transport of the stream r opens: every WebSocket
// endpoint's path ends in /ws, and every other stream is Server-Sent
// Events.
func transportOf(r *http.Request) string {
	if strings.HasSuffix(r.URL.Path, "/ws") {
		return transportWebSocket
	}
	return transportSSE
}
