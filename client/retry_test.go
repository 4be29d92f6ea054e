package client_test

import (
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestRetry: Retry makes a new execution of a final one, with the same
// pipeline, input and tags, that names it; it refuses one that has not
// ended and an unknown one.
func TestRetry(t *testing.T) {
	t.Parallel()
	n := setup(t, 1, nil)
	c := n.ctl
	ctx := t.Context()
	running, err := c.Submit(ctx, "gated", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	<-n.gate.started
	pending, err := c.SubmitWithTags(ctx, "gated", map[string]int{"n": 2}, conveyor.Tags{"env": "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []*conveyor.Execution{running, pending} {
		if _, err := c.Retry(ctx, ex.ID); conveyor.ErrorCode(err) != conveyor.ECONFLICT {
			t.Errorf("Retry of a %s execution: %v, want %s", ex.Status, err, conveyor.ECONFLICT)
		}
	}
	if _, err := c.Retry(ctx, "nope"); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("Retry of an unknown execution: %v, want %s", err, conveyor.ENOTFOUND)
	}
	if _, err := c.Cancel(ctx, pending.ID); err != nil {
		t.Fatal(err)
	}
	retry, err := c.Retry(ctx, pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	if retry.ID == pending.ID || retry.RetryOf == nil || *retry.RetryOf != pending.ID || retry.Status != conveyor.StatusPending ||
		retry.Pipeline != "gated" || string(retry.Input) != `{"n":2}` || retry.Tags["env"] != "test" {
		t.Errorf("Retry returned %+v, want a new pending execution of gated with the same input and tags, retry_of %s", retry, pending.ID)
	}
	got, err := c.Get(ctx, retry.ID)
	if err != nil || got.RetryOf == nil || *got.RetryOf != pending.ID {
		t.Errorf("Get of the retry: %+v, %v", got, err)
	}
	if orig, err := c.Get(ctx, pending.ID); err != nil || orig.RetryOf != nil {
		t.Errorf("Get of the original: %+v, %v; want retry_of null", orig, err)
	}
}
