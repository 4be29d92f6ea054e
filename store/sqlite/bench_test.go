package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
	"github.com/conveyor-run/conveyor/store/storetest"
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
	claims, err := db.ClaimPending(context.Background(), n, time.Now)
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
		claims, err := db.ClaimPending(ctx, 1, time.Now)
		if err != nil || len(claims) != 1 {
			b.Fatalf("claimed %d: %v", len(claims), err)
		}
		pending--
	}
}

// million is the store of storetest.Million tagged executions that the
// 1M benchmarks share: built on first use, once per process (not once per
// -count), and removed by TestMain.
var million struct {
	once  sync.Once
	dir   string
	db    *DB
	built time.Duration
	err   error
}

// millionStore returns the shared store of storetest.Million executions,
// building it first if need be; it skips b unless storetest.Env1M is set.
func millionStore(b *testing.B) *DB {
	b.Helper()
	storetest.Skip1M(b)
	million.once.Do(func() {
		ctx := context.Background()
		if million.dir, million.err = os.MkdirTemp("", "conveyor-bench-1m-"); million.err != nil {
			return
		}
		if million.db, million.err = Open(ctx, million.dir); million.err != nil {
			return
		}
		start := time.Now()
		million.err = storetest.FillTagged(ctx, million.db, storetest.Million)
		million.built = time.Since(start)
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	b.Logf("store of %d executions, built in %s", storetest.Million, million.built.Round(time.Millisecond))
	return million.db
}

// closeMillion removes the store of the 1M benchmarks, if one was built.
func closeMillion() error {
	var errs []error
	if million.db != nil {
		errs = append(errs, million.db.Close())
	}
	if million.dir != "" {
		errs = append(errs, os.RemoveAll(million.dir))
	}
	return errors.Join(errs...)
}

// BenchmarkListByTag1M lists a page of 50 executions by tag from a store
// of a million (storetest.BenchListByTag), after logging the query plan of
// each filter and checking that it is driven from execution_tags' primary
// key without a sort. Set CONVEYOR_BENCH_1M=1 to run it:
//
//	CONVEYOR_BENCH_1M=1 go test ./store/sqlite -run '^$' -bench ListByTag1M -v
func BenchmarkListByTag1M(b *testing.B) {
	db := millionStore(b)
	for _, c := range storetest.ListByTagCases {
		plan, err := explainList(b.Context(), db, conveyor.ListFilter{Tags: c.Tags, Limit: 50})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s %v:\n%s", c.Name, c.Tags, plan)
		if !tagDriven(plan) {
			b.Errorf("%s: the plan is not driven from execution_tags' primary key, or sorts", c.Name)
		}
	}
	storetest.BenchListByTag(b, db)
}

// explainList returns EXPLAIN QUERY PLAN of ListExecutions with f, one
// line per step, indented by depth.
func explainList(ctx context.Context, db *DB, f conveyor.ListFilter) (string, error) {
	var args []any
	query, _, err := store.ListQuery(executionColumns, f, func(v any) string {
		args = append(args, v)
		return "?"
	})
	if err != nil {
		return "", err
	}
	return explain(ctx, db, query, args...)
}

// explain returns EXPLAIN QUERY PLAN of query with args, one line per
// step, indented by depth.
func explain(ctx context.Context, db *DB, query string, args ...any) (string, error) {
	rows, err := db.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	depth := map[int]int{}
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		depth[id] = depth[parent] + 1
		fmt.Fprintf(&plan, "%s%s\n", strings.Repeat("  ", depth[id]), detail)
	}
	return plan.String(), rows.Err()
}

// BenchmarkCreateBatch10000 creates a batch of 10,000 executions per op
// (storetest.BenchCreateBatch), the largest a batch may be.
func BenchmarkCreateBatch10000(b *testing.B) {
	storetest.BenchCreateBatch(b, open(b))
}

// BenchmarkProgressWhilePruning1M measures the store writes of a running
// execution's progress while the retention pruner deletes a million
// finished executions (storetest.BenchProgressWhilePruning), after
// logging the plan of the pruner's query. Set CONVEYOR_BENCH_1M=1 to run
// it:
//
//	CONVEYOR_BENCH_1M=1 go test ./store/sqlite -run '^$' -bench ProgressWhilePruning1M -benchtime 1x -v
func BenchmarkProgressWhilePruning1M(b *testing.B) {
	storetest.Skip1M(b)
	db := open(b)
	ctx := b.Context()
	start := time.Now()
	if err := storetest.FillFinished(ctx, db, storetest.Million, storetest.PrunedBefore()); err != nil {
		b.Fatal(err)
	}
	b.Logf("store of %d finished executions, built in %s", storetest.Million, time.Since(start).Round(time.Millisecond))
	plan, err := explain(ctx, db, sqlPrunable, time.Now().UnixNano(), 100)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("the pruner's query:\n%s", plan)
	if !strings.Contains(plan, "executions_finished") || strings.Contains(plan, "TEMP B-TREE") {
		b.Error("the pruner's query does not walk executions_finished, or sorts")
	}
	storetest.BenchProgressWhilePruning(b, db)
}
