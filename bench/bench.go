package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

// The scenarios.
const (
	Throughput      = "throughput"
	ProgressLatency = "progress-latency"
	Fanout          = "fanout"
	CrossNode       = "cross-node"
	SubmitFlood     = "submit-flood"
	BatchStream     = "batch-stream"
	All             = "all"
)

// Scenarios are the scenario names All runs, in order. The submit flood
// is not among them: it lasts a minute by default and is run on its own.
var Scenarios = []string{Throughput, ProgressLatency, Fanout}

// scenarioNames are all the scenarios --scenario accepts besides All.
var scenarioNames = append(slices.Clone(Scenarios), CrossNode, SubmitFlood, BatchStream)

// Config says what to measure and against what. Zero fields take the
// defaults of `conveyor bench`.
type Config struct {
	// Scenario is one of the scenario names or All.
	Scenario string

	// Throughput: Executions of bench.noop submitted by Concurrency
	// clients, one POST /executions each or, with Batch (1 to
	// conveyor.MaxBatchSize), one POST /batches per Batch of them; then
	// IdleSamples executions one at a time (submit→start with idle
	// workers). Concurrency defaults to DefaultConcurrency, and to
	// DefaultFloodConcurrency for the submit flood.
	Executions  int
	Concurrency int
	Batch       int
	IdleSamples int

	// Progress latency: ExecutionsRunning executions reporting Rate
	// updates a second each for Duration, one subscriber each.
	//
	// Batch stream: the same executions submitted as one batch, and one
	// SSE stream of the batch.
	//
	// Submit flood: Concurrency clients each submitting one execution of
	// bench.noop after another for Duration (default
	// DefaultFloodDuration) while the workers run them.
	ExecutionsRunning int
	Rate              float64
	Duration          time.Duration

	// Fanout: Subscribers idle subscribers spread over FanoutExecutions
	// executions, then the final message to all. Transport is WebSocket
	// (the default) or SSE.
	Subscribers      int
	FanoutExecutions int
	Transport        string

	// ServerURL targets a running server; "" starts an embedded node.
	ServerURL string
	// APIKey is the API key of the server at ServerURL, if it has one.
	APIKey string
	// ServerPID is the process id of the server at ServerURL, when it runs
	// on this machine: its RSS and CPU are then read from /proc.
	ServerPID int
	// Workers is how many executions the embedded node runs at once
	// (serve --concurrency); at least ExecutionsRunning. Default 256.
	Workers int
	// Nodes and DatabaseURL select PostgreSQL and several embedded nodes.
	Nodes       int
	DatabaseURL string

	// HeapProfile, if set, gets a heap profile of this process taken in
	// the fanout scenario while every subscriber is connected and idle.
	HeapProfile io.Writer

	// Timeout bounds each scenario; default 10 minutes.
	Timeout time.Duration
	// Logger gets what the bench is doing (to stderr); default discard.
	Logger *slog.Logger
}

// Defaults of `conveyor bench`.
const (
	DefaultExecutions        = 10_000
	DefaultConcurrency       = 32
	DefaultIdleSamples       = 200
	DefaultExecutionsRunning = 1000
	DefaultRate              = 10
	DefaultDuration          = 10 * time.Second
	DefaultSubscribers       = 10_000
	DefaultFanoutExecutions  = 10
	DefaultWorkers           = 256
	DefaultFloodConcurrency  = 64
	DefaultFloodDuration     = time.Minute
)

func (c *Config) validate() error {
	if c.Scenario == "" {
		c.Scenario = All
	}
	if c.Scenario != All && !slices.Contains(scenarioNames, c.Scenario) {
		return fmt.Errorf("--scenario must be one of %s or %s; got %q", strings.Join(scenarioNames, ", "), All, c.Scenario)
	}
	if err := c.validateCounts(); err != nil {
		return err
	}
	if err := c.validateBatch(); err != nil {
		return err
	}
	if err := c.validateUpdates(); err != nil {
		return err
	}
	switch c.Transport {
	case "":
		c.Transport = WebSocket
	case WebSocket, SSE:
	default:
		return fmt.Errorf("--transport must be %s or %s, got %q", WebSocket, SSE, c.Transport)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
		if c.Scenario == SubmitFlood {
			c.Timeout += c.Duration
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c.validateTarget()
}

// validateCounts checks the counts (executions, clients, subscribers,
// workers, nodes) and gives each one left zero its default.
func (c *Config) validateCounts() error {
	concurrency := DefaultConcurrency
	if c.Scenario == SubmitFlood {
		concurrency = DefaultFloodConcurrency
	}
	defaults := []struct {
		v    *int
		def  int
		name string
	}{
		{&c.Executions, DefaultExecutions, "executions"},
		{&c.Concurrency, concurrency, "concurrency"},
		{&c.IdleSamples, DefaultIdleSamples, "idle-samples"},
		{&c.ExecutionsRunning, DefaultExecutionsRunning, "executions-running"},
		{&c.Subscribers, DefaultSubscribers, "subscribers"},
		{&c.FanoutExecutions, DefaultFanoutExecutions, "fanout-executions"},
		{&c.Workers, DefaultWorkers, "workers"},
		{&c.Nodes, 1, "nodes"},
	}
	for _, d := range defaults {
		if *d.v < 0 {
			return fmt.Errorf("--%s must be positive, got %d", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return nil
}

// validateBatch checks the throughput scenario's batch size: 0 (single
// submits) or what POST /batches takes.
func (c *Config) validateBatch() error {
	if c.Batch < 0 || c.Batch > conveyor.MaxBatchSize {
		return fmt.Errorf("--batch must be 1 to %d executions per POST /batches (0: one POST /executions each), got %d", conveyor.MaxBatchSize, c.Batch)
	}
	if c.Batch > 0 && c.Scenario != Throughput && c.Scenario != All {
		return fmt.Errorf("--batch is for the throughput scenario, not %s", c.Scenario)
	}
	return nil
}

// validateUpdates checks the progress scenario's update rate and duration,
// or the flood's duration, and sets their defaults.
func (c *Config) validateUpdates() error {
	if c.Scenario == SubmitFlood {
		if c.Duration < 0 {
			return fmt.Errorf("--duration must be positive, got %s", c.Duration)
		}
		if c.Duration == 0 {
			c.Duration = DefaultFloodDuration
		}
		return nil
	}
	if c.Rate < 0 || c.Rate > maxRate {
		return fmt.Errorf("--rate must be above 0 and at most %d, got %g", maxRate, c.Rate)
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Duration < 0 {
		return fmt.Errorf("--duration must be positive, got %s", c.Duration)
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if n := c.Rate * c.Duration.Seconds(); n < 1 || n > maxUpdates {
		return fmt.Errorf("--rate × --duration must make 1 to %d updates per execution, got %g", maxUpdates, n)
	}
	return nil
}

// validateTarget checks that the flags choosing what to measure, a running
// server or embedded nodes, fit together.
func (c *Config) validateTarget() error {
	if c.ServerURL != "" && (c.Nodes > 1 || c.DatabaseURL != "") {
		return errors.New("--server targets a running server: --nodes and --database-url are for the embedded nodes")
	}
	if c.ServerURL == "" && c.ServerPID != 0 {
		return errors.New("--server-pid needs --server")
	}
	if c.Nodes > 1 && c.DatabaseURL == "" {
		return fmt.Errorf("--nodes %d: nodes share work only through PostgreSQL; give --database-url", c.Nodes)
	}
	if c.Scenario == CrossNode && (c.Nodes < 2 || c.DatabaseURL == "") {
		return errors.New("--scenario cross-node needs --database-url and --nodes 2 or more")
	}
	return nil
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"` // samples
}

// latencyOf sorts d and returns its quantiles (nearest rank), nil if empty.
func latencyOf(d []time.Duration) *Latency {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	q := func(f float64) float64 {
		i := int(f*float64(len(d))+0.999999) - 1 // nearest rank
		return ms(d[min(max(i, 0), len(d)-1)])
	}
	return &Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(d[len(d)-1]), N: len(d)}
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// CPU is the CPU time the server used during a measurement. Seconds and
// Percent are null when it could not be measured (a server in another
// process without --server-pid); Scope says what was measured.
type CPU struct {
	Seconds *float64 `json:"seconds"`
	// Percent is of one core (top's way): 200 is both cores of a 2-core
	// machine busy.
	Percent *float64 `json:"percent"`
	Cores   int      `json:"cores"`
	Scope   string   `json:"scope"`
}

// Result is one scenario's figures. Figures a scenario does not measure
// are left out of the JSON.
type Result struct {
	Scenario string `json:"scenario"`
	Backend  string `json:"backend"` // sqlite, postgres, or remote (--server)
	Target   string `json:"target"`  // embedded, or the server URL
	Nodes    int    `json:"nodes"`

	// What was asked.
	Executions        int     `json:"executions,omitempty"`
	Concurrency       int     `json:"concurrency,omitempty"`
	Batch             int     `json:"batch,omitempty"` // executions per POST /batches; absent: single submits
	ExecutionsRunning int     `json:"executions_running,omitempty"`
	Rate              float64 `json:"rate,omitempty"`
	DurationSeconds   float64 `json:"duration_seconds,omitempty"`
	Subscribers       int     `json:"subscribers,omitempty"`
	FanoutExecutions  int     `json:"fanout_executions,omitempty"`
	Transport         string  `json:"transport,omitempty"` // of the fanout's subscribers

	// Throughput.
	SubmitsPerSecond    *float64 `json:"submits_per_second,omitempty"`
	ExecutionsPerSecond *float64 `json:"executions_per_second,omitempty"`
	SubmitToStartMS     *Latency `json:"submit_to_start_ms,omitempty"`
	IdleSubmitToStartMS *Latency `json:"idle_submit_to_start_ms,omitempty"`

	// Progress latency.
	ProgressLatencyMS *Latency `json:"progress_latency_ms,omitempty"`
	MessagesSent      *int64   `json:"messages_sent,omitempty"`
	MessagesReceived  *int64   `json:"messages_received,omitempty"`
	ServerCPU         *CPU     `json:"server_cpu,omitempty"`

	// Submit flood: the latency of each accepted submit (202), how many
	// were accepted and how many failed, by error code ("rate_limited" is
	// a 429) or "transport" (no answer); executions that had not started
	// when the flood ended. SubmitsPerSecond, ExecutionsPerSecond and
	// ServerCPU are over the flood.
	SubmitLatencyMS *Latency       `json:"submit_latency_ms,omitempty"`
	SubmitsAccepted *int           `json:"submits_accepted,omitempty"`
	SubmitsFailed   *int           `json:"submits_failed,omitempty"`
	SubmitErrors    map[string]int `json:"submit_errors,omitempty"`
	PendingAtEnd    *int           `json:"pending_at_end,omitempty"`

	// Fanout.
	RSSBeforeKiB        *int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB         *int64   `json:"rss_after_kib,omitempty"`
	RSSPerSubscriberKiB *float64 `json:"rss_per_subscriber_kib,omitempty"`
	FanoutFinalMS       *float64 `json:"fanout_final_ms,omitempty"`
	FanoutFinalLatency  *Latency `json:"fanout_final_latency_ms,omitempty"`
	FinalReceived       *int     `json:"final_received,omitempty"`
	// GoroutinesPerSubscriber counts this process's goroutines: server
	// and client ends when embedded.
	GoroutinesPerSubscriber *float64 `json:"goroutines_per_subscriber,omitempty"`

	ElapsedSeconds float64  `json:"elapsed_seconds"`
	Notes          []string `json:"notes,omitempty"`
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func ptr[T any](v T) *T { return &v }

// Run runs the scenarios cfg selects, each on a fresh embedded node (or
// against cfg.ServerURL), and hands each result to report as soon as it is
// measured. It stops at the first error.
func Run(ctx context.Context, cfg Config, report func(Result) error) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	scenarios := []string{cfg.Scenario}
	if cfg.Scenario == All {
		scenarios = Scenarios
		if cfg.Nodes > 1 {
			scenarios = append(slices.Clone(scenarios), CrossNode)
		}
	}
	for _, name := range scenarios {
		res, err := runScenario(ctx, cfg, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := report(res); err != nil {
			return err
		}
	}
	return nil
}

func runScenario(ctx context.Context, cfg Config, name string) (res Result, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	fds := 2*cfg.Concurrency + 256 // each connection is two sockets when embedded
	switch name {
	case ProgressLatency, CrossNode:
		fds += 2 * cfg.ExecutionsRunning
	case Fanout:
		fds += 2 * cfg.Subscribers
	}
	if cfg.ServerURL != "" {
		fds /= 2
	}
	nofile, err := raiseOpenFiles(uint64(fds), name)
	if err != nil {
		return res, err
	}

	t, err := openTarget(ctx, cfg, name)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, p := range []string{NoopPipeline, ProgressPipeline, HoldPipeline} {
		if _, err := t.client.Pipeline(ctx, p); err != nil {
			if conveyor.ErrorCode(err) == conveyor.ENOTFOUND {
				return res, fmt.Errorf("the server has no pipeline %s: start it with `conveyor serve --bench-pipelines`", p)
			}
			return res, fmt.Errorf("reach the server: %w", err)
		}
	}

	res = Result{Scenario: name, Backend: t.backend, Target: t.name, Nodes: cfg.Nodes}
	if nofile.raised != "" {
		res.note("%s", nofile.raised)
	}
	start := time.Now()
	cfg.Logger.Info("scenario starting", "scenario", name, "target", t.name)
	switch name {
	case Throughput:
		err = runThroughput(ctx, cfg, t, &res)
	case ProgressLatency:
		err = runProgressLatency(ctx, cfg, t, &res, false)
	case CrossNode:
		err = runProgressLatency(ctx, cfg, t, &res, true)
	case Fanout:
		err = runFanout(ctx, cfg, t, &res)
	case SubmitFlood:
		err = runSubmitFlood(ctx, cfg, t, &res)
	case BatchStream:
		err = runBatchStream(ctx, cfg, t, &res)
	}
	res.ElapsedSeconds = round3(time.Since(start).Seconds())
	return res, err
}

// target is what a scenario measures: embedded nodes or a running server.
type target struct {
	name    string // "embedded" or the URL
	backend string
	// clients has one client per node; clients[0] is for bookkeeping.
	clients []*client.Client
	client  *client.Client
	// urls are the clients' base URLs, hc their HTTP client and apiKey
	// their key, for the streams the Go client does not speak (SSE).
	urls   []string
	hc     *http.Client
	apiKey string
	// nodes has the node id of each client's node (embedded only).
	nodes []string
	// pid is the server's process: this one when embedded, 0 if unknown.
	pid      int
	embedded bool
	close    func() error
}

// clientFor spreads work over the nodes: the client of node i mod N.
func (t *target) clientFor(i int) *client.Client { return t.clients[i%len(t.clients)] }

func openTarget(ctx context.Context, cfg Config, scenario string) (_ *target, err error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Keep a connection per client so that thousands of submits do not
	// use up loopback ports in TIME_WAIT.
	transport.MaxIdleConnsPerHost = cfg.Concurrency + 16
	hc := &http.Client{Transport: transport}

	if cfg.ServerURL != "" {
		url := strings.TrimRight(cfg.ServerURL, "/")
		c := client.New(url, hc).WithAPIKey(cfg.APIKey)
		return &target{
			name: url, backend: "remote", clients: []*client.Client{c}, client: c, pid: cfg.ServerPID,
			urls: []string{url}, hc: hc, apiKey: cfg.APIKey,
			close: func() error { transport.CloseIdleConnections(); return nil },
		}, nil
	}

	t := &target{name: "embedded", backend: "sqlite", pid: os.Getpid(), embedded: true, hc: hc}
	var cleanups []func() error // run in reverse by close
	t.close = func() error {
		transport.CloseIdleConnections()
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = t.close() // best effort: err says why the target is not there
		}
	}()

	dir, err := os.MkdirTemp("", "conveyor-bench-")
	if err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	cleanups = append(cleanups, func() error {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove data folder: %w", err)
		}
		return nil
	})
	dbURL := ""
	if cfg.DatabaseURL != "" {
		t.backend = "postgres"
		var drop func() error
		if dbURL, drop, err = createDatabase(ctx, cfg.DatabaseURL); err != nil {
			return nil, err
		}
		cleanups = append(cleanups, drop)
	}

	workers := cfg.Workers
	if scenario == ProgressLatency || scenario == CrossNode || scenario == BatchStream {
		workers = max(workers, cfg.ExecutionsRunning)
	}
	for i := range cfg.Nodes {
		nodeID := fmt.Sprintf("bench-%d", i+1)
		srv, err := server.Open(ctx, server.Config{
			Addr:            "127.0.0.1:0",
			DataDir:         dir,
			DatabaseURL:     dbURL,
			NodeID:          nodeID,
			Pipelines:       Pipelines(),
			Concurrency:     workers,
			ShutdownTimeout: 10 * time.Second,
			Logger:          slog.New(slog.DiscardHandler),
			// The bench is one client measuring what the node can do,
			// not a tenant to be kept from the others.
			RateLimit: -1, MaxStreamsPerClient: -1,
		})
		if err != nil {
			return nil, fmt.Errorf("start embedded node %s: %w", nodeID, err)
		}
		runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		ran := make(chan error, 1)
		go func() { ran <- srv.Run(runCtx) }()
		cleanups = append(cleanups, func() error { stop(); return <-ran })
		c := client.New("http://"+srv.Addr(), hc)
		t.clients, t.nodes = append(t.clients, c), append(t.nodes, nodeID)
		t.urls = append(t.urls, "http://"+srv.Addr())
	}
	t.client = t.clients[0]
	return t, nil
}

// waitIdle waits until no execution of pipeline is pending or running.
// It asks every 100 ms: the figures come from stored times, not from when
// it notices, and each ask costs the server a list of one status of
// pipeline, which on PostgreSQL took 6 ms of a busy server's CPU (every
// 20 ms, about a fifth of PostgreSQL's time in a throughput run).
func waitIdle(ctx context.Context, c *client.Client, pipeline string) error {
	for {
		busy := false
		for _, st := range []conveyor.Status{conveyor.StatusPending, conveyor.StatusRunning} {
			page, err := c.List(ctx, conveyor.ListFilter{Status: st, Pipeline: pipeline, Limit: 1})
			if err != nil {
				return err
			}
			busy = busy || len(page.Executions) > 0
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s executions to finish: %w", pipeline, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// collect reads the n newest executions of pipeline for which ours is
// true, newest first, from the list of pipeline's executions. They must be
// among the newest.
func collect(ctx context.Context, c *client.Client, pipeline string, n int, ours func(*conveyor.Execution) bool) ([]*conveyor.Execution, error) {
	got := make([]*conveyor.Execution, 0, n)
	cursor := ""
	for pages := 0; pages < n/conveyor.MaxListLimit+10; pages++ {
		page, err := c.List(ctx, conveyor.ListFilter{Pipeline: pipeline, Limit: conveyor.MaxListLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, ex := range page.Executions {
			if ours(ex) && len(got) < n {
				got = append(got, ex)
			}
		}
		if len(got) == n || page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(got) != n {
		return got, fmt.Errorf("found %d of the %d executions submitted", len(got), n)
	}
	return got, nil
}

// parallel runs fn(i) for i in [0, n) on up to workers goroutines and
// returns the first error; the others stop before their next i.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		next     int
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := firstErr != nil
				mu.Unlock()
				if i >= n || stop || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
