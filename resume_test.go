package conveyor_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestResumeOf pins where a claimed attempt starts.
func TestResumeOf(t *testing.T) {
	total, pct := 3, 50.0
	p := &conveyor.Progress{CurrentStep: 2, TotalSteps: &total, Percentage: &pct, CurrentStepName: "two"}
	cp := json.RawMessage(`{"row": 500}`)
	steps := []conveyor.Step{{Name: "one"}, {Name: "two"}, {Name: "three"}}
	handler := func(resume bool) *conveyor.Pipeline {
		return &conveyor.Pipeline{Resume: resume, Handler: func(context.Context, *conveyor.Exec) error { return nil }}
	}
	for _, tt := range []struct {
		name string
		p    *conveyor.Pipeline
		ex   conveyor.Execution
		want conveyor.Resume
	}{
		{"first attempt", &conveyor.Pipeline{Resume: true, Steps: steps}, conveyor.Execution{Attempt: 1}, conveyor.Resume{Step: 1}},
		{"resumed in step two", &conveyor.Pipeline{Resume: true, Steps: steps},
			conveyor.Execution{Attempt: 2, ResumeStep: 2, Checkpoint: cp, Progress: p}, conveyor.Resume{Step: 2, Checkpoint: cp, Progress: p}},
		{"step two began, no checkpoint", &conveyor.Pipeline{Resume: true, Steps: steps},
			conveyor.Execution{Attempt: 2, ResumeStep: 2, Progress: p}, conveyor.Resume{Step: 2, Progress: p}},
		{"without resume", &conveyor.Pipeline{Steps: steps},
			conveyor.Execution{Attempt: 2, ResumeStep: 2, Checkpoint: cp, Progress: p}, conveyor.Resume{Step: 1}},
		{"a step the file no longer has", &conveyor.Pipeline{Resume: true, Steps: steps[:1]},
			conveyor.Execution{Attempt: 2, ResumeStep: 2, Checkpoint: cp, Progress: p}, conveyor.Resume{Step: 1}},
		{"handler", handler(true), conveyor.Execution{Attempt: 2, Checkpoint: cp, Progress: p}, conveyor.Resume{Checkpoint: cp, Progress: p}},
		{"handler, nothing recorded", handler(true), conveyor.Execution{Attempt: 2, Progress: p}, conveyor.Resume{}},
		{"handler without resume", handler(false), conveyor.Execution{Attempt: 2, Checkpoint: cp}, conveyor.Resume{}},
	} {
		if got := tt.p.ResumeOf(&tt.ex); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestInterruptKeepsResumableProgress: a retry keeps the progress only
// when the next attempt resumes from it.
func TestInterruptKeepsResumableProgress(t *testing.T) {
	total, pct := 3, 50.0
	p := &conveyor.Progress{CurrentStep: 2, TotalSteps: &total, Percentage: &pct}
	for _, tt := range []struct {
		name string
		ex   conveyor.Execution
		want *conveyor.Progress
	}{
		{"resumable", conveyor.Execution{ResumeStep: 2}, p},
		{"a handler's checkpoint", conveyor.Execution{Checkpoint: json.RawMessage(`1`)}, p},
		{"nothing recorded", conveyor.Execution{}, nil},
	} {
		ex := tt.ex
		ex.ID, ex.Status, ex.Attempt, ex.LastSeq, ex.Progress = "x", conveyor.StatusRunning, 1, 5, p
		ev := ex.Interrupt(time.Now(), conveyor.RetryPolicy{Retries: 1}, conveyor.NodeStopped)
		if ev.Type != conveyor.EventRetrying || ev.Progress != tt.want || ex.Progress != tt.want || ex.Status != conveyor.StatusPending {
			t.Errorf("%s: %s with progress %v, execution %s with %v; want retrying, pending, with %v", tt.name, ev.Type, ev.Progress, ex.Status, ex.Progress, tt.want)
		}
	}
}

func TestCheckpointJSON(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "": refused
	}{
		{`{"row": 1}`, `{"row": 1}`},
		{` "x" `, ` "x" `},
		{"\"\xff\"", "\"\uFFFD\""},
		{`null`, ""},
		{` null `, ""},
		{`{"row": `, ""},
		{``, ""},
		{`"` + strings.Repeat("x", conveyor.MaxCheckpointBytes-2) + `"`, `"` + strings.Repeat("x", conveyor.MaxCheckpointBytes-2) + `"`},
		{`"` + strings.Repeat("x", conveyor.MaxCheckpointBytes-1) + `"`, ""},
	} {
		got, err := conveyor.CheckpointJSON([]byte(tt.in))
		if string(got) != tt.want || (tt.want == "") != (conveyor.ErrorCode(err) == conveyor.EINVALID) {
			t.Errorf("CheckpointJSON(%.40q) = %.40q, %v; want %.40q", tt.in, got, err, tt.want)
		}
	}
	var x conveyor.Exec
	if ok, err := x.LastCheckpoint(new(int)); ok || err != nil {
		t.Errorf("LastCheckpoint without one = %v, %v; want false", ok, err)
	}
	x.ResumeCheckpoint = json.RawMessage(`{"row": 7}`)
	var v struct{ Row int }
	if ok, err := x.LastCheckpoint(&v); !ok || err != nil || v.Row != 7 {
		t.Errorf("LastCheckpoint = %v, %v, %+v; want row 7", ok, err, v)
	}
	if err := x.Checkpoint(make(chan int)); conveyor.ErrorCode(err) != conveyor.EINVALID {
		t.Errorf("Checkpoint of a channel: %v, want %s", err, conveyor.EINVALID)
	}
}
