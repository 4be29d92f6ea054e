package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestSubmitWithKey: a submission whose key names an execution returns
// that one (created false) or, for another request, idempotency_mismatch;
// the same for batches.
func TestSubmitWithKey(t *testing.T) {
	t.Parallel()
	e, _ := startEngine(t, Config{Concurrency: 1, Pipelines: noopPipeline()})
	key := func(digest string) *conveyor.Idempotency { return &conveyor.Idempotency{Key: "k", Digest: digest} }
	first, created, err := e.SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "noop", Idempotency: key("d")})
	if err != nil || !created {
		t.Fatalf("first submit: created %v, %v", created, err)
	}
	again, created, err := e.SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "noop", Idempotency: key("d")})
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("repeat: %+v created %v, %v; want execution %s, not created", again, created, err, first.ID)
	}
	_, _, err = e.SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "noop", Idempotency: key("other")})
	if conveyor.ErrorCode(err) != conveyor.EIDEMPOTENCYMISMATCH {
		t.Fatalf("another request under the key: %v, want %s", err, conveyor.EIDEMPOTENCYMISMATCH)
	}

	nb := conveyor.NewBatch{Executions: []conveyor.NewExecution{{Pipeline: "noop"}}, Idempotency: &conveyor.Idempotency{Key: "kb", Digest: "d"}}
	b, created, err := e.SubmitBatch(t.Context(), nb)
	if err != nil || !created {
		t.Fatalf("first batch: created %v, %v", created, err)
	}
	b2, created, err := e.SubmitBatch(t.Context(), nb)
	if err != nil || created || b2.ID != b.ID || b2.Total != 1 {
		t.Fatalf("repeated batch: %+v created %v, %v; want batch %s", b2, created, err, b.ID)
	}
}

// TestUpkeepDeletesExpiredKeys: a node deletes the keys first used more
// than IdempotencyTTL ago, and only those.
func TestUpkeepDeletesExpiredKeys(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	e, _ := startEngine(t, Config{Store: store, Concurrency: 1, NowFunc: clock.Now, UpkeepInterval: 10 * time.Millisecond,
		Pipelines: noopPipeline()})
	submit := func(key string) {
		t.Helper()
		if _, _, err := e.SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "noop", Idempotency: &conveyor.Idempotency{Key: key, Digest: "d"}}); err != nil {
			t.Fatal(err)
		}
	}
	submit("old")
	clock.advance(time.Hour)
	submit("young")
	clock.advance(conveyor.IdempotencyTTL) // "old" is 25 h old, "young" 24 h: both expired
	clock.advance(-time.Minute)            // now "young" is not
	// A create straight into the store with a key first used less than
	// the TTL before it fails while the key is kept: that shows which
	// keys the upkeep deleted.
	probe := func(key string) error {
		ex := &conveyor.Execution{ID: "00000000-0000-7000-8000-" + map[string]string{"old": "000000000001", "young": "000000000002"}[key],
			Pipeline: "noop", Status: conveyor.StatusPending, Input: []byte("{}"), CreatedAt: start.Add(2 * time.Hour),
			Idempotency: &conveyor.Idempotency{Key: key, Digest: "d"}}
		return store.CreateExecution(t.Context(), ex)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := probe("old")
		if err == nil {
			break
		}
		var taken *conveyor.KeyTaken
		if !errors.As(err, &taken) || time.Now().After(deadline) {
			t.Fatalf("the expired key is still kept: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var taken *conveyor.KeyTaken
	if err := probe("young"); !errors.As(err, &taken) {
		t.Fatalf("the key used 24 h less a minute ago was deleted: %v", err)
	}
}
