package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

func (f *fixture) logs(id string) []conveyor.LogLine {
	f.t.Helper()
	lines, err := f.s.Logs(f.ctx, id)
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
