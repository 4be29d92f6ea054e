package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
)

// TestClaimPlan pins the plans of claims and NextDue on a store where
// most pending executions wait far ahead, and on one with a backlog that
// may start at once: they read the two partial indexes,
// executions_waiting by due time and executions_ready oldest first, a
// claim updates what it took by primary key, and neither ever scans the
// table or an index of every pending execution.
func TestClaimPlan(t *testing.T) {
	for _, shape := range []struct{ waiting, ready int }{{20000, 200}, {200, 20000}} {
		t.Run(fmt.Sprintf("%d waiting, %d ready", shape.waiting, shape.ready), func(t *testing.T) {
			checkClaimPlan(t, shape.waiting, shape.ready)
		})
	}
}

func checkClaimPlan(t *testing.T, waiting, ready int) {
	db := setup(t)
	ctx := t.Context()
	now := time.Now().UTC()
	es := make([]*conveyor.Execution, 0, waiting+ready)
	for i := range waiting + ready {
		ex := &conveyor.Execution{ID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Pipeline: "p",
			Status: conveyor.StatusPending, CreatedAt: now}
		if i < waiting {
			ex.RunAt = ptr(now.Add(time.Duration(i+1) * time.Hour))
		}
		es = append(es, ex)
	}
	if err := db.CreateExecutions(ctx, es); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, "ANALYZE executions"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		want  []string
	}{
		{"claim", sqlClaimPending, []any{256, now, "node", now.Add(time.Minute), now.Format(time.RFC3339Nano), conveyor.SeqReservation},
			[]string{"executions_waiting", "executions_ready", "executions_pkey"}},
		{"next due", sqlNextDue, []any{now}, []string{"executions_waiting"}},
	} {
		rows, err := db.pool.Query(ctx, "EXPLAIN "+tc.query, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		for _, want := range tc.want {
			if !strings.Contains(plan, want) {
				t.Errorf("%s plan:\n%s\nwant it to read %s", tc.name, plan, want)
			}
		}
		if strings.Contains(plan, "Seq Scan on executions") ||
			strings.Contains(plan, "executions_status_num") {
			t.Errorf("%s plan:\n%s\nscans the table or an index of every pending execution", tc.name, plan)
		}
	}
}
