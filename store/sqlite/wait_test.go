package sqlite

import (
	"strings"
	"testing"
	"time"
)

// TestClaimPlan pins the plans of claims and NextDue: they read the two
// partial indexes, executions_waiting by due time and executions_ready
// oldest first, so that neither costs a scan of the executions that
// wait (executions_status_num holds every pending one), and nothing
// but the few rows claimed is sorted.
func TestClaimPlan(t *testing.T) {
	db := open(t)
	now := time.Now().UnixNano()
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		want  []string
	}{
		{"claim", sqlClaimPending, []any{now, 8}, []string{
			"SEARCH executions USING INDEX executions_waiting (<expr><?)",
			"SCAN executions USING INDEX executions_ready",
		}},
		{"next due", sqlNextDue, []any{now}, []string{"SEARCH executions USING INDEX executions_waiting (<expr>>?)"}},
	} {
		plan := explain(t, db, tc.query, tc.args...)
		for _, want := range tc.want {
			if !strings.Contains(plan, want) {
				t.Errorf("%s plan:\n%s\nwant %q", tc.name, plan, want)
			}
		}
		if strings.Contains(plan, "executions_status_num") || strings.Count(plan, "TEMP B-TREE") > 1 {
			t.Errorf("%s plan:\n%s\nreads executions_status_num or sorts more than the claimed rows", tc.name, plan)
		}
	}
}

// explain returns the EXPLAIN QUERY PLAN of query, one step a line.
func explain(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}
