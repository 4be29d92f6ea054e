package conveyor_test

import (
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestDeleteRule: only a final execution may be deleted, and pruning
// takes one only once it finished before the cutoff.
func TestDeleteRule(t *testing.T) {
	t.Parallel()
	cutoff := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before, at := cutoff.Add(-time.Nanosecond), cutoff
	for _, tt := range []struct {
		status             conveyor.Status
		finished           *time.Time
		deletable, expired bool
	}{
		{conveyor.StatusPending, nil, false, false},
		{conveyor.StatusRunning, nil, false, false},
		{conveyor.StatusRunning, &before, false, false}, // cannot be, but is not deleted if it were
		{conveyor.StatusCompleted, &before, true, true},
		{conveyor.StatusFailed, &before, true, true},
		{conveyor.StatusCancelled, &before, true, true},
		{conveyor.StatusCompleted, &at, true, false},
		{conveyor.StatusCompleted, nil, true, false},
	} {
		ex := &conveyor.Execution{ID: "x", Status: tt.status, FinishedAt: tt.finished}
		err := ex.CheckDelete()
		if (err == nil) != tt.deletable || err != nil && conveyor.ErrorCode(err) != conveyor.ECONFLICT {
			t.Errorf("%s finished at %v: CheckDelete = %v, want deletable %t (else conflict)", tt.status, tt.finished, err, tt.deletable)
		}
		if got := ex.Expired(cutoff); got != tt.expired {
			t.Errorf("%s finished at %v: Expired = %t, want %t", tt.status, tt.finished, got, tt.expired)
		}
	}
}
