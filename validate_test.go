package conveyor_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// wantError fails unless err is nil for an empty message, or an *Error
// with that code and message.
func wantError(t *testing.T, name string, err error, code, message string) {
	t.Helper()
	if message == "" {
		if err != nil {
			t.Errorf("%s: %v, want nil", name, err)
		}
		return
	}
	if conveyor.ErrorCode(err) != code || conveyor.ErrorMessage(err) != message {
		t.Errorf("%s: %v, want %s: %s", name, err, code, message)
	}
}

func TestStorableTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{
		{time.Time{}, false},
		{now, true},
		{time.Date(1678, 12, 31, 0, 0, 0, 0, time.UTC), false},
		{time.Date(1679, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2261, 12, 31, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		if got := conveyor.StorableTime(tc.t); got != tc.want {
			t.Errorf("StorableTime(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestExecutionValidateNew(t *testing.T) {
	t.Parallel()
	valid := func(change func(e *conveyor.Execution)) *conveyor.Execution {
		e := &conveyor.Execution{ID: "x1", Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: now,
			Input: json.RawMessage(`{"a":1}`)}
		change(e)
		return e
	}
	for _, tc := range []struct {
		name string
		e    *conveyor.Execution
		want string // message of the EINVALID, "" for none
	}{
		{"valid", valid(func(*conveyor.Execution) {}), ""},
		{"nil", nil, "no execution"},
		{"no id", valid(func(e *conveyor.Execution) { e.ID = "" }), "execution has no id"},
		{"running", valid(func(e *conveyor.Execution) { e.Status = conveyor.StatusRunning }), `new execution must be pending, not "running"`},
		{"attempt", valid(func(e *conveyor.Execution) { e.Attempt = 1 }), "new execution must have attempt 0 and no events"},
		{"events", valid(func(e *conveyor.Execution) { e.LastSeq = 1 }), "new execution must have attempt 0 and no events"},
		{"no time", valid(func(e *conveyor.Execution) { e.CreatedAt = time.Time{} }), "execution has no valid creation time"},
		{"bad input", valid(func(e *conveyor.Execution) { e.Input = json.RawMessage(`{`) }), "execution input is not valid JSON"},
		{"bad result", valid(func(e *conveyor.Execution) { e.Result = json.RawMessage(`nope`) }), "execution result is not valid JSON"},
	} {
		wantError(t, tc.name, tc.e.ValidateNew(), conveyor.EINVALID, tc.want)
	}
}

func TestEventValidateStored(t *testing.T) {
	t.Parallel()
	valid := func(change func(ev *conveyor.Event)) *conveyor.Event {
		ev := &conveyor.Event{Type: conveyor.EventProgress, ExecutionID: "x1", Seq: 2, Time: now, Attempt: 1}
		change(ev)
		return ev
	}
	for _, tc := range []struct {
		name string
		ev   *conveyor.Event
		want string
	}{
		{"valid", valid(func(*conveyor.Event) {}), ""},
		{"no execution", valid(func(ev *conveyor.Event) { ev.ExecutionID = "" }), "event has no execution id"},
		{"no type", valid(func(ev *conveyor.Event) { ev.Type = "" }), `event type "" is not stored`},
		{"status", valid(func(ev *conveyor.Event) { ev.Type = conveyor.EventStatus }), `event type "status" is not stored`},
		{"error", valid(func(ev *conveyor.Event) { ev.Type = conveyor.EventError }), `event type "error" is not stored`},
		{"seq 0", valid(func(ev *conveyor.Event) { ev.Seq = 0 }), "event seq 0 is not positive"},
		{"no time", valid(func(ev *conveyor.Event) { ev.Time = time.Time{} }), "event progress #2 of x1 has no valid time"},
	} {
		wantError(t, tc.name, tc.ev.ValidateStored(), conveyor.EINVALID, tc.want)
	}
}

func TestListFilterPage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f      conveyor.ListFilter
		limit  int
		before int64
		want   string
	}{
		{conveyor.ListFilter{}, conveyor.DefaultListLimit, 0, ""},
		{conveyor.ListFilter{Limit: 1, Status: conveyor.StatusFailed, Cursor: "42"}, 1, 42, ""},
		{conveyor.ListFilter{Limit: conveyor.MaxListLimit}, conveyor.MaxListLimit, 0, ""},
		{conveyor.ListFilter{Limit: -1}, 0, 0, "limit must be from 1 to 500"},
		{conveyor.ListFilter{Limit: conveyor.MaxListLimit + 1}, 0, 0, "limit must be from 1 to 500"},
		{conveyor.ListFilter{Status: "done"}, 0, 0, `unknown status "done"`},
		// The limit is checked first, then the status, then the cursor.
		{conveyor.ListFilter{Limit: -1, Status: "done", Cursor: "x"}, 0, 0, "limit must be from 1 to 500"},
		{conveyor.ListFilter{Status: "done", Cursor: "x"}, 0, 0, `unknown status "done"`},
		// A cursor is the decimal number of an execution and nothing else.
		{conveyor.ListFilter{Cursor: "0"}, 0, 0, `malformed cursor "0"`},
		{conveyor.ListFilter{Cursor: "-1"}, 0, 0, `malformed cursor "-1"`},
		{conveyor.ListFilter{Cursor: "+1"}, 0, 0, `malformed cursor "+1"`},
		{conveyor.ListFilter{Cursor: "01"}, 0, 0, `malformed cursor "01"`},
		{conveyor.ListFilter{Cursor: "1.0"}, 0, 0, `malformed cursor "1.0"`},
		{conveyor.ListFilter{Cursor: " 1"}, 0, 0, `malformed cursor " 1"`},
		{conveyor.ListFilter{Cursor: "9223372036854775808"}, 0, 0, `malformed cursor "9223372036854775808"`},
	} {
		limit, before, err := tc.f.Page()
		wantError(t, fmt.Sprintf("%+v.Page()", tc.f), err, conveyor.EINVALID, tc.want)
		if limit != tc.limit || before != tc.before {
			t.Errorf("%+v.Page() = %d, %d, want %d, %d", tc.f, limit, before, tc.limit, tc.before)
		}
	}
}

func TestExecutionNotFound(t *testing.T) {
	t.Parallel()
	wantError(t, "ExecutionNotFound", conveyor.ExecutionNotFound("x1"), conveyor.ENOTFOUND, `execution "x1" not found`)
}
