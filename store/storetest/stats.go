package storetest

import (
	"slices"
	"strings"
	"time"

	"github.com/conveyor-run/conveyor"
)

// The dashboard's reads: counts by status, throughput per time bucket
// and the id prefix filter of ListExecutions.

var countByStatusCases = []testCase{
	{"CountsEachStatus", func(f *fixture) {
		f.wantCounts(100, conveyor.Counts{})
		exs := f.createN(7, "alpha")
		f.claim(4, at(60)) // exs[0..3] running
		f.finishAt(exs[0].ID, conveyor.EventCompleted, at(61))
		f.finishAt(exs[1].ID, conveyor.EventFailed, at(61))
		f.cancel(exs[4].ID, at(61))
		// A retry waits as pending.
		retry := finalEvent(f.get(exs[2].ID), conveyor.EventRetrying, 2)
		retry.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")
		f.append(retry)
		f.wantCounts(100, conveyor.Counts{Pending: 3, Running: 1, Completed: 1, Failed: 1, Cancelled: 1})
	}},

	{"StopsAtUpTo", func(f *fixture) {
		exs := f.createN(5, "alpha")
		f.claim(1, at(60))
		f.finishAt(exs[0].ID, conveyor.EventCompleted, at(61))
		f.wantCounts(3, conveyor.Counts{Pending: 3, Completed: 1})
		f.wantCounts(1, conveyor.Counts{Pending: 1, Completed: 1})
		f.wantCounts(0, conveyor.Counts{})
	}},
}

func (f *fixture) wantCounts(upTo int, want conveyor.Counts) {
	f.t.Helper()
	got, err := f.s.CountByStatus(f.ctx, upTo)
	if err != nil {
		f.t.Fatalf("CountByStatus(%d): %v", upTo, err)
	}
	if got != want {
		f.t.Errorf("CountByStatus(%d) = %+v, want %+v", upTo, got, want)
	}
}

// hour is the throughput cases' window: base+1h to base+2h, in minutes.
var hour = conveyor.ThroughputQuery{Since: base.Add(time.Hour), Width: time.Minute, Buckets: 60}

// minute returns the time m minutes and s seconds into hour.
func minute(m, s int) time.Time {
	return hour.Since.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
}

var throughputCases = []testCase{
	{"CountsPerBucket", func(f *fixture) {
		exs := f.createN(6, "alpha")
		// Started before the window, finished in its first minute.
		f.claimOne(exs[0].ID, hour.Since.Add(-time.Second))
		f.finishAt(exs[0].ID, conveyor.EventCompleted, hour.Since)
		// Started on the first instant of minute 3 and in minute 3, one
		// finishing in minute 59, the last of the window.
		f.claimOne(exs[1].ID, minute(3, 0))
		f.claimOne(exs[2].ID, minute(3, 59))
		f.finishAt(exs[2].ID, conveyor.EventFailed, minute(59, 59))
		// Started on the first instant after the window: not counted.
		f.claimOne(exs[3].ID, hour.Until())
		// Retried: counted once, when its last attempt started.
		f.claimOne(exs[4].ID, minute(10, 0))
		retry := conveyor.Event{Type: conveyor.EventRetrying, ExecutionID: exs[4].ID, Seq: 2, Time: minute(10, 30), Attempt: 1,
			Error: conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")}
		f.append(retry)
		f.claimOne(exs[4].ID, minute(12, 0))
		f.finishAt(exs[4].ID, conveyor.EventCompleted, minute(12, 1))
		// Cancelled while pending: finished, never started.
		f.cancel(exs[5].ID, minute(20, 0))

		bs, err := f.s.Throughput(f.ctx, hour)
		if err != nil {
			f.t.Fatalf("Throughput: %v", err)
		}
		if len(bs) != 60 {
			f.t.Fatalf("Throughput: %d buckets, want 60", len(bs))
		}
		want := map[int][2]int{0: {0, 1}, 3: {2, 0}, 12: {1, 1}, 20: {0, 1}, 59: {0, 1}}
		for i, b := range bs {
			if !b.Start.Equal(minute(i, 0)) || b.Start.Location() != time.UTC {
				f.t.Errorf("bucket %d starts at %s, want %s in UTC", i, b.Start, minute(i, 0))
			}
			if w := want[i]; b.Started != w[0] || b.Finished != w[1] {
				f.t.Errorf("bucket %d: %d started, %d finished; want %d, %d", i, b.Started, b.Finished, w[0], w[1])
			}
		}
	}},

	{"Empty", func(f *fixture) {
		f.create("alpha") // pending: neither started nor finished
		bs, err := f.s.Throughput(f.ctx, conveyor.ThroughputQuery{Since: base, Width: 10 * time.Second, Buckets: 3})
		if err != nil {
			f.t.Fatalf("Throughput: %v", err)
		}
		want := []conveyor.ThroughputBucket{{Start: base}, {Start: base.Add(10 * time.Second)}, {Start: base.Add(20 * time.Second)}}
		if !slices.EqualFunc(bs, want, func(a, b conveyor.ThroughputBucket) bool {
			return a.Start.Equal(b.Start) && a.Started == b.Started && a.Finished == b.Finished
		}) {
			f.t.Errorf("Throughput = %+v, want %+v", bs, want)
		}
	}},

	{"RefusesBadQueries", func(f *fixture) {
		for _, q := range []conveyor.ThroughputQuery{
			{Since: base, Width: 0, Buckets: 60},
			{Since: base, Width: 1500 * time.Millisecond, Buckets: 60},
			{Since: base, Width: time.Minute, Buckets: 0},
			{Since: base, Width: time.Minute, Buckets: conveyor.MaxThroughputBuckets + 1},
			{Width: time.Minute, Buckets: 60},
		} {
			_, err := f.s.Throughput(f.ctx, q)
			wantCode(f.t, "Throughput", err, conveyor.EINVALID)
		}
	}},
}

// finishAt ends the running attempt of execution id with an event of
// type typ at t.
func (f *fixture) finishAt(id string, typ conveyor.EventType, t time.Time) {
	f.t.Helper()
	ex := f.get(id)
	ev := conveyor.Event{Type: typ, ExecutionID: id, Seq: ex.LastSeq + 1, Time: t, Attempt: ex.Attempt}
	if typ == conveyor.EventFailed {
		ev.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "boom")
	}
	f.append(ev)
	if got := f.get(id); got.FinishedAt == nil || !got.FinishedAt.Equal(t) {
		f.t.Fatalf("%s finished at %v, want %s", id, got.FinishedAt, t)
	}
}

var idPrefixCases = []testCase{
	{"SelectsByPrefix", func(f *fixture) {
		exs := f.createN(25, "alpha") // ids ...000000000001 to ...000000000025
		ids := executionIDs(exs)
		for _, c := range []struct {
			prefix string
			want   []string
		}{
			{ids[0][:35], reversedIDs(ids[0:9])},  // ...00000000000: 1 to 9
			{ids[9][:35], reversedIDs(ids[9:19])}, // ...00000000001: 10 to 19
			{ids[24], []string{ids[24]}},          // a whole id
			{ids[0][:24], reversedIDs(ids)},       // every one
			{ids[0][:8], reversedIDs(ids)},        // ends before a dash
			{ids[0][:9], reversedIDs(ids)},        // ends with a dash
			{"ffffffff-ffff", nil},                // no upper bound
			{ids[0][:34] + "3", nil},              // ...00000000003: none
			{strings.Repeat("f", 8), nil},         // after every id
			{"00000000-0000-7000-8000-0000000000f", nil},
		} {
			got := executionIDs(f.list(conveyor.ListFilter{IDPrefix: c.prefix}).Executions)
			if !slices.Equal(got, c.want) {
				f.t.Errorf("IDPrefix %q: %v, want %v", c.prefix, got, c.want)
			}
		}
		// With other filters and pages.
		page := f.list(conveyor.ListFilter{IDPrefix: ids[9][:35], Limit: 4})
		if got := executionIDs(page.Executions); !slices.Equal(got, reversedIDs(ids[15:19])) || page.NextCursor == nil {
			f.t.Fatalf("first page: %v (cursor %v), want %v and a cursor", got, page.NextCursor, reversedIDs(ids[15:19]))
		}
		page = f.list(conveyor.ListFilter{IDPrefix: ids[9][:35], Limit: 4, Cursor: *page.NextCursor})
		if got := executionIDs(page.Executions); !slices.Equal(got, reversedIDs(ids[11:15])) {
			f.t.Errorf("second page: %v, want %v", got, reversedIDs(ids[11:15]))
		}
		if got := executionIDs(f.list(conveyor.ListFilter{IDPrefix: ids[9][:35], Status: conveyor.StatusRunning}).Executions); len(got) != 0 {
			f.t.Errorf("running with the prefix: %v, want none", got)
		}
	}},

	{"OnlyIDsThatStartWithIt", func(f *fixture) {
		// An id of another shape can sort inside the prefix's range
		// (":" comes between "9" and "a") without starting with it.
		odd := f.newExecution("alpha")
		odd.ID = "00000000-0000-7000-8000-0000000000:1"
		if err := f.s.CreateExecution(f.ctx, odd); err != nil {
			f.t.Fatal(err)
		}
		nine := f.newExecution("alpha")
		nine.ID = "00000000-0000-7000-8000-000000000091"
		if err := f.s.CreateExecution(f.ctx, nine); err != nil {
			f.t.Fatal(err)
		}
		if got := executionIDs(f.list(conveyor.ListFilter{IDPrefix: "00000000-0000-7000-8000-0000000000" + "9"}).Executions); !slices.Equal(got, []string{nine.ID}) {
			f.t.Errorf("IDPrefix ...09: %v, want only %s", got, nine.ID)
		}
	}},

	{"RefusesMalformed", func(f *fixture) {
		f.create("alpha")
		for _, p := range []string{
			"ABCDEF", "0000000g", "000000000", "00000000-0000-7000-8000-0000000000011",
			"00000000_", " 0000", "00000000-0000-7000-8000-00000000000\x00",
		} {
			_, err := f.s.ListExecutions(f.ctx, conveyor.ListFilter{IDPrefix: p})
			wantCode(f.t, "IDPrefix "+p, err, conveyor.EINVALID)
		}
	}},
}

// reversedIDs is ids newest first.
func reversedIDs(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}
