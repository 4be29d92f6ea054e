package main_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

var metricsListening = regexp.MustCompile(`msg="metrics listening" .*addr=(\S+)`)

// TestServeMetricsAddr: with an API key, /metrics on the API needs it
// and --metrics-addr serves the same metrics without it, counting what
// the node ran.
func TestServeMetricsAddr(t *testing.T) {
	t.Parallel()
	const key = "metrics-e2e-key-0123456789"
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes, "--api-key", key, "--metrics-addr", "127.0.0.1:0")
	m := metricsListening.FindStringSubmatch(n.stderr.String())
	if m == nil {
		t.Fatalf("no metrics listening line in the log:\n%s", n.stderr)
	}
	metricsURL := "http://" + m[1] + "/metrics"

	ctx := t.Context()
	c := n.client.WithAPIKey(key)
	for range 2 {
		ex, err := c.Submit(ctx, "quick", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx, ex.ID); err != nil {
			t.Fatal(err)
		}
	}

	get := func(url, key string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, _ := get(n.url+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics on the API without the key: %d, want 401", code)
	}
	for _, tc := range []struct{ url, key string }{{n.url + "/metrics", key}, {metricsURL, ""}} {
		code, body := get(tc.url, tc.key)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", tc.url, code)
			continue
		}
		for _, want := range []string{
			"conveyor_executions_submitted_total{pipeline=\"quick\"} 2\n",
			"conveyor_executions_finished_total{pipeline=\"quick\",status=\"completed\"} 2\n",
			"conveyor_execution_duration_seconds_count{pipeline=\"quick\",status=\"completed\"} 2\n",
			"conveyor_queue_wait_seconds_count{pipeline=\"quick\"} 2\n",
			"\nprocess_cpu_seconds_total ",
			"\ngo_goroutines ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: no %q in\n%s", tc.url, want, body)
			}
		}
	}
}

// TestServeMetricsAddrMalformed: a bad --metrics-addr, or
// CONVEYOR_METRICS_ADDR, stops serve at once with an error that says
// what an address looks like.
func TestServeMetricsAddrMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  string
	}{
		{args: []string{"--metrics-addr", "9090"}},
		{args: []string{"--metrics-addr", "127.0.0.1:http-ish"}},
		{env: "CONVEYOR_METRICS_ADDR=localhost"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--pipelines", t.TempDir()}, tc.args...)
		cmd := exec.CommandContext(t.Context(), binary, args...)
		if tc.env != "" {
			cmd.Env = append(os.Environ(), tc.env)
		}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "must be host:port") {
			t.Errorf("serve %v %s: %v\n%s\nwant an exit with an error saying it must be host:port", tc.args, tc.env, err, out)
		}
	}
}
