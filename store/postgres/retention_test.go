package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store/storetest"
)

// TestDeleteLeavesNoRows: what storetest cannot see. Deleting an
// execution leaves no row of it in any table that refers to executions,
// including tables added after this test was written.
func TestDeleteLeavesNoRows(t *testing.T) {
	t.Parallel()
	db := setup(t)
	ctx := t.Context()
	ex := storetest.FinalExecution(t, db)
	var num int64
	if err := db.pool.QueryRow(ctx, `SELECT num FROM executions WHERE id = $1`, ex.ID).Scan(&num); err != nil {
		t.Fatal(err)
	}
	// Every table with a column that names an execution by id, and the
	// tags by num.
	rows, err := db.pool.Query(ctx, `SELECT table_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name = 'execution_id' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	count := func(query string, arg any) int {
		t.Helper()
		var n int
		if err := db.pool.QueryRow(ctx, query, arg).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	type rowsOf struct {
		query string
		arg   any
	}
	checks := []rowsOf{{`SELECT count(*) FROM execution_tags WHERE num = $1`, num}}
	for _, table := range tables {
		checks = append(checks, rowsOf{`SELECT count(*) FROM "` + table + `" WHERE execution_id = $1`, ex.ID})
	}
	for _, table := range []string{"events", "logs", "webhook_deliveries"} {
		if n := count(`SELECT count(*) FROM "`+table+`" WHERE execution_id = $1`, ex.ID); n == 0 {
			t.Fatalf("the execution has no rows in %s to delete", table)
		}
	}

	if err := db.DeleteExecution(ctx, ex.ID); err != nil {
		t.Fatal(err)
	}
	for _, q := range checks {
		if n := count(q.query, q.arg); n > 0 {
			t.Errorf("%s: %d rows left after the delete", q.query, n)
		}
	}
}

// TestOnePrunerAtATime: while one node prunes (holds the prune lock),
// another node's PruneExecutions deletes nothing; once the lock is free,
// it prunes. The lock is held here by a transaction of the test's own,
// as a pruning node's transaction holds it, so no timing is involved.
func TestOnePrunerAtATime(t *testing.T) {
	t.Parallel()
	a, b := twoNodes(t)
	ctx := t.Context()
	for _, id := range []string{"x", "y"} {
		ex := create(t, a, id, "p")
		c := claim(t, a, 1, base.Add(time.Minute))
		if len(c) != 1 || c[0].Execution.ID != ex.ID {
			t.Fatalf("claims = %+v, want %s", c, id)
		}
		final := conveyor.Event{Type: conveyor.EventCompleted, ExecutionID: id, Seq: c[0].Execution.LastSeq + 1,
			Time: base.Add(2 * time.Minute), Attempt: c[0].Execution.Attempt}
		if err := a.Append(ctx, []conveyor.Event{final}); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := base.Add(time.Hour)

	pruning, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pruning.Rollback(context.WithoutCancel(ctx))
	var locked bool
	if err := pruning.QueryRow(ctx, sqlTryPruneLock, pruneLockKey).Scan(&locked); err != nil || !locked {
		t.Fatalf("take the prune lock: %v, %v", locked, err)
	}
	for _, node := range []*DB{a, b} {
		if n, err := node.PruneExecutions(ctx, cutoff, 10); err != nil || n != 0 {
			t.Errorf("node %s prunes while another holds the lock: %d, %v; want 0", node.node, n, err)
		}
	}
	if _, err := a.GetExecution(ctx, "x"); err != nil {
		t.Fatalf("an execution went while another node pruned: %v", err)
	}

	if err := pruning.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := b.PruneExecutions(ctx, cutoff, 1); err != nil || n != 1 {
		t.Errorf("node b prunes once the lock is free: %d, %v; want 1", n, err)
	}
	if n, err := a.PruneExecutions(ctx, cutoff, 10); err != nil || n != 1 {
		t.Errorf("then node a: %d, %v; want 1", n, err)
	}
}
