package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/engine"
	"github.com/conveyor-run/conveyor/pipeline"
	"github.com/conveyor-run/conveyor/store"
	"github.com/conveyor-run/conveyor/store/postgres"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

// backends are the stores every engine test runs on.
var backends = []struct {
	name string
	open func(t *testing.T) conveyor.Store
}{
	{"SQLite", func(t *testing.T) conveyor.Store {
		s, err := sqlite.Open(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"PostgreSQL", func(t *testing.T) conveyor.Store {
		_, url := pgtest.NewDatabase(t)
		s, err := postgres.Open(t.Context(), url, &postgres.Options{NodeID: "test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// forEachStore runs fn as a subtest on every backend.
func forEachStore(t *testing.T, fn func(t *testing.T, n *node)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, &node{t: t, store: b.open(t)})
		})
	}
}

// node is an engine on a real store with YAML pipelines.
type node struct {
	t      *testing.T
	store  conveyor.Store
	engine *engine.Engine

	mu        sync.Mutex
	published []conveyor.Event
}

// start starts the engine with the pipelines, given as name: YAML.
func (n *node) start(pipelines map[string]string) {
	n.t.Helper()
	ps := map[string]*conveyor.Pipeline{}
	for name, y := range pipelines {
		p, err := pipeline.Parse(name+".yaml", []byte(y))
		if err != nil {
			n.t.Fatalf("pipeline %s: %v", name, err)
		}
		ps[name] = p
	}
	n.startPipelines(ps)
}

// startPipelines starts the engine with the pipelines.
func (n *node) startPipelines(ps map[string]*conveyor.Pipeline) {
	n.t.Helper()
	eng, err := engine.New(engine.Config{
		Store: n.store, Pipelines: ps, Concurrency: 8, PollInterval: 50 * time.Millisecond,
		PublishFunc: func(ev conveyor.Event) {
			n.mu.Lock()
			n.published = append(n.published, ev)
			n.mu.Unlock()
		},
	})
	if err != nil {
		n.t.Fatal(err)
	}
	if err := eng.Start(n.t.Context()); err != nil {
		n.t.Fatal(err)
	}
	n.engine = eng
	n.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Stop(ctx)
	})
}

func (n *node) submit(pipeline string) *conveyor.Execution {
	n.t.Helper()
	ex, err := n.engine.Submit(n.t.Context(), pipeline, nil, nil)
	if err != nil {
		n.t.Fatalf("submit %s: %v", pipeline, err)
	}
	return ex
}

// waitFinal polls the store until the execution is final.
func (n *node) waitFinal(id string) *conveyor.Execution {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ex, err := n.store.GetExecution(n.t.Context(), id)
		if err != nil {
			n.t.Fatal(err)
		}
		if ex.Status.Final() {
			return ex
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("execution %s still %s after 30s", id, ex.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finalPublished waits for the final event published for id: the engine
// publishes it just after the store has it.
func (n *node) finalPublished(id string) conveyor.Event {
	n.t.Helper()
	var final conveyor.Event
	waitFor(n.t, "the final event of "+id+" to be published", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, ev := range n.published {
			if ev.ExecutionID == id && ev.Type.Final() {
				final = ev
				return true
			}
		}
		return false
	})
	return final
}

// waitLogs waits until the execution has want log lines and returns them;
// more than want fails.
func (n *node) waitLogs(id string, want int) []conveyor.LogLine {
	n.t.Helper()
	var lines []conveyor.LogLine
	waitFor(n.t, fmt.Sprintf("%d log lines of %s", want, id), func() bool {
		var err error
		if lines, err = store.AllLogs(n.t.Context(), n.store, id); err != nil {
			n.t.Fatal(err)
		}
		return len(lines) >= want
	})
	if len(lines) != want {
		n.t.Fatalf("%d log lines, want %d: %+v", len(lines), want, lines)
	}
	return lines
}

func execStep(script string) string {
	return fmt.Sprintf("steps:\n  - name: run\n    exec:\n      command: [sh, -c, %q]\n", script)
}

// TestUnstorableOutputIsCleaned: a NUL or invalid UTF-8 in what a step
// reports (the last stderr line that becomes the error, a ::progress
// message, a log line) fails or completes the execution as on any store,
// and leaves the executions that share its write batches untouched.
func TestUnstorableOutputIsCleaned(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		n.start(map[string]string{
			"nul-stderr": execStep(`printf 'boom\000here\n' >&2; exit 3`),
			"bad-utf8":   execStep(`printf 'bad \377 byte\n' >&2; exit 3`),
			"nul-progress": execStep(`printf '::progress 1/2 half\000way\n'; printf 'out\000put \377\n'; ` +
				`printf '::progress 2/2 done\n'`),
			"clean": execStep(`for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; done`),
		})
		var clean []*conveyor.Execution
		nul, bad, prog := n.submit("nul-stderr"), n.submit("bad-utf8"), n.submit("nul-progress")
		for range 3 {
			clean = append(clean, n.submit("clean"))
		}

		for _, ex := range []*conveyor.Execution{nul, bad} {
			got := n.waitFinal(ex.ID)
			if got.Status != conveyor.StatusFailed || got.Error == nil || got.Error.Code != conveyor.ESTEPFAILED {
				t.Fatalf("%s: %s %+v, want failed step_failed", ex.Pipeline, got.Status, got.Error)
			}
			if !strings.Contains(got.Error.Message, "exit status 3") || !strings.Contains(got.Error.Message, "\uFFFD") {
				t.Errorf("%s: error %q, want the exit status and U+FFFD for the bad bytes", ex.Pipeline, got.Error.Message)
			}
		}
		if got := n.waitFinal(prog.ID); got.Status != conveyor.StatusCompleted {
			t.Fatalf("nul-progress: %s %+v, want completed", got.Status, got.Error)
		}
		lines := n.waitLogs(prog.ID, 1)
		if lines[0].Line != "out\uFFFDput \uFFFD" {
			t.Errorf("nul-progress log line %q, want it cleaned", lines[0].Line)
		}
		for _, ex := range clean {
			if got := n.waitFinal(ex.ID); got.Status != conveyor.StatusCompleted {
				t.Fatalf("clean: %s %+v", got.Status, got.Error)
			}
			n.waitLogs(ex.ID, 10)
		}
	})
}

// TestStoppedStepIsNeverASuccess: a program that exits 0 on SIGTERM
// still ends timed out or cancelled, and a timed-out step does not let
// the next one run.
func TestStoppedStepIsNeverASuccess(t *testing.T) {
	const obliging = `trap 'exit 0' TERM; while :; do sleep 0.05; done`
	forEachStore(t, func(t *testing.T, n *node) {
		n.start(map[string]string{
			"step-timeout": fmt.Sprintf("steps:\n  - name: stuck\n    timeout: 300ms\n    exec:\n      command: [sh, -c, %q]\n"+
				"  - name: after\n    exec:\n      command: [sh, -c, 'echo ran after']\n", obliging),
			"pipeline-timeout": "timeout: 300ms\n" + execStep(obliging),
			"cancelled":        execStep(`echo started; ` + obliging),
		})
		step, whole, cancelled := n.submit("step-timeout"), n.submit("pipeline-timeout"), n.submit("cancelled")
		waitFor(t, "the cancelled execution's step to start", func() bool {
			lines, _ := store.AllLogs(t.Context(), n.store, cancelled.ID)
			return len(lines) > 0
		})
		if _, err := n.engine.Cancel(t.Context(), cancelled.ID); err != nil {
			t.Fatal(err)
		}

		for _, ex := range []*conveyor.Execution{step, whole} {
			got := n.waitFinal(ex.ID)
			if got.Status != conveyor.StatusFailed || got.Error == nil || got.Error.Code != conveyor.ETIMEOUT {
				t.Errorf("%s: %s %+v, want failed timeout", ex.Pipeline, got.Status, got.Error)
			}
		}
		events, err := n.store.Events(t.Context(), step.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			if ev.Progress != nil && ev.Progress.CurrentStepName == "after" {
				t.Errorf("the step after a timed-out one ran: %+v", ev)
			}
		}
		if got := n.waitFinal(cancelled.ID); got.Status != conveyor.StatusCancelled {
			t.Errorf("cancelled: %s %+v, want cancelled", got.Status, got.Error)
		}
		if ev := n.finalPublished(cancelled.ID); ev.Type != conveyor.EventCancelled {
			t.Errorf("published %s for the cancelled execution", ev.Type)
		}
	})
}

// TestBadSubmitNeverFailsOthers: input that is not valid UTF-8 is refused
// before it joins a group commit, so concurrent good submits all succeed.
func TestBadSubmitNeverFailsOthers(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		n.start(map[string]string{"noop": "steps:\n  - name: wait\n    sleep: 1ms\n"})
		var wg sync.WaitGroup
		errs := make([]error, 200)
		for i := range errs {
			wg.Go(func() {
				input := []byte(`{"n": 1}`)
				if i%10 == 0 {
					input = []byte("{\"s\": \"\xff\"}")
				}
				_, errs[i] = n.engine.Submit(context.Background(), "noop", input, nil)
			})
		}
		wg.Wait()
		for i, err := range errs {
			want := ""
			if i%10 == 0 {
				want = conveyor.EINVALID
			}
			if got := conveyor.ErrorCode(err); got != want {
				t.Errorf("submit %d: %v, want code %q", i, err, want)
			}
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLogLinesCarryTheirAttempt: the output of a retried execution says
// which attempt wrote each line, on every store.
func TestLogLinesCarryTheirAttempt(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		n.start(map[string]string{
			"flaky": "retries: 1\n" + execStep(`echo "try $CONVEYOR_ATTEMPT"; exit 3`),
		})
		ex := n.submit("flaky")
		if got := n.waitFinal(ex.ID); got.Status != conveyor.StatusFailed || got.Attempt != 2 {
			t.Fatalf("%s after attempt %d, want failed after attempt 2", got.Status, got.Attempt)
		}
		lines := n.waitLogs(ex.ID, 2)
		for i, l := range lines {
			if want := fmt.Sprintf("try %d", i+1); l.Line != want || l.Attempt != i+1 {
				t.Errorf("line %d: %q of attempt %d, want %q of attempt %d", i, l.Line, l.Attempt, want, i+1)
			}
		}
	})
}

// TestProgressOnlyOnChange: a report that changes nothing but the ETA
// publishes no progress event; three identical ::progress lines give one.
func TestProgressOnlyOnChange(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		n.start(map[string]string{
			"same": execStep(`for i in 1 2 3; do echo '::progress 5/10 halfway'; sleep 0.1; done; echo '::progress 6/10 on'`),
		})
		ex := n.submit("same")
		n.finalPublished(ex.ID)
		n.mu.Lock()
		defer n.mu.Unlock()
		var messages []string
		for _, ev := range n.published {
			if ev.ExecutionID == ex.ID && ev.Type == conveyor.EventProgress && ev.Progress.Message != "" {
				messages = append(messages, fmt.Sprintf("%s %.0f%%", ev.Progress.Message, *ev.Progress.Percentage))
			}
		}
		if want := []string{"halfway 50%", "on 60%"}; !slices.Equal(messages, want) {
			t.Errorf("progress events %q, want %q", messages, want)
		}
	})
}
