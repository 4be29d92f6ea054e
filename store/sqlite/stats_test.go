package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestDashboardPlans pins the plans of the dashboard's reads: an id
// prefix searches the id index, throughput reads the two partial time
// indexes, and none of them scans the table. As TestListByTagPlan, an
// empty store plans as a large one does.
func TestDashboardPlans(t *testing.T) {
	db := open(t)
	plan, err := explainList(t.Context(), db, conveyor.ListFilter{IDPrefix: "0197a3f2-6c"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "SEARCH e USING INDEX sqlite_autoindex_executions_1 (id>? AND id<?)") {
		t.Errorf("id prefix plan:\n%s\nwant a search of the id index", plan)
	}

	rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+sqlThroughput, 0, int64(time.Hour), int64(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	plan = strings.Join(lines, "\n")
	for _, want := range []string{"USING COVERING INDEX executions_started (started_at>? AND started_at<?)",
		"USING COVERING INDEX executions_finished (finished_at>? AND finished_at<?)"} {
		if !strings.Contains(plan, want) {
			t.Errorf("throughput plan:\n%s\nwant %q", plan, want)
		}
	}
	if strings.Contains(plan, "SCAN executions") {
		t.Errorf("throughput plan:\n%s\nscans the table", plan)
	}
}
