package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/bench"
)

// benchPipelines is serve's --bench-pipelines: a server that
// `conveyor bench --server` measures needs the bench's Go pipelines.
var benchPipelines = goPipelines{
	flag:      "bench-pipelines",
	usage:     "also serve the pipelines conveyor bench --server needs (bench.noop, bench.progress, bench.hold)",
	pipelines: bench.Pipelines,
}

func benchCmd() *cobra.Command {
	var (
		cfg        bench.Config
		embedded   bool
		asJSON     bool
		cpuProfile string
		memProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, progress latency, fan-out and submits under a flood of an embedded node or a running server",
		Long: `Measure Conveyor the same way every time.

Scenarios (--scenario, default all):
  throughput        executions of a one-step noop pipeline from concurrent clients:
                    submits/s, executions/s end to end, submit→start latency;
                    --batch N submits them in POST /batches of N
  progress-latency  executions reporting progress at --rate, one WebSocket subscriber
                    each: delay from x.Progress to receipt, messages sent/received, CPU
  fanout            idle WebSocket (or --transport sse) subscribers over a few executions:
                    RSS per subscriber, time for the final message to reach them all
  cross-node        progress latency across nodes (PostgreSQL, --nodes 2+): runner and subscriber on different nodes
  batch-stream      --executions-running executions reporting progress at --rate, submitted as one
                    batch and watched by one SSE stream of the batch: delay from x.Progress to
                    receipt, messages sent/received, CPU and RSS; not part of all
  submit-flood      --concurrency clients (default 64) submitting noop executions one after
                    another for --duration (default 60s) while the workers run them: submit
                    latency, submits/s, failed submits by kind, executions/s, backlog at the end;
                    not part of all

Without --server, each scenario runs on a fresh embedded node (SQLite in a
temporary folder, removed afterwards) in this process. With --server, the
server must run on this machine (times come from one clock) and have the
bench pipelines: start it with 'conveyor serve --bench-pipelines'.

Results and how to read them: docs/benchmarks.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if embedded && cfg.ServerURL != "" {
				return errors.New("--embedded and --server exclude each other")
			}
			// Zero in bench.Config means the scenario's default; on the
			// command line, where the default is the flag's, it is a mistake.
			if f := cmd.Flags(); f.Changed("concurrency") && cfg.Concurrency == 0 {
				return errors.New("--concurrency must be at least 1, got 0")
			} else if f.Changed("duration") && cfg.Duration == 0 {
				return errors.New("--duration must be positive, got 0s")
			}
			if !asJSON {
				cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if memProfile != "" {
				f, err := os.Create(memProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.HeapProfile = f
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			return bench.Run(ctx, cfg, func(r bench.Result) error {
				if asJSON {
					return json.NewEncoder(out).Encode(r)
				}
				return printResult(out, r)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Scenario, "scenario", bench.All, "throughput, progress-latency, fanout, cross-node, submit-flood, batch-stream or all")
	f.IntVar(&cfg.Executions, "executions", bench.DefaultExecutions, "throughput: executions to submit")
	f.IntVar(&cfg.Concurrency, "concurrency", 0, fmt.Sprintf("concurrent submitting clients (default %d; submit-flood: %d)", bench.DefaultConcurrency, bench.DefaultFloodConcurrency))
	f.IntVar(&cfg.Batch, "batch", 0, "throughput: submit through POST /batches of this many executions (1 to 10000) instead of one POST /executions each")
	f.IntVar(&cfg.IdleSamples, "idle-samples", bench.DefaultIdleSamples, "throughput: executions submitted one at a time to idle workers")
	f.IntVar(&cfg.ExecutionsRunning, "executions-running", bench.DefaultExecutionsRunning, "progress-latency, batch-stream: executions running at once")
	f.Float64Var(&cfg.Rate, "rate", bench.DefaultRate, "progress-latency, batch-stream: progress updates per second per execution")
	f.DurationVar(&cfg.Duration, "duration", 0, fmt.Sprintf("progress-latency, batch-stream: how long each execution reports (default %s); submit-flood: how long to flood (default %s)", bench.DefaultDuration, bench.DefaultFloodDuration))
	f.IntVar(&cfg.Subscribers, "subscribers", bench.DefaultSubscribers, "fanout: subscribers")
	f.StringVar(&cfg.Transport, "transport", bench.WebSocket, "fanout: the subscribers' streams, websocket or sse")
	f.IntVar(&cfg.FanoutExecutions, "fanout-executions", bench.DefaultFanoutExecutions, "fanout: executions the subscribers are spread over")
	f.IntVar(&cfg.Workers, "workers", bench.DefaultWorkers, "embedded: executions the node runs at once (serve --concurrency); at least --executions-running")
	f.IntVar(&cfg.Nodes, "nodes", 1, "embedded: nodes to start (2+ needs --database-url)")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "embedded: PostgreSQL URL instead of SQLite; each scenario creates and drops a database of its own")
	f.StringVar(&cfg.ServerURL, "server", "", "URL of a running server on this machine, e.g. http://127.0.0.1:8080")
	f.StringVar(&cfg.APIKey, "api-key", os.Getenv("CONVEYOR_API_KEY"), "with --server: the server's API key [CONVEYOR_API_KEY]")
	f.IntVar(&cfg.ServerPID, "server-pid", 0, "with --server: the server's process id, to read its RSS and CPU from /proc")
	f.BoolVar(&embedded, "embedded", false, "start an embedded node (the default without --server)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per scenario per line instead of tables")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (with the embedded node) to this file")
	f.StringVar(&memProfile, "memprofile", "", "fanout: write a heap profile of this process, taken while every subscriber is idle, to this file")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "bound on each scenario (default 10m)")
	return cmd
}

// printResult prints one scenario as a table.
func printResult(w io.Writer, r bench.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "== %s · %s (%s), %d node(s) · %.1fs\n", r.Scenario, r.Backend, r.Target, r.Nodes, r.ElapsedSeconds)
	row := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }
	num := func(f *float64) string {
		if f == nil {
			return "-"
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	lat := func(name string, l *bench.Latency) {
		if l != nil {
			row(name, fmt.Sprintf("p50 %.3f\tp90 %.3f\tp99 %.3f\tmax %.3f\t(n=%d)", l.P50, l.P90, l.P99, l.Max, l.N))
		}
	}
	switch r.Scenario {
	case bench.Throughput:
		if r.Batch > 0 {
			row("executions", fmt.Sprintf("%d in batches of %d from %d concurrent clients", r.Executions, r.Batch, r.Concurrency))
		} else {
			row("executions", fmt.Sprintf("%d from %d concurrent clients", r.Executions, r.Concurrency))
		}
		row("submits/s", num(r.SubmitsPerSecond))
		row("executions/s end to end", num(r.ExecutionsPerSecond))
		lat("submit→start ms, loaded", r.SubmitToStartMS)
		lat("submit→start ms, idle", r.IdleSubmitToStartMS)
	case bench.ProgressLatency, bench.CrossNode:
		row("executions running", fmt.Sprintf("%d at %g updates/s for %gs", r.ExecutionsRunning, r.Rate, r.DurationSeconds))
		lat("progress latency ms", r.ProgressLatencyMS)
		if r.MessagesSent != nil && r.MessagesReceived != nil {
			row("messages received/sent", fmt.Sprintf("%d / %d", *r.MessagesReceived, *r.MessagesSent))
		}
		if c := r.ServerCPU; c != nil {
			row("server CPU", fmt.Sprintf("%s s, %s%% of one core (%d cores) — %s", num(c.Seconds), num(c.Percent), c.Cores, c.Scope))
		}
	case bench.SubmitFlood:
		printFlood(row, lat, num, r)
	case bench.Fanout:
		row("subscribers", fmt.Sprintf("%d %s streams over %d executions", r.Subscribers, r.Transport, r.FanoutExecutions))
		if r.RSSPerSubscriberKiB != nil {
			row("RSS per idle subscriber", fmt.Sprintf("%s KiB (%d → %d KiB)", num(r.RSSPerSubscriberKiB), *r.RSSBeforeKiB, *r.RSSAfterKiB))
		}
		if r.GoroutinesPerSubscriber != nil {
			row("goroutines per subscriber", num(r.GoroutinesPerSubscriber)+" (server and client ends)")
		}
		lat("final message ms", r.FanoutFinalLatency)
		if r.FinalReceived != nil {
			row("final message reached all", fmt.Sprintf("%d subscribers within %s ms", *r.FinalReceived, num(r.FanoutFinalMS)))
		}
	}
	for _, n := range r.Notes {
		row("note", n)
	}
	fmt.Fprintln(tw)
	return tw.Flush()
}

// printFlood prints the rows of the submit-flood scenario.
func printFlood(row func(name, value string), lat func(string, *bench.Latency), num func(*float64) string, r bench.Result) {
	row("flood", fmt.Sprintf("%d concurrent clients for %gs", r.Concurrency, r.DurationSeconds))
	lat("submit latency ms (202s)", r.SubmitLatencyMS)
	row("submits/s accepted", num(r.SubmitsPerSecond))
	if r.SubmitsAccepted != nil && r.SubmitsFailed != nil {
		row("submits accepted / failed", fmt.Sprintf("%d / %d", *r.SubmitsAccepted, *r.SubmitsFailed))
	}
	for _, kind := range slices.Sorted(maps.Keys(r.SubmitErrors)) {
		status := "no answer"
		if kind != "transport" {
			status = fmt.Sprintf("HTTP %d", conveyor.HTTPStatus(kind))
		}
		row("failed: "+kind, fmt.Sprintf("%d (%s)", r.SubmitErrors[kind], status))
	}
	row("executions/s finished", num(r.ExecutionsPerSecond))
	if r.PendingAtEnd != nil {
		row("pending at the end", strconv.Itoa(*r.PendingAtEnd))
	}
	if c := r.ServerCPU; c != nil {
		row("server CPU", fmt.Sprintf("%s s, %s%% of one core (%d cores) — %s", num(c.Seconds), num(c.Percent), c.Cores, c.Scope))
	}
}
