package storetest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// tagged creates an execution of pipeline with tags.
func (f *fixture) tagged(pipeline string, tags conveyor.Tags) *conveyor.Execution {
	f.t.Helper()
	ex := f.newExecution(pipeline)
	ex.Tags = tags
	if err := f.s.CreateExecution(f.ctx, ex); err != nil {
		f.t.Fatalf("CreateExecution with tags %v: %v", tags, err)
	}
	return ex
}

var tagCases = []testCase{
	{"RoundTrip", func(f *fixture) {
		full := conveyor.Tags{}
		for i := range conveyor.MaxTags {
			full[fmt.Sprintf("k%d.x-y_z", i)] = strings.Repeat("é", conveyor.MaxTagValueBytes/2)
		}
		ex := f.tagged("alpha", full)
		none := f.tagged("alpha", nil)
		empty := f.tagged("alpha", conveyor.Tags{"tenant": ""})
		for _, want := range []*conveyor.Execution{ex, none, empty} {
			checkExecution(f.t, f.get(want.ID), want)
		}
		page := f.list(conveyor.ListFilter{WithInput: true})
		checkExecution(f.t, page.Executions[2], ex)
		c := f.claimOne(ex.ID, at(50))
		if len(c.Execution.Tags) != conveyor.MaxTags {
			f.t.Errorf("claimed execution has %d tags, want %d", len(c.Execution.Tags), conveyor.MaxTags)
		}
	}},

	{"InvalidNamesTheTag", func(f *fixture) {
		for _, tc := range []struct {
			tags conveyor.Tags
			in   string
		}{
			{conveyor.Tags{"ok": "1", "Upper": "x"}, `"Upper"`},
			{conveyor.Tags{"_lead": "x"}, `"_lead"`},
			{conveyor.Tags{"": "x"}, `""`},
			{conveyor.Tags{strings.Repeat("k", 64): "x"}, "kkkk"},
			{conveyor.Tags{"k": strings.Repeat("v", 256)}, `"k"`},
			{conveyor.Tags{"k": "a\x00b"}, `"k"`},
		} {
			ex := f.newExecution("alpha")
			ex.Tags = tc.tags
			good := f.newExecution("alpha")
			err := f.s.CreateExecutions(f.ctx, []*conveyor.Execution{good, ex})
			wantCode(f.t, fmt.Sprintf("tags %v", tc.tags), err, conveyor.EINVALID)
			if msg := conveyor.ErrorMessage(err); !strings.Contains(msg, tc.in) {
				f.t.Errorf("tags %v: message %q does not name the tag (%s)", tc.tags, msg, tc.in)
			}
		}
		tooMany := conveyor.Tags{}
		for i := range conveyor.MaxTags + 1 {
			tooMany[fmt.Sprintf("k%d", i)] = "v"
		}
		ex := f.newExecution("alpha")
		ex.Tags = tooMany
		wantCode(f.t, "17 tags", f.s.CreateExecution(f.ctx, ex), conveyor.EINVALID)
		if page := f.list(conveyor.ListFilter{}); len(page.Executions) != 0 {
			f.t.Errorf("%d executions stored from refused batches", len(page.Executions))
		}
	}},

	{"Filter", func(f *fixture) {
		acmeResize := f.tagged("alpha", conveyor.Tags{"tenant": "acme", "kind": "resize"})
		acmeIndex := f.tagged("beta", conveyor.Tags{"tenant": "acme", "kind": "index"})
		other := f.tagged("alpha", conveyor.Tags{"tenant": "other", "kind": "resize"})
		f.tagged("alpha", nil)
		colon := f.tagged("alpha", conveyor.Tags{"url": "http://x:80/"})
		f.claimOne(acmeResize.ID, at(60))

		for _, tc := range []struct {
			name string
			lf   conveyor.ListFilter
			want []*conveyor.Execution
		}{
			{"one tag", conveyor.ListFilter{Tags: []conveyor.Tag{tag("tenant", "acme")}}, []*conveyor.Execution{acmeIndex, acmeResize}},
			{"all must match", conveyor.ListFilter{Tags: []conveyor.Tag{tag("tenant", "acme"), tag("kind", "resize")}}, []*conveyor.Execution{acmeResize}},
			{"same key twice", conveyor.ListFilter{Tags: []conveyor.Tag{tag("tenant", "acme"), tag("tenant", "other")}}, nil},
			{"value with colons", conveyor.ListFilter{Tags: []conveyor.Tag{tag("url", "http://x:80/")}}, []*conveyor.Execution{colon}},
			{"with status", conveyor.ListFilter{Tags: []conveyor.Tag{tag("kind", "resize")}, Status: conveyor.StatusPending}, []*conveyor.Execution{other}},
			{"with pipeline", conveyor.ListFilter{Tags: []conveyor.Tag{tag("tenant", "acme")}, Pipeline: "beta"}, []*conveyor.Execution{acmeIndex}},
			{"no match", conveyor.ListFilter{Tags: []conveyor.Tag{tag("tenant", "nobody")}}, nil},
			{"empty value", conveyor.ListFilter{Tags: []conveyor.Tag{tag("tenant", "")}}, nil},
		} {
			got := executionIDs(f.list(tc.lf).Executions)
			if want := executionIDs(tc.want); !slices.Equal(got, want) {
				f.t.Errorf("%s: listed %v, want %v", tc.name, got, want)
			}
		}
	}},

	{"FilterPages", func(f *fixture) {
		var want []string
		for i := range 7 {
			tags := conveyor.Tags{"parity": []string{"even", "odd"}[i%2]}
			ex := f.tagged("alpha", tags)
			if i%2 == 0 {
				want = append([]string{ex.ID}, want...)
			}
		}
		var got []string
		lf := conveyor.ListFilter{Tags: []conveyor.Tag{tag("parity", "even")}, Limit: 3}
		for {
			page := f.list(lf)
			got = append(got, executionIDs(page.Executions)...)
			if page.NextCursor == nil {
				break
			}
			lf.Cursor = *page.NextCursor
		}
		if !slices.Equal(got, want) {
			f.t.Errorf("paged %v, want %v", got, want)
		}
	}},

	{"BadFilter", func(f *fixture) {
		for _, bad := range []conveyor.Tag{tag("Bad", "x"), tag("", "x"), tag("k", "a\xffb")} {
			_, err := f.s.ListExecutions(f.ctx, conveyor.ListFilter{Tags: []conveyor.Tag{bad}})
			wantCode(f.t, "filter by "+bad.String(), err, conveyor.EINVALID)
		}
	}},
}

func tag(key, value string) conveyor.Tag { return conveyor.Tag{Key: key, Value: value} }
