package sqlite

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// The store's hot paths, on a real file. Run with
//
//	go test -run '^$' -bench . -benchmem ./store/sqlite/

var benchInput = json.RawMessage(`{"source": "s3://bucket/reports/2025-06.csv", "rows": 100000}`)

func benchProgress(step int) *conveyor.Progress {
	total, pct, eta := 10, float64(step)*9.5, 12.5
	return &conveyor.Progress{
		CurrentStep: step, TotalSteps: &total, Percentage: &pct, CurrentStepName: "transform",
		Metrics: map[string]float64{"rows": float64(step) * 1000}, ETASeconds: &eta,
	}
}

// benchCreate stores n pending executions named from prefix.
func benchCreate(b *testing.B, db *DB, prefix string, n int) []*conveyor.Execution {
	b.Helper()
	exs := make([]*conveyor.Execution, n)
	for i := range exs {
		exs[i] = &conveyor.Execution{ID: prefix + strconv.Itoa(i), Pipeline: "bench", Status: conveyor.StatusPending, Input: benchInput, CreatedAt: time.Now()}
		if err := db.CreateExecution(context.Background(), exs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return exs
}

// benchRunning returns n executions claimed for running.
func benchRunning(b *testing.B, db *DB, n int) []*conveyor.Execution {
	b.Helper()
	benchCreate(b, db, "run-", n)
	claims, err := db.ClaimPending(context.Background(), n, time.Now())
	if err != nil || len(claims) != n {
		b.Fatalf("claimed %d of %d: %v", len(claims), n, err)
	}
	exs := make([]*conveyor.Execution, n)
	for i, c := range claims {
		exs[i] = c.Execution
	}
	return exs
}

func BenchmarkCreateExecution(b *testing.B) {
	db := open(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ex := &conveyor.Execution{ID: "ex-" + strconv.Itoa(i), Pipeline: "bench", Status: conveyor.StatusPending, Input: benchInput, CreatedAt: time.Now()}
		if err := db.CreateExecution(ctx, ex); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "executions/s")
}

// BenchmarkCreateExecutionsBatch100 is the engine's group commit of
// submissions under load: 100 executions per transaction.
func BenchmarkCreateExecutionsBatch100(b *testing.B) {
	const batch = 100
	db := open(b)
	ctx := context.Background()
	exs := make([]*conveyor.Execution, batch)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now := time.Now()
		for j := range exs {
			i++
			exs[j] = &conveyor.Execution{ID: "ex-" + strconv.Itoa(i), Pipeline: "bench", Status: conveyor.StatusPending, Input: benchInput, CreatedAt: now}
		}
		if err := db.CreateExecutions(ctx, exs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/execution")
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "executions/s")
}

// BenchmarkAppendSingle is the worst case of the engine's writer: one
// progress event per transaction.
func BenchmarkAppendSingle(b *testing.B) {
	db := open(b)
	ctx := context.Background()
	ex := benchRunning(b, db, 1)[0]
	p := benchProgress(3)
	evs := make([]conveyor.Event, 1)
	seq := ex.LastSeq
	b.ReportAllocs()
	for b.Loop() {
		seq++
		evs[0] = conveyor.Event{Type: conveyor.EventProgress, ExecutionID: ex.ID, Seq: seq, Time: time.Now(), Attempt: ex.Attempt, Progress: p}
		if err := db.Append(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendBatch100 is the group commit under load: 100 progress
// events of 10 running executions per transaction.
func BenchmarkAppendBatch100(b *testing.B) {
	const batch, executions = 100, 10
	db := open(b)
	ctx := context.Background()
	exs := benchRunning(b, db, executions)
	p := benchProgress(3)
	evs := make([]conveyor.Event, batch)
	seq := exs[0].LastSeq
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		for i := range evs {
			if i%executions == 0 {
				seq++
			}
			ex := exs[i%executions]
			evs[i] = conveyor.Event{Type: conveyor.EventProgress, ExecutionID: ex.ID, Seq: seq, Time: now, Attempt: ex.Attempt, Progress: p}
		}
		if err := db.Append(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkClaimPending claims one execution per transaction, as an
// engine with one free slot does.
func BenchmarkClaimPending(b *testing.B) {
	const refill = 1000
	db := open(b)
	ctx := context.Background()
	pending, round := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		if pending == 0 {
			b.StopTimer()
			round++
			benchCreate(b, db, "r"+strconv.Itoa(round)+"-", refill)
			pending = refill
			b.StartTimer()
		}
		claims, err := db.ClaimPending(ctx, 1, time.Now())
		if err != nil || len(claims) != 1 {
			b.Fatalf("claimed %d: %v", len(claims), err)
		}
		pending--
	}
}
