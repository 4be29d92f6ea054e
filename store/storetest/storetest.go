package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Run runs the conformance suite. newStore must return a new, empty store
// isolated from every other one it returns, and close it when t ends
// (t.Cleanup); subtests call it once each and run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) conveyor.Store) {
	t.Helper()
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"CreateExecution", createCases},
		{"CreateExecutions", createBatchCases},
		{"GetExecution", getCases},
		{"ListExecutions", listCases},
		{"ClaimPending", claimCases},
		{"Wait", waitCases},
		{"CountPending", countPendingCases},
		{"CountByStatus", countByStatusCases},
		{"Throughput", throughputCases},
		{"IDPrefix", idPrefixCases},
		{"Append", appendCases},
		{"Events", eventsCases},
		{"Cancel", cancelCases},
		{"CancelWins", cancelWinsCases},
		{"Text", textCases},
		{"Tags", tagCases},
		{"Batches", batchCases},
		{"RecoverInterrupted", recoverCases},
		{"Logs", logsCases},
		{"Data", dataCases},
		{"Resume", resumeCases},
		{"Retention", retentionCases},
		{"Webhook", webhookCases},
		{"IdempotencyKeys", keyCases},
		{"Ping", pingCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(&fixture{t: t, ctx: t.Context(), s: newStore(t)})
				})
			}
		})
	}
}

type testCase struct {
	name string
	fn   func(f *fixture)
}

var pingCases = []testCase{
	{"Works", func(f *fixture) {
		if err := f.s.Ping(f.ctx); err != nil {
			f.t.Fatalf("Ping: %v", err)
		}
	}},
}

// fixture is one subtest's store with helpers that fail the test on any
// unexpected error.
type fixture struct {
	t   *testing.T
	ctx context.Context
	s   conveyor.Store
	n   int // executions made so far; numbers ids and creation times
}

// base is the suite's clock origin. Every time the suite writes is a whole
// number of microseconds, the finest precision all backends keep.
var base = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// at returns base plus sec seconds and a fraction, so sub-second
// precision is exercised everywhere.
func at(sec int) time.Time {
	return base.Add(time.Duration(sec)*time.Second + 123456*time.Microsecond)
}

// executionID returns the id of the n-th execution of a fixture. The ids
// are well-formed UUIDs, like the engine's, so a backend may store them
// in a uuid column.
func executionID(n int) string {
	return fmt.Sprintf("00000000-0000-7000-8000-%012d", n)
}

// unknownIDs are ids no fixture ever creates: a well-formed UUID and a
// string that is not one (the API passes path segments through as is).
var unknownIDs = []string{executionID(999999), "no-such-execution"}

// newExecution returns a new pending execution, not yet stored, created
// one second after the previous one.
func (f *fixture) newExecution(pipeline string) *conveyor.Execution {
	f.n++
	return &conveyor.Execution{
		ID:        executionID(f.n),
		Pipeline:  pipeline,
		Status:    conveyor.StatusPending,
		Input:     json.RawMessage(fmt.Sprintf(`{"n": %d, "tags": ["a", "b"]}`, f.n)),
		CreatedAt: at(f.n),
	}
}

func (f *fixture) create(pipeline string) *conveyor.Execution {
	f.t.Helper()
	ex := f.newExecution(pipeline)
	if err := f.s.CreateExecution(f.ctx, ex); err != nil {
		f.t.Fatalf("CreateExecution %s: %v", ex.ID, err)
	}
	return ex
}

func (f *fixture) createN(n int, pipeline string) []*conveyor.Execution {
	f.t.Helper()
	exs := make([]*conveyor.Execution, n)
	for i := range exs {
		exs[i] = f.create(pipeline)
	}
	return exs
}

func (f *fixture) claim(limit int, now time.Time) []conveyor.Claim {
	f.t.Helper()
	claims, err := f.s.ClaimPending(f.ctx, limit, func() time.Time { return now })
	if err != nil {
		f.t.Fatalf("ClaimPending(%d): %v", limit, err)
	}
	return claims
}

// claimOne claims one execution and fails unless it is id, the oldest
// pending one.
func (f *fixture) claimOne(id string, now time.Time) conveyor.Claim {
	f.t.Helper()
	claims := f.claim(1, now)
	if len(claims) != 1 || claims[0].Execution.ID != id {
		f.t.Fatalf("ClaimPending(1) = %v, want %s", claimIDs(claims), id)
	}
	return claims[0]
}

// start creates an execution and claims it; nothing older may be pending.
// It returns the execution as it is after the claim.
func (f *fixture) start(pipeline string) *conveyor.Execution {
	f.t.Helper()
	ex := f.create(pipeline)
	return f.claimOne(ex.ID, at(f.n).Add(time.Second)).Execution
}

func (f *fixture) get(id string) *conveyor.Execution {
	f.t.Helper()
	ex, err := f.s.GetExecution(f.ctx, id)
	if err != nil {
		f.t.Fatalf("GetExecution %s: %v", id, err)
	}
	return ex
}

// append appends evs in one call and returns them as Append left them.
func (f *fixture) append(evs ...conveyor.Event) []conveyor.Event {
	f.t.Helper()
	if err := f.s.Append(f.ctx, evs); err != nil {
		f.t.Fatalf("Append: %v", err)
	}
	return evs
}

// checkDropped fails unless Append marked exactly the writes that want
// says as dropped.
func checkDropped(t *testing.T, writes []conveyor.Event, want ...bool) {
	t.Helper()
	for i, ev := range writes {
		if ev.Dropped != want[i] {
			t.Errorf("write %d (%s #%d of %s): Dropped = %v, want %v", i, ev.Type, ev.Seq, ev.ExecutionID, ev.Dropped, want[i])
		}
	}
}

// events returns all events of an execution.
func (f *fixture) events(id string) []conveyor.Event {
	f.t.Helper()
	evs, err := f.s.Events(f.ctx, id, 0, conveyor.MaxListLimit)
	if err != nil {
		f.t.Fatalf("Events %s: %v", id, err)
	}
	return evs
}

func (f *fixture) cancel(id string, now time.Time) (*conveyor.Execution, *conveyor.Event) {
	f.t.Helper()
	ex, ev, err := f.s.Cancel(f.ctx, id, now)
	if err != nil {
		f.t.Fatalf("Cancel %s: %v", id, err)
	}
	return ex, ev
}

func (f *fixture) list(lf conveyor.ListFilter) *conveyor.ExecutionPage {
	f.t.Helper()
	page, err := f.s.ListExecutions(f.ctx, lf)
	if err != nil {
		f.t.Fatalf("ListExecutions(%+v): %v", lf, err)
	}
	if page == nil || page.Executions == nil {
		f.t.Fatalf("ListExecutions(%+v) = %+v, want a non-nil page with a non-nil slice", lf, page)
	}
	return page
}

// wantCode fails unless err carries the code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := conveyor.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// Event builders. Each sets Attempt from ex, the writer's claimed attempt.

func progressEvent(ex *conveyor.Execution, seq int64, p *conveyor.Progress) conveyor.Event {
	return conveyor.Event{Type: conveyor.EventProgress, ExecutionID: ex.ID, Seq: seq, Time: at(100 + int(seq)), Attempt: ex.Attempt, Progress: p}
}

func finalEvent(ex *conveyor.Execution, typ conveyor.EventType, seq int64) conveyor.Event {
	return conveyor.Event{Type: typ, ExecutionID: ex.ID, Seq: seq, Time: at(100 + int(seq)), Attempt: ex.Attempt}
}

// progress returns a fully populated progress at step of total.
func progress(step, total int, pct float64) *conveyor.Progress {
	eta := float64(total-step) * 1.5
	return &conveyor.Progress{
		CurrentStep:     step,
		TotalSteps:      &total,
		Percentage:      &pct,
		CurrentStepName: fmt.Sprintf("step-%d", step),
		Message:         "working on it",
		Metrics:         map[string]float64{"rows": float64(step) * 100, "ratio": 0.25},
		ETASeconds:      &eta,
	}
}

func ptr[T any](v T) *T { return &v }

// Comparisons. JSON is compared by meaning and times as instants that must
// come back in UTC.

func checkExecution(t *testing.T, got, want *conveyor.Execution) {
	t.Helper()
	if got == nil {
		t.Fatalf("execution %s is nil", want.ID)
	}
	for _, d := range diffExecution(got, want) {
		t.Errorf("execution %s: %s", want.ID, d)
	}
}

func diffExecution(got, want *conveyor.Execution) []string {
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.Pipeline != want.Pipeline {
		add("Pipeline", got.Pipeline, want.Pipeline)
	}
	if got.Status != want.Status {
		add("Status", got.Status, want.Status)
	}
	if !jsonEqual(got.Input, want.Input) {
		add("Input", string(got.Input), string(want.Input))
	}
	if !reflect.DeepEqual(got.Progress, want.Progress) {
		add("Progress", toJSON(got.Progress), toJSON(want.Progress))
	}
	if !jsonEqual(got.Result, want.Result) {
		add("Result", string(got.Result), string(want.Result))
	}
	if !reflect.DeepEqual(got.Error, want.Error) {
		add("Error", toJSON(got.Error), toJSON(want.Error))
	}
	if len(got.Tags) != len(want.Tags) || len(got.Tags) > 0 && !reflect.DeepEqual(got.Tags, want.Tags) {
		add("Tags", got.Tags, want.Tags)
	}
	d = append(d, diffStringPtr("BatchID", got.BatchID, want.BatchID)...)
	d = append(d, diffStringPtr("RetryOf", got.RetryOf, want.RetryOf)...)
	if got.Attempt != want.Attempt {
		add("Attempt", got.Attempt, want.Attempt)
	}
	d = append(d, diffTime("CreatedAt", got.CreatedAt, want.CreatedAt)...)
	d = append(d, diffTimePtr("StartedAt", got.StartedAt, want.StartedAt)...)
	d = append(d, diffTimePtr("FinishedAt", got.FinishedAt, want.FinishedAt)...)
	if got.LastSeq != want.LastSeq {
		add("LastSeq", got.LastSeq, want.LastSeq)
	}
	if got.CancelRequested != want.CancelRequested {
		add("CancelRequested", got.CancelRequested, want.CancelRequested)
	}
	if !jsonEqual(got.Data, want.Data) {
		add("Data", string(got.Data), string(want.Data))
	}
	d = append(d, diffTimePtr("StalledSince", got.StalledSince, want.StalledSince)...)
	if got.ResumeStep != want.ResumeStep {
		add("ResumeStep", got.ResumeStep, want.ResumeStep)
	}
	if !jsonEqual(got.Checkpoint, want.Checkpoint) {
		add("Checkpoint", string(got.Checkpoint), string(want.Checkpoint))
	}
	d = append(d, diffTimePtr("RunAt", got.RunAt, want.RunAt)...)
	d = append(d, diffTimePtr("RetryAt", got.RetryAt, want.RetryAt)...)
	return d
}

// diffStringPtr compares optional strings such as ids of other records.
func diffStringPtr(field string, got, want *string) []string {
	if (got == nil) != (want == nil) || got != nil && *got != *want {
		return []string{fmt.Sprintf("%s = %s, want %s", field, strPtr(got), strPtr(want))}
	}
	return nil
}

func strPtr(s *string) string {
	if s == nil {
		return "nil"
	}
	return *s
}

func checkEvent(t *testing.T, got, want conveyor.Event) {
	t.Helper()
	for _, d := range diffEvent(got, want) {
		t.Errorf("event %s #%d: %s", want.ExecutionID, want.Seq, d)
	}
}

func checkEvents(t *testing.T, got, want []conveyor.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %v, want %d %v", len(got), eventSeqs(got), len(want), eventSeqs(want))
	}
	for i := range want {
		checkEvent(t, got[i], want[i])
	}
}

func diffEvent(got, want conveyor.Event) []string {
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.Type != want.Type {
		add("Type", got.Type, want.Type)
	}
	if got.ExecutionID != want.ExecutionID {
		add("ExecutionID", got.ExecutionID, want.ExecutionID)
	}
	if got.Seq != want.Seq {
		add("Seq", got.Seq, want.Seq)
	}
	d = append(d, diffTime("Time", got.Time, want.Time)...)
	if got.Attempt != want.Attempt {
		add("Attempt", got.Attempt, want.Attempt)
	}
	if got.Status != want.Status {
		add("Status", got.Status, want.Status)
	}
	if !reflect.DeepEqual(got.Progress, want.Progress) {
		add("Progress", toJSON(got.Progress), toJSON(want.Progress))
	}
	if !reflect.DeepEqual(got.Error, want.Error) {
		add("Error", toJSON(got.Error), toJSON(want.Error))
	}
	if !jsonEqual(got.Result, want.Result) {
		add("Result", string(got.Result), string(want.Result))
	}
	if !jsonEqual(got.Data, want.Data) {
		add("Data", string(got.Data), string(want.Data))
	}
	if got.Step != want.Step {
		add("Step", got.Step, want.Step)
	}
	d = append(d, diffTimePtr("Since", got.Since, want.Since)...)
	d = append(d, diffTimePtr("RetryAt", got.RetryAt, want.RetryAt)...)
	return d
}

func diffTime(field string, got, want time.Time) []string {
	var d []string
	if !got.Equal(want) {
		d = append(d, fmt.Sprintf("%s = %s, want %s", field, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano)))
	}
	if !got.IsZero() && got.Location() != time.UTC {
		d = append(d, fmt.Sprintf("%s is in %s, want UTC", field, got.Location()))
	}
	return d
}

func diffTimePtr(field string, got, want *time.Time) []string {
	switch {
	case got == nil && want == nil:
		return nil
	case got == nil:
		return []string{fmt.Sprintf("%s = nil, want %s", field, want.Format(time.RFC3339Nano))}
	case want == nil:
		return []string{fmt.Sprintf("%s = %s, want nil", field, got.Format(time.RFC3339Nano))}
	}
	return diffTime(field, *got, *want)
}

// jsonEqual reports whether a and b are the same JSON value; empty means
// no value and equals only empty.
func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

func claimIDs(claims []conveyor.Claim) []string {
	ids := make([]string, len(claims))
	for i, c := range claims {
		ids[i] = c.Execution.ID
	}
	return ids
}

func executionIDs(exs []*conveyor.Execution) []string {
	ids := make([]string, len(exs))
	for i, ex := range exs {
		ids[i] = ex.ID
	}
	return ids
}

func eventSeqs(evs []conveyor.Event) []int64 {
	seqs := make([]int64, len(evs))
	for i, ev := range evs {
		seqs[i] = ev.Seq
	}
	return seqs
}

// reversed returns the ids of exs, newest first.
func reversed(exs []*conveyor.Execution) []string {
	ids := executionIDs(exs)
	slices.Reverse(ids)
	return ids
}

// event returns the event of an execution with the given seq.
func (f *fixture) event(id string, seq int64) conveyor.Event {
	f.t.Helper()
	evs := f.eventsAfter(id, seq-1)
	if len(evs) == 0 || evs[0].Seq != seq {
		f.t.Fatalf("execution %s has no event #%d (events after %d: %v)", id, seq, seq-1, eventSeqs(evs))
	}
	return evs[0]
}

// eventsAfter returns the events of an execution after seq.
func (f *fixture) eventsAfter(id string, after int64) []conveyor.Event {
	f.t.Helper()
	evs, err := f.s.Events(f.ctx, id, after, conveyor.MaxListLimit)
	if err != nil {
		f.t.Fatalf("Events %s after %d: %v", id, after, err)
	}
	return evs
}
