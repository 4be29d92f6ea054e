package engine

import (
	"testing"

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
