package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// markSteps is a pipeline of three exec steps, each of which appends
// "step attempt checkpoint" to the file marks when it runs. The second
// fails on attempt 1 after a checkpoint, half way through.
func markSteps(marks string, resume bool) string {
	mark := `echo "$CONVEYOR_STEP $CONVEYOR_ATTEMPT $CONVEYOR_CHECKPOINT" >> "$MARKS"`
	step := func(name, script string) string {
		return fmt.Sprintf("  - name: %s\n    exec:\n      command: [sh, -c, %q]\n      env: {MARKS: %q}\n", name, script, marks)
	}
	return fmt.Sprintf("retries: 1\nresume: %v\nsteps:\n", resume) +
		step("one", mark) +
		step("two", mark+`
if [ "$CONVEYOR_ATTEMPT" = 1 ]; then
  echo '::progress 1/4 row 1'
  echo '::checkpoint {"row": 2}'
  echo '::progress 2/4 row 2'
  exit 3
fi
echo '::progress 4/4 done'`) +
		step("three", mark)
}

// TestResumeAtTheStepThatFailed: a pipeline with resume: true whose
// second step fails after a checkpoint runs it again on attempt 2 with
// that checkpoint, not the first step, and its progress goes on from
// where it was; without resume, attempt 2 starts over at step 1.
func TestResumeAtTheStepThatFailed(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		dir := t.TempDir()
		resumeMarks, restartMarks := filepath.Join(dir, "resume"), filepath.Join(dir, "restart")
		n.start(map[string]string{"resume": markSteps(resumeMarks, true), "restart": markSteps(restartMarks, false)})
		resumed, restarted := n.submit("resume"), n.submit("restart")

		for _, tt := range []struct {
			ex    *conveyor.Execution
			marks string
			want  []string
			// The step attempt 2 starts at.
			start int
		}{
			{resumed, resumeMarks, []string{"one 1 ", "two 1 ", `two 2 {"row": 2}`, "three 2 "}, 2},
			{restarted, restartMarks, []string{"one 1 ", "two 1 ", "one 2 ", "two 2 ", "three 2 "}, 1},
		} {
			got := n.waitFinal(tt.ex.ID)
			if got.Status != conveyor.StatusCompleted || got.Attempt != 2 {
				t.Fatalf("%s: %s on attempt %d %+v, want completed on attempt 2", tt.ex.Pipeline, got.Status, got.Attempt, got.Error)
			}
			if marks := readLines(t, tt.marks); !slices.Equal(marks, tt.want) {
				t.Errorf("%s: steps ran %q, want %q", tt.ex.Pipeline, marks, tt.want)
			}

			// The retrying event keeps the progress only when attempt 2
			// resumes; attempt 2's first progress is where it was then.
			retrying := storedOfType(t, n.store, tt.ex.ID, conveyor.EventRetrying)
			first := n.firstProgress(tt.ex.ID, 2)
			if first.CurrentStep != tt.start {
				t.Errorf("%s: attempt 2 began at step %d, want %d", tt.ex.Pipeline, first.CurrentStep, tt.start)
			}
			if tt.start == 1 {
				if retrying.Progress != nil {
					t.Errorf("%s: retrying with progress %+v, want none", tt.ex.Pipeline, retrying.Progress)
				}
				continue
			}
			if p := retrying.Progress; p == nil || p.CurrentStep != 2 || p.Percentage == nil || *p.Percentage != 50 {
				t.Fatalf("%s: retrying with progress %s, want step 2 at 50%%", tt.ex.Pipeline, progressJSON(p))
			}
			if *first.Percentage < *retrying.Progress.Percentage {
				t.Errorf("%s: attempt 2 began at %v%%, below the %v%% attempt 1 had", tt.ex.Pipeline, *first.Percentage, *retrying.Progress.Percentage)
			}
		}
	})
}

// TestResumeGoStepsAndHandlers: a Go step that timed out after a
// checkpoint resumes with it (LastCheckpoint), the steps before it not
// run again; a handler gets its last checkpoint and the progress it had;
// a pipeline without resume keeps no checkpoint.
func TestResumeGoStepsAndHandlers(t *testing.T) {
	type row struct{ Row int }
	forEachStore(t, func(t *testing.T, n *node) {
		var (
			mu      sync.Mutex
			ran     []string // "step attempt checkpoint"
			checked []error  // what x.Checkpoint returned where it must not store
		)
		record := func(x *conveyor.Exec, what string) {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, fmt.Sprintf("%s %d %s", what, x.Attempt, x.ResumeCheckpoint))
		}
		step := func(name string, run conveyor.HandlerFunc) conveyor.Step {
			return conveyor.Step{Name: name, Run: func(ctx context.Context, x *conveyor.Exec) error {
				record(x, name)
				return run(ctx, x)
			}}
		}
		nothing := func(context.Context, *conveyor.Exec) error { return nil }
		timesOut := step("two", func(ctx context.Context, x *conveyor.Exec) error {
			if x.Attempt > 1 {
				var r row
				if ok, err := x.LastCheckpoint(&r); !ok || err != nil || r.Row != 7 {
					return fmt.Errorf("last checkpoint %v, %+v, want row 7: %w", ok, r, err)
				}
				return nil
			}
			if err := x.Checkpoint(row{7}); err != nil {
				return err
			}
			<-ctx.Done() // the step's timeout; the checkpoint is stored already
			return nil
		})
		timesOut.Timeout = 200 * time.Millisecond
		agent := func(resume bool) conveyor.HandlerFunc {
			return func(_ context.Context, x *conveyor.Exec) error {
				record(x, "agent")
				var page struct{ Page int }
				ok, err := x.LastCheckpoint(&page)
				if err != nil || ok != (resume && x.Attempt > 1) || ok && page.Page != 3 {
					return fmt.Errorf("attempt %d: last checkpoint %v, %+v: %w", x.Attempt, ok, page, err)
				}
				if x.Attempt > 1 {
					mu.Lock()
					checked = append(checked, x.Checkpoint(nil), x.Checkpoint(strings.Repeat("x", conveyor.MaxCheckpointBytes)))
					mu.Unlock()
					return nil
				}
				x.Progress(conveyor.Update{Step: 2, Steps: 4, StepName: "search"})
				if err := x.Checkpoint(map[string]int{"page": 3}); err != nil {
					return err
				}
				return errors.New("rate limited")
			}
		}
		n.startPipelines(map[string]*conveyor.Pipeline{
			"steps": {Name: "steps", Retries: 1, Resume: true, Steps: []conveyor.Step{
				step("one", nothing), timesOut, step("three", nothing)}},
			"agent":       {Name: "agent", Retries: 1, Resume: true, Handler: agent(true)},
			"plain-agent": {Name: "plain-agent", Retries: 1, Handler: agent(false)},
		})
		steps, handler, plain := n.submit("steps"), n.submit("agent"), n.submit("plain-agent")

		for _, ex := range []*conveyor.Execution{steps, handler, plain} {
			if got := n.waitFinal(ex.ID); got.Status != conveyor.StatusCompleted || got.Attempt != 2 {
				t.Errorf("%s: %s on attempt %d %+v, want completed on attempt 2", ex.Pipeline, got.Status, got.Attempt, got.Error)
			}
		}
		if ev := storedOfType(t, n.store, steps.ID, conveyor.EventRetrying); ev.Error == nil || ev.Error.Code != conveyor.ETIMEOUT {
			t.Errorf("steps: retrying with %+v, want the timeout", ev.Error)
		}
		mu.Lock()
		slices.Sort(ran)
		want := []string{"agent 1 ", "agent 1 ", "agent 2 ", `agent 2 {"page":3}`, "one 1 ", "three 2 ", "two 1 ", `two 2 {"Row":7}`}
		if !slices.Equal(ran, want) {
			t.Errorf("ran %q, want %q", ran, want)
		}
		for _, err := range checked {
			if conveyor.ErrorCode(err) != conveyor.EINVALID {
				t.Errorf("Checkpoint of null or too much: %v, want %s", err, conveyor.EINVALID)
			}
		}
		mu.Unlock()

		// The handler's attempt 2 began where attempt 1 was.
		if p := n.firstProgress(handler.ID, 2); p.CurrentStep != 2 || p.TotalSteps == nil || *p.TotalSteps != 4 ||
			p.CurrentStepName != "search" || *p.Percentage != 25 {
			t.Errorf("agent: attempt 2 began at %s, want step 2 of 4, search, 25%%", progressJSON(p))
		}
		if ev := storedOfType(t, n.store, plain.ID, conveyor.EventRetrying); ev.Progress != nil {
			t.Errorf("plain-agent: retrying with progress %s, want none", progressJSON(ev.Progress))
		}
		if got, err := n.store.GetExecution(t.Context(), plain.ID); err != nil || got.Resumable() {
			t.Errorf("plain-agent: %v, resume step %d, checkpoint %s; want nothing stored", err, got.ResumeStep, got.Checkpoint)
		}
	})
}

// firstProgress waits for the first progress event published for
// attempt of execution id and returns its progress.
func (n *node) firstProgress(id string, attempt int) *conveyor.Progress {
	n.t.Helper()
	var p *conveyor.Progress
	waitFor(n.t, fmt.Sprintf("progress of attempt %d of %s", attempt, id), func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, ev := range n.published {
			if ev.ExecutionID == id && ev.Attempt == attempt && ev.Type == conveyor.EventProgress {
				p = ev.Progress
				return true
			}
		}
		return false
	})
	return p
}

// storedOfType returns the first stored event of execution id of type typ.
func storedOfType(t *testing.T, s conveyor.Store, id string, typ conveyor.EventType) conveyor.Event {
	t.Helper()
	evs, err := s.Events(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == typ {
			return ev
		}
	}
	t.Fatalf("no %s event stored for %s", typ, id)
	return conveyor.Event{}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func progressJSON(p *conveyor.Progress) string {
	b, _ := json.Marshal(p)
	return string(b)
}
