package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestRequestsAreReadStrictly: malformed or repeated query parameters,
// JSON field names in another case and unclean paths are refused with a
// JSON error, never read loosely or redirected.
func TestRequestsAreReadStrictly(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	ex := h.submit("quick", nil)
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/executions/" + ex.ID + "/events?after=%zz", "", 400},
		{"GET", "/executions/" + ex.ID + "/progress/sse?after=%zz", "", 400},
		{"GET", "/executions/" + ex.ID + "/progress/ws?after=%zz", "", 400},
		{"GET", "/executions?limit=1&limit=abc", "", 400},
		{"GET", "/executions?status=pending&status=running", "", 400},
		{"GET", "/executions/" + ex.ID + "/events?after=1&after=2", "", 400},
		{"POST", "/executions", `{"Pipeline":"quick"}`, 400},
		{"POST", "/executions", `{"pipeline":"quick","INPUT":{}}`, 400},
		{"POST", "/batches", `{"executions":[{"PIPELINE":"quick"}]}`, 400},
		{"GET", "/executions/../pipelines", "", 404},
		{"GET", "//executions", "", 404},
		{"GET", "/ui/%2e%2e/executions", "", 404},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, h.url+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = strings.TrimPrefix(h.url, "http:") + tc.path // send the path as written
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %s, want %d and a JSON error", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status)
		}
	}
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
