package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

var quick = &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}}

// TestDelayedRunStartsNoEarlier: an execution submitted with a delay is
// pending with run_at set, and starts no earlier.
func TestDelayedRunStartsNoEarlier(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, quick)
	a := h.postAs(t, "/executions", "application/json", `{"pipeline": "quick", "delay": "1500ms"}`)
	if a.status != http.StatusAccepted || !strings.Contains(a.body, `"retry_at":null`) {
		t.Fatalf("submit: %d %s, want 202 with retry_at null", a.status, a.body)
	}
	var ex conveyor.Execution
	if err := json.Unmarshal([]byte(a.body), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Status != conveyor.StatusPending || ex.RunAt == nil || !ex.RunAt.Equal(ex.CreatedAt.Add(1500*time.Millisecond).Truncate(time.Microsecond)) {
		t.Fatalf("submitted: %s, run_at %v, created %s; want pending, run_at 1.5s after", ex.Status, ex.RunAt, ex.CreatedAt)
	}
	got, err := h.client.Get(t.Context(), ex.ID)
	if err != nil || got.RunAt == nil || !got.RunAt.Equal(*ex.RunAt) {
		t.Fatalf("as stored: %+v, %v", got, err)
	}
	if got.Status == conveyor.StatusPending && time.Now().Before(*ex.RunAt) {
		// Still waiting: the list shows when it starts too.
		page, err := h.client.List(t.Context(), conveyor.ListFilter{Status: conveyor.StatusPending})
		if err != nil || len(page.Executions) != 1 || page.Executions[0].RunAt == nil {
			t.Errorf("pending list: %+v, %v; want it with its run_at", page, err)
		}
	}

	done := waitStatusUpTo(t, h, ex.ID, conveyor.StatusCompleted, 30*time.Second)
	if done.StartedAt == nil || done.StartedAt.Before(*ex.RunAt) {
		t.Errorf("started at %v, before its run_at %s", done.StartedAt, ex.RunAt)
	}
	if done.RunAt == nil || !done.RunAt.Equal(*ex.RunAt) {
		t.Errorf("run_at after it ran = %v, want %s kept", done.RunAt, ex.RunAt)
	}
}

// waitStatusUpTo is waitStatus with a deadline of its own, for what
// waits on purpose.
func waitStatusUpTo(t *testing.T, h *harness, id string, want conveyor.Status, d time.Duration) *conveyor.Execution {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ex, err := h.client.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Status == want {
			return ex
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s is %s after %s, want %s", id, ex.Status, d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunAtInThePastRunsAtOnce: a run_at already past (or a zero
// delay) is no delay at all.
func TestRunAtInThePastRunsAtOnce(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, quick)
	for _, n := range []conveyor.NewExecution{
		{Pipeline: "quick", RunAt: "2020-01-01T00:00:00Z"},
		{Pipeline: "quick", Delay: "0s"},
	} {
		ex, err := h.client.SubmitExecution(t.Context(), n)
		if err != nil || ex.RunAt != nil {
			t.Fatalf("submit %+v: %+v, %v; want no run_at", n, ex, err)
		}
		h.waitStatus(ex.ID, conveyor.StatusCompleted)
	}
}

// TestDelayBadInputWritesNothing: a malformed or out-of-range run_at or
// delay, or both at once, is refused naming the field, and nothing is
// stored.
func TestDelayBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, quick)
	ahead := time.Now().Add(400 * 24 * time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, body string
		status     int
		code, in   string
	}{
		{"run_at malformed", `{"pipeline":"quick","run_at":"tomorrow"}`, 422, conveyor.EINVALID, "run_at"},
		{"run_at without a zone", `{"pipeline":"quick","run_at":"2030-01-01T00:00:00"}`, 422, conveyor.EINVALID, "run_at"},
		{"run_at over a year ahead", `{"pipeline":"quick","run_at":"` + ahead + `"}`, 422, conveyor.EINVALID, "run_at"},
		{"delay malformed", `{"pipeline":"quick","delay":"90"}`, 422, conveyor.EINVALID, "delay"},
		{"delay negative", `{"pipeline":"quick","delay":"-1s"}`, 422, conveyor.EINVALID, "delay"},
		{"delay over a year", `{"pipeline":"quick","delay":"9000h"}`, 422, conveyor.EINVALID, "delay"},
		{"both", `{"pipeline":"quick","run_at":"2030-01-01T00:00:00Z","delay":"1s"}`, 422, conveyor.EINVALID, "run_at and delay"},
		{"delay not a string", `{"pipeline":"quick","delay":90}`, 400, conveyor.EBADREQUEST, "delay"},
		{"run_at not a string", `{"pipeline":"quick","run_at":1700000000}`, 400, conveyor.EBADREQUEST, "run_at"},
	} {
		resp := h.post(t, "/executions", tc.body)
		if resp.status != tc.status || resp.err.Code != tc.code || !strings.Contains(resp.err.Message, tc.in) {
			t.Errorf("%s: %d %+v, want %d %s naming %s", tc.name, resp.status, resp.err, tc.status, tc.code, tc.in)
		}
	}
	if page, err := h.client.List(t.Context(), conveyor.ListFilter{}); err != nil || len(page.Executions) != 0 {
		t.Errorf("executions after refused submissions: %d, %v", len(page.Executions), err)
	}
	_, err := h.client.SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "quick", Delay: "soon"})
	if ce := (*conveyor.Error)(nil); !errors.As(err, &ce) || ce.Code != conveyor.EINVALID || !strings.HasPrefix(ce.Message, "delay: ") {
		t.Errorf("SubmitExecution with a bad delay: %v, want invalid naming delay", err)
	}
}

// TestCancelWhileDelayed: a delayed execution is cancelled at once, and
// never runs.
func TestCancelWhileDelayed(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, quick)
	ex, err := h.client.SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "quick", Delay: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	s := h.watch(ex.ID)
	if first := nextEvent(t, s); first.Type != conveyor.EventStatus || first.Status != conveyor.StatusPending {
		t.Fatalf("first message %s %s, want status pending", first.Type, first.Status)
	}
	got, err := h.client.Cancel(t.Context(), ex.ID)
	if err != nil || got.Status != conveyor.StatusCancelled {
		t.Fatalf("Cancel = %+v, %v; want cancelled", got, err)
	}
	nextOfType(t, s, conveyor.EventCancelled)
	expectEOF(t, s)
	if got, err := h.client.Get(t.Context(), ex.ID); err != nil || got.Status != conveyor.StatusCancelled || got.StartedAt != nil {
		t.Errorf("after the cancel: %+v, %v; want cancelled, never started", got, err)
	}
}

// TestBatchMembersMayWait: each item of a batch may have its own delay.
func TestBatchMembersMayWait(t *testing.T) {
	t.Parallel()
	h := setup(t, 2, quick)
	b, err := h.client.SubmitBatch(t.Context(), []conveyor.NewExecution{
		{Pipeline: "quick", Delay: "1h"},
		{Pipeline: "quick", RunAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)},
		{Pipeline: "quick"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := h.client.List(t.Context(), conveyor.ListFilter{Batch: b.ID})
	if err != nil || len(page.Executions) != 3 {
		t.Fatalf("members: %+v, %v", page, err)
	}
	now := h.waitStatus(page.Executions[0].ID, conveyor.StatusCompleted) // newest first: the one without a delay
	if now.RunAt != nil {
		t.Errorf("member without a delay has run_at %s", now.RunAt)
	}
	for _, ex := range page.Executions[1:] {
		got, err := h.client.Get(t.Context(), ex.ID)
		if err != nil || got.Status != conveyor.StatusPending || got.RunAt == nil || time.Until(*got.RunAt) < 50*time.Minute {
			t.Errorf("delayed member: %+v, %v; want pending, an hour ahead", got, err)
		}
	}
	if got, err := h.client.Batch(t.Context(), b.ID); err != nil || got.Counts.Pending != 2 || got.Counts.Completed != 1 {
		t.Errorf("batch: %+v, %v; want 2 pending, 1 completed", got, err)
	}
}

// TestRetryWaitsForRetryAt: a failed attempt's retrying message and the
// execution carry retry_at, about retry_delay ahead, and the next
// attempt starts no earlier.
func TestRetryWaitsForRetryAt(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	flaky := func(_ context.Context, x *conveyor.Exec) error {
		if x.Attempt == 1 {
			return errors.New("first attempt fails")
		}
		<-release
		return nil
	}
	const delay = 1500 * time.Millisecond
	h := setup(t, 1, &conveyor.Pipeline{Name: "flaky", Retries: 1, RetryDelay: delay, Steps: []conveyor.Step{{Name: "s", Run: flaky}}})
	ex := h.submit("flaky", nil)
	// From seq 0: the stored events replay, so the retrying message is
	// there even if the first attempt failed before the stream opened.
	s, err := h.client.WatchAfter(t.Context(), ex.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	retrying := skipTo(t, s, conveyor.EventRetrying)
	if retrying.RetryAt == nil {
		t.Fatalf("retrying message without retry_at: %+v", retrying)
	}
	if wait := retrying.RetryAt.Sub(retrying.Time); wait < delay*9/10-time.Microsecond || wait > delay*11/10 {
		t.Errorf("retry_at %s after the retrying event, want %s ±10 %%", wait, delay)
	}
	got, err := h.client.Get(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status == conveyor.StatusPending {
		if got.RetryAt == nil || !got.RetryAt.Equal(*retrying.RetryAt) {
			t.Errorf("waiting execution: retry_at %v, want %s", got.RetryAt, retrying.RetryAt)
		}
		// A stream opened while it waits says until when.
		s2 := h.watch(ex.ID)
		if first := nextEvent(t, s2); first.Status == conveyor.StatusPending && (first.RetryAt == nil || !first.RetryAt.Equal(*retrying.RetryAt)) {
			t.Errorf("status message while waiting: retry_at %v, want %s", first.RetryAt, retrying.RetryAt)
		}
	}
	started := skipTo(t, s, conveyor.EventStarted)
	if started.Time.Before(*retrying.RetryAt) {
		t.Errorf("second attempt started at %s, before retry_at %s", started.Time, retrying.RetryAt)
	}
	if got, err := h.client.Get(t.Context(), ex.ID); err != nil || got.RetryAt != nil || got.Status != conveyor.StatusRunning {
		t.Errorf("running the retry: %+v, %v; want running, retry_at null", got, err)
	}
	close(release)
	nextOfType(t, s, conveyor.EventCompleted)
}

// skipTo reads stream messages until one of type typ.
func skipTo(t *testing.T, s *client.Stream, typ conveyor.EventType) conveyor.Event {
	t.Helper()
	for {
		if ev := nextEvent(t, s); ev.Type == typ {
			return ev
		}
	}
}

func TestPipelinesShowRetryPolicy(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, quick, &conveyor.Pipeline{Name: "patient", Retries: 3, RetryDelay: 5 * time.Second,
		RetryBackoff: conveyor.BackoffFixed, Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	for name, want := range map[string]string{
		"quick":   `"retry_delay":"1s","retry_backoff":"exponential","retry_max_delay":"10m0s"`,
		"patient": `"retry_delay":"5s","retry_backoff":"fixed","retry_max_delay":"10m0s"`,
	} {
		var raw json.RawMessage
		h.getJSON("/pipelines/"+name, http.StatusOK, &raw)
		if !strings.Contains(string(raw), want) {
			t.Errorf("GET /pipelines/%s = %s, want %s", name, raw, want)
		}
	}
}
