package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
	"github.com/conveyor-run/conveyor/store/storetest"
)

// The benchmarks run on the server pgtest finds, each on a new database,
// and are skipped without one. They measure the store alone:
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
		claims, err := db.ClaimPending(ctx, 1, func() time.Time { return base.Add(time.Duration(made)) })
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

// million is the database of storetest.Million tagged executions that the
// 1M benchmarks share: built on first use, once per process (not once per
// -count), and dropped by TestMain.
var million struct {
	once  sync.Once
	admin string // pgtest.AdminURL
	name  string // the database, when created
	db    *DB
	built time.Duration
	err   error
}

// millionStore returns the shared store of storetest.Million executions,
// building it first if need be; it skips b unless storetest.Env1M is set
// and pgtest finds a server. The fill is followed by ANALYZE, as
// autovacuum would do soon after such a load, so that the plans do not
// depend on whether it has come round yet.
func millionStore(b *testing.B) *DB {
	b.Helper()
	storetest.Skip1M(b)
	admin := pgtest.AdminURL(b)
	million.once.Do(func() {
		million.admin = admin
		million.err = func() error {
			ctx := context.Background()
			var r [6]byte
			_, _ = rand.Read(r[:])
			name := "conveyor_bench_1m_" + hex.EncodeToString(r[:])
			if err := adminExec(ctx, admin, "CREATE DATABASE "+name); err != nil {
				return err
			}
			million.name = name
			db, err := Open(ctx, pgtest.WithDatabase(b, admin, name), &Options{NodeID: "bench"})
			if err != nil {
				return err
			}
			million.db = db
			start := time.Now()
			if err := storetest.FillTagged(ctx, db, storetest.Million); err != nil {
				return err
			}
			if _, err := db.pool.Exec(ctx, "ANALYZE"); err != nil {
				return err
			}
			million.built = time.Since(start)
			return nil
		}()
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	b.Logf("store of %d executions, built and analyzed in %s", storetest.Million, million.built.Round(time.Millisecond))
	return million.db
}

// closeMillion drops the database of the 1M benchmarks, if one was made.
func closeMillion() error {
	var errs []error
	if million.db != nil {
		errs = append(errs, million.db.Close())
	}
	if million.name != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		errs = append(errs, adminExec(ctx, million.admin, "DROP DATABASE IF EXISTS "+million.name+" WITH (FORCE)"))
	}
	return errors.Join(errs...)
}

func adminExec(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to the test server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// BenchmarkListByTag1M lists a page of 50 executions by tag from a store
// of a million (storetest.BenchListByTag), after logging EXPLAIN ANALYZE
// of each filter and checking that it is driven from execution_tags'
// primary key without a sort. Set CONVEYOR_BENCH_1M=1 to run it:
//
//	CONVEYOR_BENCH_1M=1 CONVEYOR_TEST_DATABASE_URL=postgres://… go test ./store/postgres -run '^$' -bench ListByTag1M -v
func BenchmarkListByTag1M(b *testing.B) {
	db := millionStore(b)
	for _, c := range storetest.ListByTagCases {
		plan, err := explainList(b.Context(), db, conveyor.ListFilter{Tags: c.Tags, Limit: 50})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s %v:\n%s", c.Name, c.Tags, plan)
		// The planner may drive a filter of two tags from either (it
		// knows which is rarer); from a tag's rows in the primary key,
		// newest first, in any case, and without a sort.
		if !strings.Contains(plan, "Scan Backward using execution_tags_pkey") || strings.Contains(plan, "Sort") {
			b.Errorf("%s: the plan is not driven from execution_tags' primary key, or sorts", c.Name)
		}
	}
	storetest.BenchListByTag(b, db)
}

// explainList returns EXPLAIN (ANALYZE, BUFFERS) of ListExecutions with f.
func explainList(ctx context.Context, db *DB, f conveyor.ListFilter) (string, error) {
	var args []any
	query, _, err := store.ListQuery(executionColumns, f, placeholder(&args))
	if err != nil {
		return "", err
	}
	rows, err := db.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+query, args...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

// BenchmarkCreateBatch10000 creates a batch of 10,000 executions per op
// (storetest.BenchCreateBatch), the largest a batch may be.
func BenchmarkCreateBatch10000(b *testing.B) {
	storetest.BenchCreateBatch(b, setup(b))
}

// BenchmarkProgressWhilePruning1M measures the store writes of a running
// execution's progress while the retention pruner deletes a million
// finished executions (storetest.BenchProgressWhilePruning), on a
// database of its own, after logging the plan of the pruner's query.
// Set CONVEYOR_BENCH_1M=1 to run it:
//
//	CONVEYOR_BENCH_1M=1 CONVEYOR_TEST_DATABASE_URL=postgres://… go test ./store/postgres -run '^$' -bench ProgressWhilePruning1M -benchtime 1x -v
func BenchmarkProgressWhilePruning1M(b *testing.B) {
	storetest.Skip1M(b)
	db := setup(b)
	ctx := b.Context()
	start := time.Now()
	if err := storetest.FillFinished(ctx, db, storetest.Million, storetest.PrunedBefore()); err != nil {
		b.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	b.Logf("store of %d finished executions, built and analyzed in %s", storetest.Million, time.Since(start).Round(time.Millisecond))
	rows, err := db.pool.Query(ctx, "EXPLAIN "+sqlPrunable, time.Now(), 100)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	b.Logf("the pruner's query:\n%s", plan)
	if !strings.Contains(plan, "executions_finished") || strings.Contains(plan, "Sort") {
		b.Error("the pruner's query does not walk executions_finished, or sorts")
	}
	storetest.BenchProgressWhilePruning(b, db)
}
