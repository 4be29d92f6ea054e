package main_test

// conveyor bench with tiny sizes: every scenario runs and its JSON has the
// figures, with values that make sense.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// tinyBench are sizes that run every scenario in about a second.
var tinyBench = []string{
	"--executions", "200", "--concurrency", "8", "--idle-samples", "20",
	"--executions-running", "20", "--rate", "20", "--duration", "1s",
	"--subscribers", "200", "--fanout-executions", "4",
}

// runBench runs conveyor bench --json, checks that it left nothing in its
// temporary folder, and decodes its lines by scenario. It also returns how
// long the run took, which bounds every duration the bench measured.
func runBench(t *testing.T, args ...string) (map[string]map[string]any, time.Duration) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.CommandContext(t.Context(), binary, append([]string{"bench", "--json"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("conveyor bench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	took := time.Since(start)
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("conveyor bench left %s behind in its temporary folder", left[0].Name())
	}
	results := map[string]map[string]any{}
	for line := range strings.Lines(stdout.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("stdout line is not JSON: %v\n%s", err, line)
		}
		results[r["scenario"].(string)] = r
	}
	return results, took
}

// number returns field path (dot-separated) of r as a float, failing the
// test when it is absent or not a number.
func number(t *testing.T, r map[string]any, path string) float64 {
	t.Helper()
	var v any = r
	for key := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %s is not an object in %v", r["scenario"], path, r)
		}
		v = m[key]
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%s: %s = %v, want a number (%v)", r["scenario"], path, v, r)
	}
	return f
}

// checkLatency checks a {"p50","p90","p99","max"} figure of a bench run
// that took took: ordered, and (milliseconds, not another unit) no longer
// than the run, however slow the machine made it.
func checkLatency(t *testing.T, r map[string]any, name string, took time.Duration) {
	t.Helper()
	p50, p90, p99, maxi := number(t, r, name+".p50"), number(t, r, name+".p90"), number(t, r, name+".p99"), number(t, r, name+".max")
	if !(0 <= p50 && p50 <= p90 && p90 <= p99 && p99 <= maxi) || maxi > float64(took.Milliseconds()) {
		t.Errorf("%s: %s = %v, want 0 <= p50 <= p90 <= p99 <= max <= the run's %d ms", r["scenario"], name, r[name], took.Milliseconds())
	}
}

func absent(t *testing.T, r map[string]any, fields ...string) {
	t.Helper()
	for _, f := range fields {
		if v, ok := r[f]; ok && v != nil {
			t.Errorf("%s: %s = %v, want it absent (not measured by this scenario)", r["scenario"], f, v)
		}
	}
}

// checkBench checks the figures every scenario of a run that took took
// must report.
func checkBench(t *testing.T, results map[string]map[string]any, took time.Duration, backend string, serverCPU bool) {
	t.Helper()
	for _, s := range []string{"throughput", "progress-latency", "fanout"} {
		r := results[s]
		if r == nil {
			t.Fatalf("no result for scenario %s in %v", s, results)
		}
		if r["backend"] != backend {
			t.Errorf("%s: backend %v, want %s", s, r["backend"], backend)
		}
	}

	tp := results["throughput"]
	if v := number(t, tp, "executions_per_second"); v <= 0 {
		t.Errorf("executions_per_second = %v, want > 0", v)
	}
	if v := number(t, tp, "submits_per_second"); v <= 0 {
		t.Errorf("submits_per_second = %v, want > 0", v)
	}
	checkLatency(t, tp, "submit_to_start_ms", took)
	checkLatency(t, tp, "idle_submit_to_start_ms", took)
	if n := number(t, tp, "submit_to_start_ms.n"); n != 200 {
		t.Errorf("submit_to_start_ms has %v samples, want 200", n)
	}
	absent(t, tp, "progress_latency_ms", "messages_sent", "messages_received", "rss_per_subscriber_kib", "fanout_final_ms")

	pl := results["progress-latency"]
	checkLatency(t, pl, "progress_latency_ms", took)
	sent, received := number(t, pl, "messages_sent"), number(t, pl, "messages_received")
	// At most 20 executions × 20/s × 1s are sent; how many depends on the
	// machine's load (a subscriber that joins late misses the first
	// updates, which then count as neither sent nor received), so only the
	// relation is pinned.
	if sent < 0 || received < 0 || received > sent {
		t.Errorf("messages received %v of %v sent, want 0 <= received <= sent", received, sent)
	}
	if got := number(t, pl, "progress_latency_ms.n"); got != received {
		t.Errorf("progress_latency_ms has %v samples, want one per message received (%v)", got, received)
	}
	if serverCPU {
		if v := number(t, pl, "server_cpu.seconds"); v <= 0 {
			t.Errorf("server_cpu.seconds = %v, want > 0", v)
		}
	} else if cpu, ok := pl["server_cpu"].(map[string]any); !ok || cpu["seconds"] != nil || cpu["scope"] == "" {
		t.Errorf("server_cpu = %v, want seconds null and a scope saying why", pl["server_cpu"])
	}
	absent(t, pl, "executions_per_second", "submit_to_start_ms", "rss_per_subscriber_kib", "fanout_final_ms")

	fo := results["fanout"]
	if v := number(t, fo, "fanout_final_ms"); v <= 0 || v > float64(took.Milliseconds()) {
		t.Errorf("fanout_final_ms = %v, want above 0 and at most the run's %d ms", v, took.Milliseconds())
	}
	if v := number(t, fo, "final_received"); v != 200 {
		t.Errorf("final message reached %v subscribers, want 200", v)
	}
	if serverCPU {
		if v := number(t, fo, "rss_per_subscriber_kib"); v <= 0 || v > 10_000 {
			t.Errorf("rss_per_subscriber_kib = %v, want above 0 and below 10 MiB", v)
		}
	}
	absent(t, fo, "executions_per_second", "progress_latency_ms", "messages_sent")
}

func TestBenchEmbedded(t *testing.T) {
	t.Parallel()
	results, took := runBench(t, tinyBench...)
	checkBench(t, results, took, "sqlite", true)
}

// TestBenchServer measures a conveyor serve --bench-pipelines process,
// with and without its pid.
func TestBenchServer(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), t.TempDir(), "--bench-pipelines", "--concurrency", "64")
	results, took := runBench(t, append([]string{"--server", n.url, "--server-pid", fmt.Sprint(n.cmd.Process.Pid)}, tinyBench...)...)
	checkBench(t, results, took, "remote", true)

	results, took = runBench(t, "--server", n.url, "--scenario", "progress-latency",
		"--executions-running", "5", "--rate", "20", "--duration", "500ms")
	r := results["progress-latency"]
	checkLatency(t, r, "progress_latency_ms", took)
	if cpu, ok := r["server_cpu"].(map[string]any); !ok || cpu["seconds"] != nil || !strings.Contains(cpu["scope"].(string), "--server-pid") {
		t.Errorf("server_cpu without --server-pid = %v, want seconds null and a scope naming --server-pid", r["server_cpu"])
	}
}

// TestBenchFanoutSSE runs the fanout scenario with SSE subscribers
// against a server process.
func TestBenchFanoutSSE(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), t.TempDir(), "--bench-pipelines")
	results, took := runBench(t, "--server", n.url, "--server-pid", fmt.Sprint(n.cmd.Process.Pid),
		"--scenario", "fanout", "--transport", "sse", "--subscribers", "100", "--fanout-executions", "4")
	fo := results["fanout"]
	if fo["transport"] != "sse" {
		t.Errorf("transport = %v, want sse", fo["transport"])
	}
	if v := number(t, fo, "final_received"); v != 100 {
		t.Errorf("final message reached %v subscribers, want 100", v)
	}
	if v := number(t, fo, "fanout_final_ms"); v <= 0 || v > float64(took.Milliseconds()) {
		t.Errorf("fanout_final_ms = %v, want above 0 and at most the run's %d ms", v, took.Milliseconds())
	}
	if v := number(t, fo, "rss_per_subscriber_kib"); v <= 0 || v > 10_000 {
		t.Errorf("rss_per_subscriber_kib = %v, want above 0 and below 10 MiB", v)
	}
}

func TestBenchServerWithoutBenchPipelines(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), t.TempDir())
	out, err := exec.CommandContext(t.Context(), binary, "bench", "--server", n.url, "--scenario", "throughput").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "conveyor serve --bench-pipelines") {
		t.Fatalf("bench against a server without the bench pipelines: err %v, output %s", err, out)
	}
}

func TestBenchBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "nope"}, "--scenario must be one of"},
		{[]string{"--nodes", "2"}, "give --database-url"},
		{[]string{"--scenario", "cross-node"}, "cross-node needs --database-url and --nodes 2"},
		{[]string{"--server", "http://127.0.0.1:1", "--embedded"}, "exclude each other"},
		{[]string{"--server", "http://127.0.0.1:1", "--nodes", "2"}, "--nodes and --database-url are for the embedded nodes"},
		{[]string{"--rate", "0.01", "--duration", "1s"}, "--rate × --duration"},
		{[]string{"--scenario", "throughput", "--batch", "10001"}, "--batch must be 1 to 10000"},
		{[]string{"--scenario", "throughput", "--batch", "-1"}, "--batch must be 1 to 10000"},
		{[]string{"--scenario", "fanout", "--batch", "10"}, "--batch is for the throughput scenario"},
		{[]string{"--scenario", "fanout", "--transport", "smoke"}, "--transport must be websocket or sse"},
		{[]string{"--scenario", "submit-flood", "--duration", "-1s"}, "--duration must be positive, got -1s"},
		{[]string{"--scenario", "submit-flood", "--duration", "0s"}, "--duration must be positive, got 0s"},
		{[]string{"--scenario", "submit-flood", "--concurrency", "0"}, "--concurrency must be at least 1, got 0"},
		{[]string{"--scenario", "submit-flood", "--concurrency", "-4"}, "--concurrency must be positive, got -4"},
	} {
		out, err := exec.CommandContext(t.Context(), binary, append([]string{"bench"}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("bench %v: err %v, output %q, want an error containing %q", tc.args, err, out, tc.want)
		}
	}
}

// TestBenchThroughputBatch submits through POST /batches, the last batch
// smaller than the others, on SQLite and on PostgreSQL: every execution
// is found, completed and timed.
func TestBenchThroughputBatch(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			args := []string{"--scenario", "throughput", "--executions", "250", "--batch", "100", "--concurrency", "2", "--idle-samples", "5"}
			if backend == "postgres" {
				args = append(args, "--database-url", pgtest.AdminURL(t))
			}
			results, took := runBench(t, args...)
			r := results["throughput"]
			if r == nil {
				t.Fatal("no throughput result")
			}
			if r["backend"] != backend || number(t, r, "batch") != 100 || number(t, r, "executions") != 250 {
				t.Errorf("result %v, want backend %s, batch 100, executions 250", r, backend)
			}
			for _, f := range []string{"executions_per_second", "submits_per_second"} {
				if v := number(t, r, f); v <= 0 {
					t.Errorf("%s = %v, want > 0", f, v)
				}
			}
			checkLatency(t, r, "submit_to_start_ms", took)
			if n := number(t, r, "submit_to_start_ms.n"); n != 250 {
				t.Errorf("submit_to_start_ms has %v samples, want one per execution (250)", n)
			}
			if n := number(t, r, "idle_submit_to_start_ms.n"); n != 5 {
				t.Errorf("idle_submit_to_start_ms has %v samples, want 5", n)
			}
			if notes := fmt.Sprint(r["notes"]); !strings.Contains(notes, "3 POST /batches of up to 100") {
				t.Errorf("notes %s do not say how the executions were submitted", notes)
			}
		})
	}
}

// TestBenchPostgresCrossNode runs the scenarios on two embedded nodes
// sharing a PostgreSQL database the bench creates and drops.
func TestBenchPostgresCrossNode(t *testing.T) {
	t.Parallel()
	admin := pgtest.AdminURL(t)
	results, took := runBench(t, append([]string{"--database-url", admin, "--nodes", "2"}, tinyBench...)...)
	checkBench(t, results, took, "postgres", true)
	r := results["cross-node"]
	if r == nil {
		t.Fatalf("no cross-node result with --nodes 2: %v", results)
	}
	checkLatency(t, r, "progress_latency_ms", took)
	if sent, received := number(t, r, "messages_sent"), number(t, r, "messages_received"); received < 0 || received > sent {
		t.Errorf("cross-node messages received %v of %v sent", received, sent)
	}
}

// checkFlood checks the shape of a submit-flood result of 4 clients for
// 1s: every figure there, a latency sample per accepted submit, failures
// counted by kind. How many were submitted depends on the machine, so
// only "some" is pinned.
func checkFlood(t *testing.T, results map[string]map[string]any, took time.Duration, backend string) map[string]any {
	t.Helper()
	r := results["submit-flood"]
	if r == nil {
		t.Fatalf("no submit-flood result in %v", results)
	}
	if r["backend"] != backend || number(t, r, "concurrency") != 4 || number(t, r, "duration_seconds") != 1 {
		t.Errorf("result %v, want backend %s, concurrency 4, duration_seconds 1", r, backend)
	}
	accepted, failed := number(t, r, "submits_accepted"), number(t, r, "submits_failed")
	if accepted < 1 {
		t.Errorf("submits_accepted = %v, want at least 1", accepted)
	}
	checkLatency(t, r, "submit_latency_ms", took)
	if n := number(t, r, "submit_latency_ms.n"); n != accepted {
		t.Errorf("submit_latency_ms has %v samples, want one per accepted submit (%v)", n, accepted)
	}
	byKind := 0.0
	if errs, ok := r["submit_errors"].(map[string]any); ok {
		for _, n := range errs {
			byKind += n.(float64)
		}
	}
	if byKind != failed {
		t.Errorf("submit_errors %v add up to %v, want submits_failed (%v)", r["submit_errors"], byKind, failed)
	}
	if v := number(t, r, "submits_per_second"); v <= 0 {
		t.Errorf("submits_per_second = %v, want > 0", v)
	}
	if v := number(t, r, "executions_per_second"); v < 0 {
		t.Errorf("executions_per_second = %v, want >= 0", v)
	}
	if v := number(t, r, "pending_at_end"); v < 0 || v > accepted {
		t.Errorf("pending_at_end = %v, want 0 to the %v accepted", v, accepted)
	}
	absent(t, r, "submit_to_start_ms", "idle_submit_to_start_ms", "progress_latency_ms", "messages_sent", "fanout_final_ms")
	return r
}

// TestBenchSubmitFlood floods an embedded node for a second, on SQLite
// and on PostgreSQL: it has no limits, so no submit fails.
func TestBenchSubmitFlood(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			args := []string{"--scenario", "submit-flood", "--duration", "1s", "--concurrency", "4"}
			if backend == "postgres" {
				args = append(args, "--database-url", pgtest.AdminURL(t))
			}
			results, took := runBench(t, args...)
			r := checkFlood(t, results, took, backend)
			if failed := number(t, r, "submits_failed"); failed != 0 {
				t.Errorf("%v submits failed (%v) on an embedded node without limits", failed, r["submit_errors"])
			}
			if v := number(t, r, "server_cpu.seconds"); v <= 0 {
				t.Errorf("server_cpu.seconds = %v, want > 0", v)
			}
		})
	}
}

// TestBenchSubmitFloodRateLimited floods a server whose rate limit lets
// one submit through in 100 s: each of the 4 clients submits at least
// once, so at least 3 are refused, and counted as 429s.
func TestBenchSubmitFloodRateLimited(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), t.TempDir(), "--bench-pipelines", "--rate-limit", "0.01")
	results, took := runBench(t, "--server", n.url, "--scenario", "submit-flood", "--duration", "1s", "--concurrency", "4")
	r := checkFlood(t, results, took, "remote")
	errs, _ := r["submit_errors"].(map[string]any)
	if limited, _ := errs["rate_limited"].(float64); limited < 3 {
		t.Errorf("submit_errors = %v, want at least 3 rate_limited", r["submit_errors"])
	}
	if notes := fmt.Sprint(r["notes"]); !strings.Contains(notes, "--rate-limit 0") {
		t.Errorf("notes %s do not say how to lift the limit", notes)
	}
}

// TestBenchBatchStream watches one batch of bench.progress members over
// one SSE stream to its end: updates are received and timed, and the
// server's CPU and RSS are recorded.
func TestBenchBatchStream(t *testing.T) {
	t.Parallel()
	results, took := runBench(t, "--scenario", "batch-stream", "--executions-running", "20", "--rate", "20", "--duration", "1s")
	r := results["batch-stream"]
	if r == nil {
		t.Fatalf("no batch-stream result: %v", results)
	}
	checkLatency(t, r, "progress_latency_ms", took)
	sent, received := number(t, r, "messages_sent"), number(t, r, "messages_received")
	// A slow client's progress is conflated: how many arrive depends on
	// the machine's load, so only "some, and each timed" is pinned.
	if received <= 0 || received > sent || number(t, r, "progress_latency_ms.n") != received {
		t.Errorf("batch-stream: %v messages received, %v sent, %v timed; want some, at most those sent, each timed", received, sent, number(t, r, "progress_latency_ms.n"))
	}
	if number(t, r, "rss_after_kib") <= 0 || number(t, r, "server_cpu.seconds") <= 0 {
		t.Errorf("batch-stream: rss_after_kib %v, server_cpu %v; want both measured", r["rss_after_kib"], r["server_cpu"])
	}
}
