package storetest

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-run/conveyor"
)

var createCases = []testCase{
	{"RoundTrip", func(f *fixture) {
		ex := f.newExecution("alpha")
		ex.Input = json.RawMessage(`{"name": "r\u00e9sum\u00e9 ✓", "n": [1, 2.5, -3e3, {"deep": null}], "ok": true, "nested": {"a": {"b": []}}}`)
		// A creation time outside UTC comes back as the same instant in UTC.
		ex.CreatedAt = time.Date(2025, 6, 1, 14, 30, 15, 987654000, time.FixedZone("CEST", 2*3600))
		if err := f.s.CreateExecution(f.ctx, ex); err != nil {
			f.t.Fatalf("CreateExecution: %v", err)
		}
		want := *ex
		want.CreatedAt = ex.CreatedAt.UTC()
		checkExecution(f.t, f.get(ex.ID), &want)
	}},

	{"EmptyObjectInput", func(f *fixture) {
		ex := f.newExecution("alpha")
		ex.Input = json.RawMessage(`{}`)
		if err := f.s.CreateExecution(f.ctx, ex); err != nil {
			f.t.Fatalf("CreateExecution: %v", err)
		}
		checkExecution(f.t, f.get(ex.ID), ex)
	}},

	{"RetryOf", func(f *fixture) {
		// A retry as new names the execution it retries; get, list and
		// claim all return it, alone or in a batch.
		orig := f.create("alpha")
		retry := f.newExecution("alpha")
		retry.RetryOf = &orig.ID
		if err := f.s.CreateExecution(f.ctx, retry); err != nil {
			f.t.Fatalf("CreateExecution: %v", err)
		}
		more := f.newExecutions(2, "alpha")
		more[1].RetryOf = &retry.ID
		f.createExecutions(more)
		checkExecution(f.t, f.get(orig.ID), orig)
		checkExecution(f.t, f.get(retry.ID), retry)
		checkExecution(f.t, f.get(more[0].ID), more[0])
		checkExecution(f.t, f.get(more[1].ID), more[1])
		for _, ex := range f.list(conveyor.ListFilter{}).Executions {
			if ex.ID == retry.ID && (ex.RetryOf == nil || *ex.RetryOf != orig.ID) {
				f.t.Errorf("listed %s: RetryOf = %v, want %s", ex.ID, ex.RetryOf, orig.ID)
			}
		}
		for _, c := range f.claim(10, at(100)) {
			if c.Execution.ID == more[1].ID && (c.Execution.RetryOf == nil || *c.Execution.RetryOf != retry.ID) {
				f.t.Errorf("claimed %s: RetryOf = %v, want %s", c.Execution.ID, c.Execution.RetryOf, retry.ID)
			}
		}
	}},

	{"DuplicateID", func(f *fixture) {
		ex := f.create("alpha")
		dup := f.newExecution("beta")
		dup.ID = ex.ID
		wantCode(f.t, "CreateExecution of an existing id", f.s.CreateExecution(f.ctx, dup), conveyor.ECONFLICT)
		checkExecution(f.t, f.get(ex.ID), ex)
	}},

	{"Invalid", func(f *fixture) {
		for _, c := range invalidChanges {
			ex := f.newExecution("alpha")
			c.change(ex)
			wantCode(f.t, "CreateExecution with "+c.name, f.s.CreateExecution(f.ctx, ex), conveyor.EINVALID)
			if ex.ID != "" {
				_, err := f.s.GetExecution(f.ctx, ex.ID)
				wantCode(f.t, "GetExecution after a rejected create ("+c.name+")", err, conveyor.ENOTFOUND)
			}
		}
		if page := f.list(conveyor.ListFilter{}); len(page.Executions) != 0 {
			f.t.Errorf("rejected creates left %v", executionIDs(page.Executions))
		}
	}},
}

// invalidChanges each make a new execution one that must not be created.
var invalidChanges = []struct {
	name   string
	change func(ex *conveyor.Execution)
}{
	{"no id", func(ex *conveyor.Execution) { ex.ID = "" }},
	{"running", func(ex *conveyor.Execution) { ex.Status = conveyor.StatusRunning }},
	{"completed", func(ex *conveyor.Execution) { ex.Status = conveyor.StatusCompleted }},
	{"no status", func(ex *conveyor.Execution) { ex.Status = "" }},
	{"attempt 1", func(ex *conveyor.Execution) { ex.Attempt = 1 }},
	{"events", func(ex *conveyor.Execution) { ex.LastSeq = 3 }},
	{"no creation time", func(ex *conveyor.Execution) { ex.CreatedAt = time.Time{} }},
	{"input not JSON", func(ex *conveyor.Execution) { ex.Input = json.RawMessage(`{"a":`) }},
	{"bad tag key", func(ex *conveyor.Execution) { ex.Tags = conveyor.Tags{"Bad Key": "v"} }},
	{"tag value too long", func(ex *conveyor.Execution) { ex.Tags = conveyor.Tags{"k": strings.Repeat("v", 256)} }},
	{"retry_of not UTF-8", func(ex *conveyor.Execution) { bad := "a\xff"; ex.RetryOf = &bad }},
}

var createBatchCases = []testCase{
	{"RoundTrip", func(f *fixture) {
		exs := f.newExecutions(3, "alpha")
		exs[0].Input = json.RawMessage(`{"name": "r\u00e9sum\u00e9 ✓", "n": [1, 2.5, -3e3, {"deep": null}]}`)
		exs[1].Input, exs[1].Pipeline = nil, "beta"
		exs[2].CreatedAt = time.Date(2025, 6, 1, 14, 30, 15, 987654000, time.FixedZone("CEST", 2*3600))
		f.createExecutions(exs)
		for _, ex := range exs {
			want := *ex
			want.CreatedAt = ex.CreatedAt.UTC()
			checkExecution(f.t, f.get(ex.ID), &want)
		}
	}},

	{"SliceOrder", func(f *fixture) {
		// Submission order is the order of the slice, not of ids or
		// creation times, and carries on across calls.
		first := f.create("alpha")
		exs := f.newExecutions(4, "alpha")
		for i, ex := range exs {
			ex.ID = executionID(900 - i)
			ex.CreatedAt = at(900 - i)
		}
		f.createExecutions(exs)
		last := f.create("alpha")
		all := append(append([]*conveyor.Execution{first}, exs...), last)
		if got, want := executionIDs(f.list(conveyor.ListFilter{}).Executions), reversed(all); !slices.Equal(got, want) {
			f.t.Errorf("ListExecutions = %v, want %v", got, want)
		}
		if got, want := claimIDs(f.claim(10, at(1000))), executionIDs(all); !slices.Equal(got, want) {
			f.t.Errorf("ClaimPending = %v, want %v", got, want)
		}
	}},

	{"ExistingID", func(f *fixture) {
		old := f.create("alpha")
		exs := f.newExecutions(3, "beta")
		dup := *exs[1]
		dup.ID = old.ID
		batch := []*conveyor.Execution{exs[0], &dup, exs[2]}
		err := f.s.CreateExecutions(f.ctx, batch)
		wantCode(f.t, "CreateExecutions with an existing id", err, conveyor.ECONFLICT)
		if msg := conveyor.ErrorMessage(err); !strings.Contains(msg, old.ID) {
			f.t.Errorf("conflict %q does not name %s", msg, old.ID)
		}
		f.wantNone(exs...)
		checkExecution(f.t, f.get(old.ID), old)
		// Nothing of the failed batch is left over: the rest goes in.
		f.createExecutions(exs)
		if got, want := executionIDs(f.list(conveyor.ListFilter{}).Executions), reversed(append([]*conveyor.Execution{old}, exs...)); !slices.Equal(got, want) {
			f.t.Errorf("ListExecutions = %v, want %v", got, want)
		}
	}},

	{"DuplicateInBatch", func(f *fixture) {
		exs := f.newExecutions(3, "alpha")
		dup := *exs[0]
		dup.Pipeline = "beta"
		batch := slices.Concat(exs, []*conveyor.Execution{&dup})
		err := f.s.CreateExecutions(f.ctx, batch)
		wantCode(f.t, "CreateExecutions with an id twice", err, conveyor.ECONFLICT)
		if msg := conveyor.ErrorMessage(err); !strings.Contains(msg, dup.ID) {
			f.t.Errorf("conflict %q does not name %s", msg, dup.ID)
		}
		f.wantNone(exs...)
		if page := f.list(conveyor.ListFilter{}); len(page.Executions) != 0 {
			f.t.Errorf("a rejected batch left %v", executionIDs(page.Executions))
		}
	}},

	{"Invalid", func(f *fixture) {
		for _, c := range invalidChanges {
			exs := f.newExecutions(3, "alpha")
			c.change(exs[1])
			wantCode(f.t, "CreateExecutions with "+c.name, f.s.CreateExecutions(f.ctx, exs), conveyor.EINVALID)
			f.wantNone(exs...)
		}
		wantCode(f.t, "CreateExecutions with a nil execution",
			f.s.CreateExecutions(f.ctx, []*conveyor.Execution{f.newExecution("alpha"), nil}), conveyor.EINVALID)
		if page := f.list(conveyor.ListFilter{}); len(page.Executions) != 0 {
			f.t.Errorf("rejected batches left %v", executionIDs(page.Executions))
		}
	}},

	{"Empty", func(f *fixture) {
		for _, exs := range [][]*conveyor.Execution{nil, {}} {
			if err := f.s.CreateExecutions(f.ctx, exs); err != nil {
				f.t.Errorf("CreateExecutions(%#v) = %v, want nil", exs, err)
			}
		}
		if page := f.list(conveyor.ListFilter{}); len(page.Executions) != 0 {
			f.t.Errorf("empty batches left %v", executionIDs(page.Executions))
		}
	}},

	{"Large", func(f *fixture) {
		// More than a page of ListExecutions, and more than the engine
		// puts in one batch.
		exs := f.newExecutions(2*conveyor.MaxListLimit+1, "alpha")
		f.createExecutions(exs)
		checkPages(f, conveyor.ListFilter{Limit: conveyor.MaxListLimit}, reversed(exs), []int{conveyor.MaxListLimit, conveyor.MaxListLimit, 1})
	}},
}

// newExecutions returns n new executions, not yet stored.
func (f *fixture) newExecutions(n int, pipeline string) []*conveyor.Execution {
	exs := make([]*conveyor.Execution, n)
	for i := range exs {
		exs[i] = f.newExecution(pipeline)
	}
	return exs
}

func (f *fixture) createExecutions(exs []*conveyor.Execution) {
	f.t.Helper()
	if err := f.s.CreateExecutions(f.ctx, exs); err != nil {
		f.t.Fatalf("CreateExecutions of %d: %v", len(exs), err)
	}
}

// wantNone fails unless none of exs is stored; those without an id are
// skipped.
func (f *fixture) wantNone(exs ...*conveyor.Execution) {
	f.t.Helper()
	for _, ex := range exs {
		if ex.ID == "" {
			continue
		}
		_, err := f.s.GetExecution(f.ctx, ex.ID)
		wantCode(f.t, "GetExecution "+ex.ID+" of a rejected batch", err, conveyor.ENOTFOUND)
	}
}

var getCases = []testCase{
	{"Unknown", func(f *fixture) {
		f.create("alpha")
		for _, id := range append(unknownIDs, "") {
			ex, err := f.s.GetExecution(f.ctx, id)
			wantCode(f.t, "GetExecution("+id+")", err, conveyor.ENOTFOUND)
			if ex != nil {
				f.t.Errorf("GetExecution(%q) = %+v, want nil", id, ex)
			}
		}
	}},

	{"ReturnsCopies", func(f *fixture) {
		// Changing a returned execution does not change the stored one.
		ex := f.create("alpha")
		got := f.get(ex.ID)
		got.Status, got.Pipeline = conveyor.StatusFailed, "changed"
		checkExecution(f.t, f.get(ex.ID), ex)
	}},
}

var listCases = []testCase{
	{"FinishedSince", func(f *fixture) {
		early, late, running := f.start("alpha"), f.start("alpha"), f.start("alpha")
		f.append(finalEvent(early, conveyor.EventCompleted, 2)) // at(102)
		failed := finalEvent(late, conveyor.EventFailed, 5)     // at(105)
		failed.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "no")
		f.append(failed)
		_ = running
		got := executionIDs(f.list(conveyor.ListFilter{FinishedSince: at(104)}).Executions)
		if !slices.Equal(got, []string{late.ID}) {
			f.t.Errorf("finished since 104: %v, want only %s", got, late.ID)
		}
		got = executionIDs(f.list(conveyor.ListFilter{FinishedSince: at(102), Pipeline: "alpha"}).Executions)
		if !slices.Equal(got, []string{late.ID, early.ID}) {
			f.t.Errorf("finished since 102 (inclusive): %v, want %s and %s", got, late.ID, early.ID)
		}
	}},

	{"Empty", func(f *fixture) {
		page := f.list(conveyor.ListFilter{})
		if len(page.Executions) != 0 || page.NextCursor != nil {
			f.t.Errorf("empty store: got %v, cursor %v", executionIDs(page.Executions), page.NextCursor)
		}
	}},

	{"NewestFirst", func(f *fixture) {
		var exs []*conveyor.Execution
		for i := range 5 {
			exs = append(exs, f.create([]string{"alpha", "beta"}[i%2]))
		}
		page := f.list(conveyor.ListFilter{})
		if got, want := executionIDs(page.Executions), reversed(exs); !slices.Equal(got, want) {
			f.t.Fatalf("ids = %v, want %v", got, want)
		}
		if page.NextCursor != nil {
			f.t.Errorf("NextCursor = %q on the only page, want nil", *page.NextCursor)
		}
		// Without their inputs unless asked for.
		for i, got := range page.Executions {
			want := *exs[len(exs)-1-i]
			want.Input = nil
			checkExecution(f.t, got, &want)
		}
		for i, got := range f.list(conveyor.ListFilter{WithInput: true, WithResult: true}).Executions {
			checkExecution(f.t, got, exs[len(exs)-1-i])
		}
	}},

	{"WithResult", func(f *fixture) {
		ex := f.start("alpha")
		done := finalEvent(ex, conveyor.EventCompleted, 2)
		done.Result = json.RawMessage(`{"rows": 3}`)
		f.append(done)
		for _, c := range []struct {
			filter        conveyor.ListFilter
			input, result bool
		}{
			{conveyor.ListFilter{}, false, false},
			{conveyor.ListFilter{WithInput: true}, true, false},
			{conveyor.ListFilter{WithResult: true}, false, true},
			{conveyor.ListFilter{WithInput: true, WithResult: true, Limit: conveyor.MaxPayloadListLimit}, true, true},
		} {
			got := f.list(c.filter).Executions[0]
			if (got.Input != nil) != c.input || (got.Result != nil) != c.result {
				f.t.Errorf("ListExecutions(%+v): input %s, result %s; want input %v, result %v", c.filter, got.Input, got.Result, c.input, c.result)
			}
			if c.result && !jsonEqual(got.Result, done.Result) {
				f.t.Errorf("ListExecutions(%+v): result %s, want %s", c.filter, got.Result, done.Result)
			}
		}
		// Payloads are large: a page of them is smaller.
		for _, lf := range []conveyor.ListFilter{{WithInput: true, Limit: conveyor.MaxPayloadListLimit + 1}, {WithResult: true, Limit: conveyor.MaxListLimit}} {
			if _, err := f.s.ListExecutions(f.ctx, lf); conveyor.ErrorCode(err) != conveyor.EINVALID {
				f.t.Errorf("ListExecutions(%+v) = %v, want invalid", lf, err)
			}
		}
	}},

	{"Filters", func(f *fixture) {
		a1, b1 := f.create("alpha"), f.create("beta")
		a2, b2 := f.create("alpha"), f.create("beta")
		a3, b3 := f.create("alpha"), f.create("beta")
		f.claim(2, at(50)) // a1, b1 running
		f.cancel(a2.ID, at(51))
		ids := func(exs ...*conveyor.Execution) []string { return executionIDs(exs) }
		cases := []struct {
			filter conveyor.ListFilter
			want   []string
		}{
			{conveyor.ListFilter{Status: conveyor.StatusPending}, ids(b3, a3, b2)},
			{conveyor.ListFilter{Status: conveyor.StatusRunning}, ids(b1, a1)},
			{conveyor.ListFilter{Status: conveyor.StatusCancelled}, ids(a2)},
			{conveyor.ListFilter{Status: conveyor.StatusCompleted}, ids()},
			{conveyor.ListFilter{Pipeline: "alpha"}, ids(a3, a2, a1)},
			{conveyor.ListFilter{Pipeline: "beta"}, ids(b3, b2, b1)},
			{conveyor.ListFilter{Pipeline: "gamma"}, ids()},
			{conveyor.ListFilter{Pipeline: "alpha", Status: conveyor.StatusPending}, ids(a3)},
			{conveyor.ListFilter{Pipeline: "beta", Status: conveyor.StatusRunning}, ids(b1)},
			{conveyor.ListFilter{Pipeline: "beta", Status: conveyor.StatusCancelled}, ids()},
		}
		for _, c := range cases {
			page := f.list(c.filter)
			if got := executionIDs(page.Executions); !slices.Equal(got, c.want) {
				f.t.Errorf("ListExecutions(%+v) = %v, want %v", c.filter, got, c.want)
			}
			if page.NextCursor != nil {
				f.t.Errorf("ListExecutions(%+v): NextCursor = %q, want nil", c.filter, *page.NextCursor)
			}
		}
	}},

	{"Pages", func(f *fixture) {
		exs := f.createN(23, "alpha")
		checkPages(f, conveyor.ListFilter{Limit: 5}, reversed(exs), []int{5, 5, 5, 5, 3})
	}},

	{"PagesExactMultiple", func(f *fixture) {
		// A last page that is full still says there is no next one.
		exs := f.createN(20, "alpha")
		checkPages(f, conveyor.ListFilter{Limit: 5}, reversed(exs), []int{5, 5, 5, 5})
	}},

	{"PagesFiltered", func(f *fixture) {
		var alphas []*conveyor.Execution
		for i := range 15 {
			ex := f.create([]string{"alpha", "beta", "gamma"}[i%3])
			if ex.Pipeline == "alpha" {
				alphas = append(alphas, ex)
			}
		}
		checkPages(f, conveyor.ListFilter{Pipeline: "alpha", Limit: 2}, reversed(alphas), []int{2, 2, 1})
		checkPages(f, conveyor.ListFilter{Status: conveyor.StatusPending, Limit: 4}, reversed(f.allCreated()), []int{4, 4, 4, 3})
	}},

	{"CursorIsStable", func(f *fixture) {
		// Executions created between two pages do not shift the next page.
		exs := f.createN(6, "alpha")
		first := f.list(conveyor.ListFilter{Limit: 3})
		if first.NextCursor == nil {
			f.t.Fatal("NextCursor = nil after the first of two pages")
		}
		f.createN(2, "alpha")
		second := f.list(conveyor.ListFilter{Limit: 3, Cursor: *first.NextCursor})
		if got, want := executionIDs(second.Executions), reversed(exs[:3]); !slices.Equal(got, want) {
			f.t.Errorf("second page = %v, want %v", got, want)
		}
		if second.NextCursor != nil {
			f.t.Errorf("NextCursor = %q on the last page, want nil", *second.NextCursor)
		}
	}},

	{"DefaultLimit", func(f *fixture) {
		exs := f.createN(conveyor.DefaultListLimit+1, "alpha")
		checkPages(f, conveyor.ListFilter{}, reversed(exs), []int{conveyor.DefaultListLimit, 1})
	}},

	{"Limits", func(f *fixture) {
		f.createN(3, "alpha")
		if page := f.list(conveyor.ListFilter{Limit: conveyor.MaxListLimit}); len(page.Executions) != 3 {
			f.t.Errorf("Limit MaxListLimit: got %d executions, want 3", len(page.Executions))
		}
		if page := f.list(conveyor.ListFilter{Limit: 1}); len(page.Executions) != 1 || page.NextCursor == nil {
			f.t.Errorf("Limit 1: got %d executions and cursor %v, want 1 and a cursor", len(page.Executions), page.NextCursor)
		}
		for _, limit := range []int{-1, conveyor.MaxListLimit + 1} {
			_, err := f.s.ListExecutions(f.ctx, conveyor.ListFilter{Limit: limit})
			wantCode(f.t, "ListExecutions with a limit out of range", err, conveyor.EINVALID)
		}
	}},

	{"MalformedCursor", func(f *fixture) {
		f.createN(3, "alpha")
		for _, cursor := range []string{"not a cursor", "!!!", "%%%", "\x00\xff", "{}"} {
			_, err := f.s.ListExecutions(f.ctx, conveyor.ListFilter{Cursor: cursor})
			wantCode(f.t, "ListExecutions with cursor "+cursor, err, conveyor.EINVALID)
		}
	}},

	{"UnknownStatus", func(f *fixture) {
		_, err := f.s.ListExecutions(f.ctx, conveyor.ListFilter{Status: "sleeping"})
		wantCode(f.t, "ListExecutions with an unknown status", err, conveyor.EINVALID)
	}},
}

// allCreated returns every execution the fixture created, as stored now.
func (f *fixture) allCreated() []*conveyor.Execution {
	f.t.Helper()
	exs := make([]*conveyor.Execution, f.n)
	for i := range exs {
		exs[i] = f.get(executionID(i + 1))
	}
	return exs
}

// checkPages walks every page of lf and checks that together they are
// want, in order, without duplicates or gaps, in pages of the given sizes,
// with a cursor on every page but the last.
func checkPages(f *fixture, lf conveyor.ListFilter, want []string, sizes []int) {
	f.t.Helper()
	var got []string
	var gotSizes []int
	for range len(sizes) + 1 { // one more than needed, to catch a cursor that never ends
		page := f.list(lf)
		got = append(got, executionIDs(page.Executions)...)
		gotSizes = append(gotSizes, len(page.Executions))
		if page.NextCursor == nil {
			break
		}
		if *page.NextCursor == "" {
			f.t.Fatalf("ListExecutions(%+v): NextCursor is an empty string, want nil or a cursor", lf)
		}
		lf.Cursor = *page.NextCursor
	}
	if !slices.Equal(gotSizes, sizes) {
		f.t.Errorf("page sizes = %v, want %v", gotSizes, sizes)
	}
	if !slices.Equal(got, want) {
		f.t.Errorf("paged ids = %v, want %v", got, want)
	}
}
