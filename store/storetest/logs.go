package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

func (f *fixture) logs(id string) []conveyor.LogLine {
	f.t.Helper()
	lines, err := store.AllLogs(f.ctx, f.s, id)
	if err != nil {
		f.t.Fatalf("Logs %s: %v", id, err)
	}
	return lines
}

func (f *fixture) appendLogs(lines []conveyor.LogLine) {
	f.t.Helper()
	if err := f.s.AppendLogs(f.ctx, lines); err != nil {
		f.t.Fatalf("AppendLogs: %v", err)
	}
}

// logLines returns lines from..to-1 of an execution; their text and time
// say their number.
func logLines(id string, from, to int) []conveyor.LogLine {
	var lines []conveyor.LogLine
	for i := from; i < to; i++ {
		lines = append(lines, conveyor.LogLine{
			ExecutionID: id,
			Time:        base.Add(time.Duration(i) * time.Millisecond),
			Attempt:     1 + i/500,
			Step:        "load",
			Stream:      []string{"stdout", "stderr"}[i%2],
			Line:        fmt.Sprintf("line %d", i),
		})
	}
	return lines
}

func checkLogs(t *testing.T, id string, got, want []conveyor.LogLine) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d log lines, want %d", id, len(got), len(want))
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ExecutionID != w.ExecutionID || !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC ||
			g.Attempt != w.Attempt || g.Step != w.Step || g.Stream != w.Stream || g.Line != w.Line {
			t.Errorf("%s: log line %d = %+v, want %+v (in UTC)", id, i, g, w)
			return
		}
	}
}

var logsCases = []testCase{
	{"RoundTrip", func(f *fixture) {
		a, b := f.create("alpha"), f.create("alpha")
		// A time outside UTC comes back as the same instant in UTC; a line
		// may be empty and may have no step or stream (a handler's log).
		a1 := conveyor.LogLine{ExecutionID: a.ID, Time: time.Date(2025, 6, 1, 14, 0, 0, 5000, time.FixedZone("CEST", 2*3600)), Attempt: 1, Step: "fetch", Stream: "stdout", Line: "GET https://example.com 200 — ✓"}
		b1 := conveyor.LogLine{ExecutionID: b.ID, Time: at(1), Step: "fetch", Stream: "stderr", Line: "warning: slow"}
		a2 := conveyor.LogLine{ExecutionID: a.ID, Time: at(2), Line: ""}
		a3 := conveyor.LogLine{ExecutionID: a.ID, Time: at(1), Attempt: 2, Step: "parse", Stream: "stderr", Line: "\ttabs and \"quotes\" and \\"}
		f.appendLogs([]conveyor.LogLine{a1, b1, a2})
		f.appendLogs([]conveyor.LogLine{a3})

		// Oldest first means in the order appended, whatever the times say.
		wantA1 := a1
		wantA1.Time = a1.Time.UTC()
		checkLogs(f.t, a.ID, f.logs(a.ID), []conveyor.LogLine{wantA1, a2, a3})
		checkLogs(f.t, b.ID, f.logs(b.ID), []conveyor.LogLine{b1})
	}},

	{"KeepsNewest", func(f *fixture) {
		a, b, c := f.create("alpha"), f.create("alpha"), f.create("alpha")
		// Over several batches, interleaved with another execution's lines.
		f.appendLogs(logLines(a.ID, 0, 700))
		f.appendLogs(append(logLines(b.ID, 0, 3), logLines(a.ID, 700, 1100)...))
		f.appendLogs(logLines(a.ID, 1100, 1250))
		checkLogs(f.t, a.ID, f.logs(a.ID), logLines(a.ID, 1250-conveyor.MaxLogLines, 1250))
		checkLogs(f.t, b.ID, f.logs(b.ID), logLines(b.ID, 0, 3))

		// In one batch larger than the limit.
		f.appendLogs(logLines(c.ID, 0, conveyor.MaxLogLines+200))
		checkLogs(f.t, c.ID, f.logs(c.ID), logLines(c.ID, 200, conveyor.MaxLogLines+200))

		// Exactly at the limit nothing is dropped.
		d := f.create("alpha")
		f.appendLogs(logLines(d.ID, 0, conveyor.MaxLogLines))
		checkLogs(f.t, d.ID, f.logs(d.ID), logLines(d.ID, 0, conveyor.MaxLogLines))
	}},

	{"Pages", func(f *fixture) {
		// Pages of about maxBytes, at least one line each, continue
		// from Last; Last keeps rising though old lines are trimmed.
		ex := f.create("alpha")
		lines := logLines(ex.ID, 0, 10)
		lines[4].Line = strings.Repeat("x", 500) // larger than a page alone
		f.appendLogs(lines)
		budget := 3 * lines[0].Bytes()
		var got [][]string
		after := int64(0)
		for {
			page, err := f.s.Logs(f.ctx, ex.ID, after, budget)
			if err != nil {
				f.t.Fatal(err)
			}
			var texts []string
			prev := after
			for _, l := range page.Lines {
				texts = append(texts, l.Line[:min(len(l.Line), 6)])
				// Each line carries its number: a follower resumes after it.
				if l.Number <= prev {
					f.t.Fatalf("line %q is numbered %d, after %d", l.Line, l.Number, prev)
				}
				prev = l.Number
			}
			if len(page.Lines) > 0 && page.Last != prev {
				f.t.Fatalf("page ends at %d, its last line is numbered %d", page.Last, prev)
			}
			got = append(got, texts)
			if page.Last <= after && len(page.Lines) > 0 || page.Last < after {
				f.t.Fatalf("page after %d ends at %d", after, page.Last)
			}
			after = page.Last
			if !page.More {
				break
			}
		}
		want := [][]string{{"line 0", "line 1", "line 2"}, {"line 3"}, {"xxxxxx"}, {"line 5", "line 6", "line 7"}, {"line 8", "line 9"}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			f.t.Errorf("pages %q, want %q", got, want)
		}
		// Nothing new: an empty page at the same place.
		if page, err := f.s.Logs(f.ctx, ex.ID, after, budget); err != nil || len(page.Lines) != 0 || page.Last != after || page.More {
			f.t.Errorf("Logs after the last line = %+v, %v; want an empty page at %d", page, err, after)
		}
		// New lines follow, also once the oldest are trimmed.
		f.appendLogs(logLines(ex.ID, 10, conveyor.MaxLogLines+10))
		page, err := f.s.Logs(f.ctx, ex.ID, after, conveyor.MaxLogPageBytes)
		if err != nil || len(page.Lines) == 0 || page.Lines[0].Line != "line 10" {
			f.t.Fatalf("Logs after %d once more were written = %+v, %v; want line 10 first", after, page, err)
		}
		checkLogs(f.t, ex.ID, f.logs(ex.ID), logLines(ex.ID, 10, conveyor.MaxLogLines+10))
	}},

	{"UnknownExecution", func(f *fixture) {
		// Lines of an unknown execution are dropped, not an error, so they
		// cannot sink the rest of the batch.
		ex := f.create("alpha")
		var lines []conveyor.LogLine
		for _, id := range unknownIDs {
			lines = append(lines, logLines(id, 0, 2)...)
		}
		lines = append(lines, logLines(ex.ID, 0, 2)...)
		f.appendLogs(lines)
		checkLogs(f.t, ex.ID, f.logs(ex.ID), logLines(ex.ID, 0, 2))
		for _, id := range unknownIDs {
			if got := f.logs(id); len(got) != 0 {
				f.t.Errorf("Logs(%s) = %d lines, want none", id, len(got))
			}
		}
	}},

	{"None", func(f *fixture) {
		ex := f.create("alpha")
		f.appendLogs(nil)
		if got := f.logs(ex.ID); len(got) != 0 {
			f.t.Errorf("Logs of an execution without output = %d lines, want none", len(got))
		}
	}},
}
