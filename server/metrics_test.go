package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

const metricsKey = "metrics-test-key-0123456789"

// httpClient is a client of the test's own, whose idle connections are
// closed when it ends (goleak).
func httpClient(t *testing.T) *http.Client {
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// get GETs url with key when not "". The caller closes the body.
func get(t *testing.T, hc *http.Client, url, key string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// scrape reads url's metrics in the text format, with key when not "".
func scrape(t *testing.T, hc *http.Client, url, key string) map[string]*dto.MetricFamily {
	t.Helper()
	resp := get(t, hc, url, key)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: Content-Type %q, want the text format", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return mfs
}

// sample is the value of the series of name with exactly labels (the
// count of a histogram), and whether there is one.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
series:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// wantSample fails the test unless the series has the value.
func wantSample(t *testing.T, mfs map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := sample(mfs, name, labels...)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %g, want %g", name, labels, got, want)
	}
}

// eventually scrapes until check returns nil, or fails with its last
// error after a deadline.
func eventually(t *testing.T, hc *http.Client, url, key string, check func(map[string]*dto.MetricFamily) error) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs := scrape(t, hc, url, key)
		err := check(mfs)
		if err == nil {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// equals is a check for eventually: the series has the value.
func equals(want float64, name string, labels ...string) func(map[string]*dto.MetricFamily) error {
	return func(mfs map[string]*dto.MetricFamily) error {
		if got, ok := sample(mfs, name, labels...); !ok || got != want {
			return fmt.Errorf("%s%v = %g (present: %t), want %g", name, labels, got, ok, want)
		}
		return nil
	}
}

// TestMetricsCountExecutions runs executions that complete, fail and are
// cancelled, watches one over WebSocket and SSE, and reads the counts
// back from /metrics.
func TestMetricsCountExecutions(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})    // lets gated go on to its second step
	release := make(chan struct{}) // lets gated finish
	pipelines := []*conveyor.Pipeline{
		{Name: "ok", Handler: func(context.Context, *conveyor.Exec) error { return nil }},
		{Name: "fail", Handler: func(context.Context, *conveyor.Exec) error { return errors.New("boom") }},
		{Name: "block", Handler: func(ctx context.Context, _ *conveyor.Exec) error {
			<-ctx.Done()
			return ctx.Err()
		}},
		{Name: "gated", Handler: func(ctx context.Context, x *conveyor.Exec) error {
			x.Progress(conveyor.Update{Step: 1, Steps: 2, StepName: "one"})
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
			x.Progress(conveyor.Update{Step: 2, Steps: 2, StepName: "two"})
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}},
	}
	srv, _ := open(t, server.Config{APIKey: metricsKey, Pipelines: pipelines})
	base := "http://" + srv.Addr()
	url := base + "/metrics"
	ctx := t.Context()
	hc := httpClient(t)
	c := client.New(base, hc).WithAPIKey(metricsKey)

	// Before any work every series of every pipeline is there, at zero.
	mfs := scrape(t, hc, url, metricsKey)
	for _, p := range []string{"ok", "fail", "block", "gated"} {
		wantSample(t, mfs, 0, "conveyor_executions_submitted_total", "pipeline", p)
		wantSample(t, mfs, 0, "conveyor_executions_running", "pipeline", p)
		for _, s := range []string{"completed", "failed", "cancelled"} {
			wantSample(t, mfs, 0, "conveyor_executions_finished_total", "pipeline", p, "status", s)
			wantSample(t, mfs, 0, "conveyor_execution_duration_seconds", "pipeline", p, "status", s)
		}
	}
	wantSample(t, mfs, 0, "conveyor_stream_subscribers", "transport", "websocket")
	wantSample(t, mfs, 0, "conveyor_stream_subscribers", "transport", "sse")
	wantSample(t, mfs, 0, "conveyor_progress_messages_total")
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	wantSample(t, mfs, 0, "conveyor_webhook_deliveries_total", "result", "delivered")
	wantSample(t, mfs, 0, "conveyor_webhook_deliveries_total", "result", "failed")

	// An unknown pipeline is refused before it is counted.
	if _, err := c.Submit(ctx, "nope", nil); conveyor.ErrorCode(err) != conveyor.EUNKNOWNPIPELINE {
		t.Fatalf("submit of an unknown pipeline: %v, want %s", err, conveyor.EUNKNOWNPIPELINE)
	}

	var ids []string
	submit := func(pipeline string) string {
		ex, err := c.Submit(ctx, pipeline, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ex.ID)
		return ex.ID
	}
	for range 3 {
		submit("ok")
	}
	for range 2 {
		submit("fail")
	}
	b, err := c.SubmitBatch(ctx, []conveyor.NewExecution{{Pipeline: "ok"}, {Pipeline: "ok"}, {Pipeline: "fail"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	members, err := c.List(ctx, conveyor.ListFilter{Batch: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range members.Executions {
		ids = append(ids, ex.ID)
	}
	blocked := submit("block")
	gated := submit("gated")

	// gated has published its first step; block runs until cancelled.
	eventually(t, hc, url, metricsKey, func(mfs map[string]*dto.MetricFamily) error {
		for _, check := range []func(map[string]*dto.MetricFamily) error{
			equals(1, "conveyor_executions_running", "pipeline", "block"),
			equals(1, "conveyor_executions_running", "pipeline", "gated"),
			equals(1, "conveyor_progress_messages_total"),
		} {
			if err := check(mfs); err != nil {
				return err
			}
		}
		return nil
	})

	// A WebSocket and an SSE stream of gated count while they are open.
	ws, err := c.Watch(ctx, gated)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	sse := openSSE(t, hc, base+"/executions/"+gated+"/progress/sse")
	eventually(t, hc, url, metricsKey, equals(1, "conveyor_stream_subscribers", "transport", "websocket"))
	eventually(t, hc, url, metricsKey, equals(1, "conveyor_stream_subscribers", "transport", "sse"))

	close(gate)
	eventually(t, hc, url, metricsKey, equals(2, "conveyor_progress_messages_total"))
	if _, err := c.Cancel(ctx, blocked); err != nil {
		t.Fatal(err)
	}
	close(release)
	for _, id := range ids {
		if _, err := c.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Both streams end after gated's final message.
	for {
		if _, err := ws.Next(ctx); err != nil {
			break
		}
	}
	_, _ = io.Copy(io.Discard, sse)
	sse.Close()
	eventually(t, hc, url, metricsKey, equals(0, "conveyor_stream_subscribers", "transport", "websocket"))
	eventually(t, hc, url, metricsKey, equals(0, "conveyor_stream_subscribers", "transport", "sse"))

	mfs = eventually(t, hc, url, metricsKey, func(mfs map[string]*dto.MetricFamily) error {
		for _, p := range []string{"ok", "fail", "block", "gated"} {
			if err := equals(0, "conveyor_executions_running", "pipeline", p)(mfs); err != nil {
				return err
			}
		}
		return nil
	})
	for _, w := range []struct {
		pipeline                                string
		submitted, completed, failed, cancelled float64
	}{
		{"ok", 5, 5, 0, 0},
		{"fail", 3, 0, 3, 0},
		{"block", 1, 0, 0, 1},
		{"gated", 1, 1, 0, 0},
	} {
		wantSample(t, mfs, w.submitted, "conveyor_executions_submitted_total", "pipeline", w.pipeline)
		wantSample(t, mfs, w.submitted, "conveyor_queue_wait_seconds", "pipeline", w.pipeline)
		for status, n := range map[string]float64{"completed": w.completed, "failed": w.failed, "cancelled": w.cancelled} {
			wantSample(t, mfs, n, "conveyor_executions_finished_total", "pipeline", w.pipeline, "status", status)
			wantSample(t, mfs, n, "conveyor_execution_duration_seconds", "pipeline", w.pipeline, "status", status)
		}
	}
	if _, ok := sample(mfs, "conveyor_executions_submitted_total", "pipeline", "nope"); ok {
		t.Error("the unknown pipeline has a series")
	}
	wantSample(t, mfs, 2, "conveyor_progress_messages_total")
	// Every submission went through a group commit or the batch's; every
	// event through the writer.
	if n, _ := sample(mfs, "conveyor_store_commit_seconds", "op", "submit"); n < 1 || n > 8 {
		t.Errorf("submit commits = %g, want 1 to 8 (7 submissions and a batch)", n)
	}
	if n, _ := sample(mfs, "conveyor_store_commit_seconds", "op", "write"); n < 1 {
		t.Errorf("write commits = %g, want at least 1", n)
	}
}

// openSSE opens an SSE stream with the test's key and returns its body.
func openSSE(t *testing.T, hc *http.Client, url string) io.ReadCloser {
	t.Helper()
	resp := get(t, hc, url, metricsKey)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp.Body
}

// TestMetricsKeyAndListener checks that /metrics on the API needs the
// key and that the metrics listener serves it, and only it, without.
func TestMetricsKeyAndListener(t *testing.T) {
	t.Parallel()
	srv, _ := open(t, server.Config{APIKey: metricsKey, MetricsAddr: "127.0.0.1:0"})
	hc := httpClient(t)
	status := func(url, key string) int {
		t.Helper()
		resp := get(t, hc, url, key)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	api, metrics := "http://"+srv.Addr(), "http://"+srv.MetricsAddr()
	for _, c := range []struct {
		url, key string
		want     int
	}{
		{api + "/metrics", "", http.StatusUnauthorized},
		{api + "/metrics", "wrong-key-wrong-key-wrong", http.StatusUnauthorized},
		{api + "/metrics", metricsKey, http.StatusOK},
		{metrics + "/metrics", "", http.StatusOK},
		{metrics + "/executions", "", http.StatusNotFound},
		{metrics + "/healthz", "", http.StatusNotFound},
	} {
		if got := status(c.url, c.key); got != c.want {
			t.Errorf("GET %s (key %q): %d, want %d", c.url, c.key, got, c.want)
		}
	}
	// On loopback, as the API without a key, it answers loopback Hosts
	// only (DNS rebinding).
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, metrics+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "rebound.example:80"
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /metrics with Host %s: %d, want 403", req.Host, resp.StatusCode)
	}
	mfs := scrape(t, hc, metrics+"/metrics", "")
	wantSample(t, mfs, 0, "conveyor_progress_messages_total")
}

func TestMetricsAddrMalformed(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"9090", "localhost", "127.0.0.1:port", "127.0.0.1:70000", "[::1"} {
		_, err := server.Open(t.Context(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), MetricsAddr: addr})
		if err == nil || !strings.Contains(err.Error(), "must be host:port") {
			t.Errorf("metrics address %q: %v, want an error saying it must be host:port", addr, err)
		}
	}
}

// TestMetricsCountLimitRefusals checks conveyor_limit_rejections_total
// against refusals of the rate and per-client stream limits.
func TestMetricsCountLimitRefusals(t *testing.T) {
	t.Parallel()
	block := func(ctx context.Context, _ *conveyor.Exec) error {
		<-ctx.Done()
		return ctx.Err()
	}
	srv, _ := open(t, server.Config{
		APIKey:              metricsKey,
		Pipelines:           []*conveyor.Pipeline{{Name: "block", Handler: block}},
		RateLimit:           0.001, // a burst of 1, then one every 1,000 s
		MaxStreamsPerClient: 1,
	})
	base := "http://" + srv.Addr()
	ctx := t.Context()
	hc := httpClient(t)
	c := client.New(base, hc).WithAPIKey(metricsKey)
	ex, err := c.Submit(ctx, "block", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Submit(ctx, "block", nil); conveyor.ErrorCode(err) != conveyor.ERATELIMITED {
			t.Fatalf("a submission past the rate: %v, want %s", err, conveyor.ERATELIMITED)
		}
	}
	// The stream of a running execution stays open: a second one of the
	// same client is refused.
	stream := base + "/executions/" + ex.ID + "/progress/sse"
	first := openSSE(t, hc, stream)
	defer first.Close()
	resp := get(t, hc, stream, metricsKey)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second stream: %s, want 429", resp.Status)
	}

	mfs := scrape(t, hc, base+"/metrics", metricsKey)
	wantSample(t, mfs, 2, "conveyor_limit_rejections_total", "limit", "rate")
	wantSample(t, mfs, 1, "conveyor_limit_rejections_total", "limit", "streams_per_client")
	wantSample(t, mfs, 0, "conveyor_limit_rejections_total", "limit", "streams")
	wantSample(t, mfs, 0, "conveyor_limit_rejections_total", "limit", "pending")
	wantSample(t, mfs, 0, "conveyor_limit_rejections_total", "limit", "connections")
	wantSample(t, mfs, 1, "conveyor_executions_submitted_total", "pipeline", "block")
	wantSample(t, mfs, 1, "conveyor_stream_subscribers", "transport", "sse")
	if _, err := c.Cancel(ctx, ex.ID); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, first)
}

// TestMetricsCountWebhookDeliveries: each delivery attempt is counted by
// its result: a receiver that fails once, then answers 200, makes one
// retry and one delivered.
func TestMetricsCountWebhookDeliveries(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(receiver.Close)
	srv, _ := open(t, server.Config{
		APIKey: metricsKey, WebhookAllowPrivate: true, WebhookRetries: []time.Duration{10 * time.Millisecond},
		Pipelines: []*conveyor.Pipeline{{Name: "ok", Handler: func(context.Context, *conveyor.Exec) error { return nil }}},
	})
	base := "http://" + srv.Addr()
	hc := httpClient(t)
	c := client.New(base, hc).WithAPIKey(metricsKey)
	if _, err := c.CreateWebhook(t.Context(), client.NewWebhook{URL: receiver.URL, Events: []conveyor.WebhookEvent{"execution.completed"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(t.Context(), "ok", nil); err != nil {
		t.Fatal(err)
	}
	mfs := eventually(t, hc, base+"/metrics", metricsKey, equals(1, "conveyor_webhook_deliveries_total", "result", "delivered"))
	wantSample(t, mfs, 1, "conveyor_webhook_deliveries_total", "result", "retry")
	wantSample(t, mfs, 0, "conveyor_webhook_deliveries_total", "result", "failed")
}
