package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestMetricsWithoutMetrics: an API built without Metrics answers
// /metrics with a JSON not_found, like any endpoint it does not serve.
func TestMetricsWithoutMetrics(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, h.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error conveyor.Error }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound || body.Error.Code != conveyor.ENOTFOUND {
		t.Fatalf("GET /metrics: %d %+v, want 404 %s", resp.StatusCode, body.Error, conveyor.ENOTFOUND)
	}
}
