package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/pipeline"
	"github.com/conveyor-run/conveyor/store/postgres"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

// Progress latency benchmarks: from x.Progress in a Go handler to the
// message decoded by a WebSocket client on loopback, on one clock. Rerun:
//
//	go test ./api -run '^$' -bench ProgressLatency -benchtime 5000x
//
// Results and the machine they ran on are in docs/benchmarks.md.

// reportLatencies adds p50/p90/p99/max in milliseconds to the benchmark.
func reportLatencies(b *testing.B, lat []time.Duration) {
	b.Helper()
	if len(lat) == 0 {
		b.Fatal("no latencies recorded")
	}
	slices.Sort(lat)
	q := func(f float64) float64 {
		return float64(lat[int(f*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.90), "p90-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}

// holdExec is a handler that hands its Exec to the benchmark and runs
// until released, so the benchmark reports progress itself.
func holdExec(execs chan<- *conveyor.Exec, release <-chan struct{}) conveyor.HandlerFunc {
	return func(ctx context.Context, x *conveyor.Exec) error {
		x.Progress(conveyor.Update{Step: 1, Steps: 1, StepName: "bench"})
		execs <- x
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchRunning opens a stream and reads up to the status message.
func watchRunning(b *testing.B, c *client.Client, id string) *client.Stream {
	b.Helper()
	s, err := c.Watch(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	nextOfType(b, s, conveyor.EventStatus)
	return s
}

// BenchmarkProgressLatencyOneSubscriber: one execution, one subscriber;
// each op is one x.Progress and its arrival at the client.
func BenchmarkProgressLatencyOneSubscriber(b *testing.B) {
	execs, release := make(chan *conveyor.Exec, 1), make(chan struct{})
	h := setup(b, 1, &conveyor.Pipeline{Name: "hold", Handler: holdExec(execs, release)})
	ex := h.submit("hold", nil)
	x := recv(b, execs)
	s := watchRunning(b, h.client, ex.ID)
	defer s.Close()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		msg := strconv.Itoa(i)
		start := time.Now()
		x.Progress(conveyor.Update{Done: float64(i % 100), Total: 100, Message: msg})
		for {
			ev := nextEvent(b, s)
			if ev.Type == conveyor.EventProgress && ev.Progress.Message == msg {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
	close(release)
}

// BenchmarkProgressLatency1000Executions: 1,000 executions running at once,
// each reporting 10 times a second, each watched by its own WebSocket
// client. Each op is one round: every execution reports once, spread over
// 100 ms. The send time travels in the progress metrics.
func BenchmarkProgressLatency1000Executions(b *testing.B) {
	const executions, interval = 1000, 100 * time.Millisecond
	execs, release := make(chan *conveyor.Exec, executions), make(chan struct{})
	h := setup(b, executions, &conveyor.Pipeline{Name: "hold", Handler: holdExec(execs, release)})
	streams := make(map[string]*client.Stream, executions)
	var xs []*conveyor.Exec
	for range executions {
		ex := h.submit("hold", nil)
		streams[ex.ID] = nil
	}
	for range executions {
		x := recv(b, execs)
		xs = append(xs, x)
		streams[x.ID] = watchRunning(b, h.client, x.ID)
	}
	base := time.Now()

	var (
		mu       sync.Mutex
		lat      []time.Duration
		received int
		readers  sync.WaitGroup
	)
	for _, s := range streams {
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer s.Close()
			var mine []time.Duration
			for {
				ev, err := s.Next(context.Background())
				if err != nil {
					if !errors.Is(err, io.EOF) {
						b.Error(err)
					}
					break
				}
				if ev.Type == conveyor.EventProgress {
					if sent, ok := ev.Progress.Metrics["sent_ns"]; ok {
						mine = append(mine, time.Since(base)-time.Duration(sent))
					}
				}
			}
			mu.Lock()
			lat, received = append(lat, mine...), received+len(mine)
			mu.Unlock()
		}()
	}

	b.ResetTimer()
	var senders sync.WaitGroup
	for i, x := range xs {
		senders.Add(1)
		go func() {
			defer senders.Done()
			// Spread the executions evenly over the interval.
			time.Sleep(time.Duration(i) * interval / executions)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := range b.N {
				x.Progress(conveyor.Update{Done: float64(n%100 + 1), Total: 101,
					Metrics: map[string]float64{"sent_ns": float64(time.Since(base))}})
				<-tick.C
			}
		}()
	}
	senders.Wait()
	b.StopTimer()
	close(release)
	readers.Wait()
	sent := b.N * executions
	b.ReportMetric(float64(received)/float64(sent)*100, "%received")
	reportLatencies(b, lat)
}

// BenchmarkProgressCallWith1000SlowSubscribers: the cost of x.Progress for
// the caller while 1,000 subscribers of that execution never read.
func BenchmarkProgressCallWith1000SlowSubscribers(b *testing.B) {
	execs, release := make(chan *conveyor.Exec, 1), make(chan struct{})
	h := setup(b, 1, &conveyor.Pipeline{Name: "hold", Handler: holdExec(execs, release)})
	ex := h.submit("hold", nil)
	x := recv(b, execs)
	for range 1000 {
		s := watchRunning(b, h.client, ex.ID)
		defer s.Close()
	}
	u := conveyor.Update{Total: 100, Message: "working"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u.Done = float64(i % 100)
		x.Progress(u)
	}
	b.StopTimer()
	close(release)
}

// BenchmarkProgressLatencyExecLine: from a `::progress` line written by an
// exec step's process to the WebSocket client. The benchmark writes a line
// into a FIFO that `sed -u` copies to its stdout as `::progress …`; each op
// is one line and its arrival.
func BenchmarkProgressLatencyExecLine(b *testing.B) {
	dir := b.TempDir()
	fifo := filepath.Join(dir, "lines")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		b.Fatal(err)
	}
	step := &pipeline.ExecSpec{Command: []string{"sed", "-u", "s/^/::progress /", fifo}}
	h := setup(b, 1, &conveyor.Pipeline{Name: "relay-lines", Steps: []conveyor.Step{{Name: "sed", Kind: "exec", Run: step.Run}}})
	ex := h.submit("relay-lines", nil)
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until sed opens it
	if err != nil {
		b.Fatal(err)
	}
	s := watchRunning(b, h.client, ex.ID)
	defer s.Close()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		msg := "line-" + strconv.Itoa(i)
		start := time.Now()
		if _, err := fmt.Fprintf(w, "%d/%d %s\n", i%100, 100, msg); err != nil {
			b.Fatal(err)
		}
		for {
			ev := nextEvent(b, s)
			if ev.Type == conveyor.EventProgress && ev.Progress.Message == msg {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
	w.Close() // sed ends, the execution completes
	nextOfType(b, s, conveyor.EventCompleted)
}

// BenchmarkSubmitBatch10000: POST /batches of 10,000 executions, the
// largest batch, from the Go client to a real server, on SQLite and (where
// pgtest finds a server) PostgreSQL: the client's encoding, the
// request on loopback, its decoding, the engine's checks, the store's one
// transaction and the response. Each op is one batch. The node runs one
// execution at a time and that one waits, so the members stay pending and
// the benchmark measures submitting alone.
func BenchmarkSubmitBatch10000(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			var store conveyor.Store
			var err error
			if backend == "sqlite" {
				store, err = sqlite.Open(context.Background(), b.TempDir())
			} else {
				_, dbURL := pgtest.NewDatabase(b)
				store, err = postgres.Open(context.Background(), dbURL, &postgres.Options{NodeID: "bench"})
			}
			if err != nil {
				b.Fatal(err)
			}
			release := make(chan struct{})
			wait := func(ctx context.Context, _ *conveyor.Exec) error {
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			h := setupStore(b, store, nil, 1, &conveyor.Pipeline{Name: "wait", Handler: wait})
			defer close(release)

			items := make([]conveyor.NewExecution, conveyor.MaxBatchSize)
			for i := range items {
				items[i] = conveyor.NewExecution{
					Pipeline: "wait",
					Input:    json.RawMessage(`{"item": ` + strconv.Itoa(i) + `, "source": "s3://bucket/in/` + strconv.Itoa(i) + `.csv"}`),
					Tags:     conveyor.Tags{"part": strconv.Itoa(i % 16)},
				}
			}
			tags := conveyor.Tags{"tenant": "acme"}
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				batch, err := h.client.SubmitBatch(context.Background(), items, tags)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if batch.Total != len(items) {
					b.Fatalf("batch of %d, want %d", batch.Total, len(items))
				}
			}
			reportLatencies(b, lat)
			b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "executions/s")
		})
	}
}
