package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

// finishedAt stores an execution of pipeline "p" that ended with an
// event of type end at t.
func finishedAt(t *testing.T, db *sqlite.DB, id string, end conveyor.EventType, at time.Time) {
	t.Helper()
	ctx := t.Context()
	ex := &conveyor.Execution{ID: id, Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: at.Add(-time.Minute)}
	if err := db.CreateExecution(ctx, ex); err != nil {
		t.Fatal(err)
	}
	claims, err := db.ClaimPending(ctx, 1, func() time.Time { return at.Add(-time.Second) })
	if err != nil || len(claims) != 1 || claims[0].Execution.ID != id {
		t.Fatalf("claim %s: %+v, %v", id, claims, err)
	}
	c := claims[0].Execution
	ev := conveyor.Event{Type: end, ExecutionID: id, Seq: c.LastSeq + 1, Time: at, Attempt: c.Attempt, Status: conveyor.StatusOf(end)}
	if err := db.Append(ctx, []conveyor.Event{ev}); err != nil {
		t.Fatal(err)
	}
}

// TestRetentionPrunesOldExecutions: a node with a retention deletes, on
// its own, the final executions that finished longer ago than that, and
// counts them; newer ones and those not final stay.
func TestRetentionPrunesOldExecutions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	finishedAt(t, db, "old-completed", conveyor.EventCompleted, now.Add(-3*time.Hour))
	finishedAt(t, db, "old-failed", conveyor.EventFailed, now.Add(-2*time.Hour))
	finishedAt(t, db, "recent", conveyor.EventCompleted, now.Add(-10*time.Minute))
	old := &conveyor.Execution{ID: "old-pending", Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: now.Add(-5 * time.Hour)}
	if err := db.CreateExecution(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	srv, logs := openIn(t, dir, server.Config{APIKey: metricsKey, Retention: time.Hour})

	base := "http://" + srv.Addr()
	hc := httpClient(t)
	eventually(t, hc, base+"/metrics", metricsKey, equals(2, "conveyor_retention_deleted_total", "kind", "executions"))
	c := client.New(base, hc).WithAPIKey(metricsKey)
	for id, want := range map[string]string{"old-completed": conveyor.ENOTFOUND, "old-failed": conveyor.ENOTFOUND, "recent": "", "old-pending": ""} {
		if _, err := c.Get(t.Context(), id); conveyor.ErrorCode(err) != want {
			t.Errorf("GET %s: %v, want code %q", id, err, want)
		}
	}
	if log := logs.String(); !strings.Contains(log, "pruned expired executions") || !strings.Contains(log, "deleted=2") {
		t.Errorf("the log does not tell what was pruned:\n%s", log)
	}
}

// TestRetentionConfig: a negative retention, or one under a minute, is
// refused before the node starts.
func TestRetentionConfig(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{-time.Hour, time.Second, conveyor.MinRetention - 1} {
		_, err := server.Open(t.Context(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Retention: d})
		if err == nil || !strings.Contains(err.Error(), "retention must be at least 1m0s (0: keep executions forever)") {
			t.Errorf("Open with retention %s: %v", d, err)
		}
	}
}

// TestExpiredIdempotencyKeysAreDeleted: with no retention set, a node
// still deletes idempotency keys first used more than
// conveyor.IdempotencyTTL ago, and counts them; a younger key stays.
func TestExpiredIdempotencyKeysAreDeleted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for id, age := range map[string]time.Duration{"00000000-0000-7000-8000-000000000001": 25 * time.Hour, "00000000-0000-7000-8000-000000000002": 23 * time.Hour} {
		ex := &conveyor.Execution{ID: id, Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: now.Add(-age),
			Idempotency: &conveyor.Idempotency{Key: "key-" + id[len(id)-1:], Digest: "the first request's"}}
		if err := db.CreateExecution(t.Context(), ex); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	srv, _ := openIn(t, dir, server.Config{APIKey: metricsKey, Pipelines: []*conveyor.Pipeline{{Name: "p", Steps: []conveyor.Step{{Name: "s", Kind: "noop",
		Run: func(context.Context, *conveyor.Exec) error { return nil }}}}}})
	base := "http://" + srv.Addr()
	hc := httpClient(t)
	eventually(t, hc, base+"/metrics", metricsKey, equals(1, "conveyor_retention_deleted_total", "kind", "idempotency_keys"))
	c := client.New(base, hc).WithAPIKey(metricsKey)
	// The expired key is free: a new submission takes it. The young one
	// still names its execution, for another request too.
	if _, err := c.WithIdempotencyKey("key-1").Submit(t.Context(), "p", nil); err != nil {
		t.Errorf("submit with the expired key: %v", err)
	}
	if _, err := c.WithIdempotencyKey("key-2").Submit(t.Context(), "p", nil); conveyor.ErrorCode(err) != conveyor.EIDEMPOTENCYMISMATCH {
		t.Errorf("submit with the young key: %v, want %s", err, conveyor.EIDEMPOTENCYMISMATCH)
	}
}
