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
		plan, err := explain(t.Context(), db, tc.query, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
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
