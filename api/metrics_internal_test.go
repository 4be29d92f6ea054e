package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTransportOf names the transport of every stream endpoint.
func TestTransportOf(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/executions/x/progress/ws":  transportWebSocket,
		"/executions/progress/ws":    transportWebSocket,
		"/executions/x/progress/sse": transportSSE,
		"/executions/progress/sse":   transportSSE,
		"/executions/x/logs":         transportSSE, // ?follow=true
	} {
		if got := transportOf(httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}
