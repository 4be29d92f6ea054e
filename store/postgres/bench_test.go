package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// The benchmarks run against CONVEYOR_TEST_DATABASE_URL, each on a new
// database, and are skipped without it. They measure the store alone:
// one caller, so each number includes the round trips and the commit
// (with the server's synchronous_commit setting) of every call.

// benchRunning creates and claims n executions.
func benchRunning(b *testing.B, db *DB, n int) []*conveyor.Execution {
	b.Helper()
	for i := range n {
		create(b, db, fmt.Sprintf("bench-%06d", i), "bench")
	}
	var exs []*conveyor.Execution
	for len(exs) < n {
		for _, c := range claim(b, db, 100, base) {
			exs = append(exs, c.Execution)
		}
	}
	return exs
}

// BenchmarkAppendSingle appends one progress event per call, the cost of
// a write that found nothing else queued.
func BenchmarkAppendSingle(b *testing.B) {
	db := setup(b)
	ex := benchRunning(b, db, 1)[0]
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	seq := int64(1)
	for b.Loop() {
		seq++
		if err := db.Append(ctx, []conveyor.Event{progressEvent(ex, seq)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendBatch100 appends 100 progress events per call, 10 for
// each of 10 executions, as the engine's group commit does under load.
func BenchmarkAppendBatch100(b *testing.B) {
	db := setup(b)
	exs := benchRunning(b, db, 10)
	ctx := context.Background()
	batch := make([]conveyor.Event, 0, 100)
	b.ReportAllocs()
	b.ResetTimer()
	seq := int64(1)
	for b.Loop() {
		batch = batch[:0]
		for range 10 {
			seq++
			for _, ex := range exs {
				batch = append(batch, progressEvent(ex, seq))
			}
		}
		if err := db.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkClaimPending claims one execution per call from a queue of
// pending ones, the latency of picking up new work.
func BenchmarkClaimPending(b *testing.B) {
	db := setup(b)
	ctx := context.Background()
	// Fill the queue in chunks, outside the timer, as it runs dry.
	pending, made := 0, 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if pending == 0 {
			b.StopTimer()
			for range 1000 {
				create(b, db, fmt.Sprintf("claim-%07d", made), "bench")
				made++
			}
			pending = 1000
			b.StartTimer()
		}
		claims, err := db.ClaimPending(ctx, 1, base.Add(time.Duration(made)))
		if err != nil || len(claims) != 1 {
			b.Fatalf("ClaimPending = %d claims, %v", len(claims), err)
		}
		pending--
	}
}

// BenchmarkCreateExecution submits one execution per call.
func BenchmarkCreateExecution(b *testing.B) {
	db := setup(b)
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i++
		ex := &conveyor.Execution{ID: fmt.Sprintf("create-%07d", i), Pipeline: "bench", Status: conveyor.StatusPending,
			Input: []byte(`{"n": 1, "name": "benchmark"}`), CreatedAt: base}
		if err := db.CreateExecution(ctx, ex); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "executions/s")
}

// BenchmarkCreateExecutionsBatch100 submits 100 executions per call, as
// the engine's group commit of submissions does under load.
func BenchmarkCreateExecutionsBatch100(b *testing.B) {
	const batch = 100
	db := setup(b)
	ctx := context.Background()
	exs := make([]*conveyor.Execution, batch)
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for j := range exs {
			i++
			exs[j] = &conveyor.Execution{ID: fmt.Sprintf("create-%07d", i), Pipeline: "bench", Status: conveyor.StatusPending,
				Input: []byte(`{"n": 1, "name": "benchmark"}`), CreatedAt: base}
		}
		if err := db.CreateExecutions(ctx, exs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/execution")
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "executions/s")
}
