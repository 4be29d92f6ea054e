package sqlite

import (
	"testing"

	"github.com/conveyor-run/conveyor/store/storetest"
)

// TestDeleteLeavesNoRows: what storetest cannot see. Deleting an
// execution leaves no row of it in any table that refers to executions,
// including tables added after this test was written.
func TestDeleteLeavesNoRows(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	ex := storetest.FinalExecution(t, db)
	var num int64
	if err := db.r.QueryRowContext(ctx, `SELECT num FROM executions WHERE id = ?`, ex.ID).Scan(&num); err != nil {
		t.Fatal(err)
	}
	// Every table with a column that names an execution by id, and the
	// tags by num.
	rows, err := db.r.QueryContext(ctx, `SELECT m.name FROM sqlite_schema m, pragma_table_info(m.name) c
		WHERE m.type = 'table' AND c.name = 'execution_id' ORDER BY m.name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	count := func(query string, arg any) int {
		t.Helper()
		var n int
		if err := db.r.QueryRowContext(ctx, query, arg).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	type rowsOf struct {
		query string
		arg   any
	}
	checks := []rowsOf{{`SELECT count(*) FROM execution_tags WHERE num = ?`, num}}
	for _, table := range tables {
		checks = append(checks, rowsOf{`SELECT count(*) FROM "` + table + `" WHERE execution_id = ?`, ex.ID})
	}
	for _, table := range []string{"events", "logs", "webhook_deliveries"} {
		if n := count(`SELECT count(*) FROM "`+table+`" WHERE execution_id = ?`, ex.ID); n == 0 {
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
