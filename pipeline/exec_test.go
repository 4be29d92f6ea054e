package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/pipeline"
)

func sh(script string) *pipeline.ExecSpec {
	return &pipeline.ExecSpec{Command: []string{"sh", "-c", script}}
}

func TestExecEnvAndStdin(t *testing.T) {
	t.Parallel()
	s := sh(`printf '%s\n' "$CONVEYOR_EXECUTION_ID" "$CONVEYOR_PIPELINE" "$CONVEYOR_STEP" "$CONVEYOR_ATTEMPT" "$CONVEYOR_INPUT" "$QUALITY" "$HOME_SEEN"; cat`)
	s.Env = map[string]string{"QUALITY": "80", "HOME_SEEN": "yes", "CONVEYOR_STEP": "spoofed"}
	rec := &recorder{}
	if err := s.Run(t.Context(), rec.exec()); err != nil {
		t.Fatal(err)
	}
	input := `{"bucket":"photos","n":3}`
	want := []string{"ex-1", "demo", "resize", "2", input, "80", "yes", input}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestExecLargeInput(t *testing.T) {
	t.Parallel()
	// Over the pipe buffer and MaxEnvInput: stdin only, and a program that
	// never reads it does not block the step.
	big, _ := json.Marshal(strings.Repeat("x", 1<<20))
	for _, script := range []string{`echo "env=${#CONVEYOR_INPUT}"; wc -c`, `echo "env=${#CONVEYOR_INPUT}"`} {
		rec := &recorder{}
		x := rec.exec()
		x.Input = big
		if err := sh(script).Run(t.Context(), x); err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		lines := rec.lines()
		if len(lines) == 0 || lines[0] != "env=0" {
			t.Errorf("%s: lines = %q, want env=0 first", script, lines)
		}
		if strings.Contains(script, "wc") && (len(lines) != 2 || strings.TrimSpace(lines[1]) != "1048578") {
			t.Errorf("%s: lines = %q, want the input's size", script, lines)
		}
	}
}

func TestExecDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := &pipeline.ExecSpec{Command: []string{"pwd"}, Dir: dir}
	rec := &recorder{}
	if err := s.Run(t.Context(), rec.exec()); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(dir)
	if got := rec.lines(); len(got) != 1 || got[0] != want {
		t.Errorf("pwd = %q, want %s", got, want)
	}
}

func TestExecProgressAndLogs(t *testing.T) {
	t.Parallel()
	s := sh(`
echo '::progress 3/10 copying files'
echo hello
echo '::progress 50%'
echo 'warning: disk' >&2
echo '::progress {"current":4,"total":8,"message":"json","metrics":{"rows":1200}}'
echo '::progress soon'
printf '::progress 11/10\r\n'
printf 'no newline at the end'`)
	rec := &recorder{}
	if err := s.Run(t.Context(), rec.exec()); err != nil {
		t.Fatal(err)
	}
	want := []conveyor.Update{
		{Done: 3, Total: 10, Message: "copying files"},
		{Done: 50, Total: 100},
		{Done: 4, Total: 8, Message: "json", Metrics: map[string]float64{"rows": 1200}},
		{Done: 10, Total: 10},
	}
	got := rec.progress()
	if len(got) != len(want) {
		t.Fatalf("progress = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Done != want[i].Done || got[i].Total != want[i].Total || got[i].Message != want[i].Message || got[i].Metrics["rows"] != want[i].Metrics["rows"] {
			t.Errorf("progress[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	lines := rec.lines()
	slices.Sort(lines) // stdout and stderr are read apart
	wantLines := []string{"::progress soon", "hello", "no newline at the end", "warning: disk"}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("log = %q, want %q", lines, wantLines)
	}
}

func TestExecLongLine(t *testing.T) {
	t.Parallel()
	s := sh(`head -c 200000 /dev/zero | tr '\0' a; echo; echo after`)
	rec := &recorder{}
	if err := s.Run(t.Context(), rec.exec()); err != nil {
		t.Fatal(err)
	}
	lines := rec.lines()
	if len(lines) != 2 || len(lines[0]) != conveyor.MaxLogLineBytes || !strings.HasSuffix(lines[0], conveyor.TruncatedMark) || lines[1] != "after" {
		t.Errorf("got %d lines, first %d bytes", len(lines), len(lines[0]))
	}
}

func TestExecFailure(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	err := sh(`echo '::progress 1/2'; echo 'cannot open bucket' >&2; echo 'bye'; exit 3`).Run(t.Context(), rec.exec())
	var ce *conveyor.Error
	if !errors.As(err, &ce) || ce.Code != conveyor.ESTEPFAILED || ce.Message != "exit status 3: cannot open bucket" {
		t.Fatalf("err = %#v, want step_failed %q", err, "exit status 3: cannot open bucket")
	}

	err = (&pipeline.ExecSpec{Command: []string{"/nonexistent/program"}}).Run(t.Context(), rec.exec())
	if conveyor.ErrorCode(err) != conveyor.ESTEPFAILED || !strings.Contains(err.Error(), "/nonexistent/program") {
		t.Errorf("err = %v, want step_failed naming the program", err)
	}
}

// runAsync runs s and returns the channel its error arrives on.
func runAsync(ctx context.Context, s *pipeline.ExecSpec, x *conveyor.Exec) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, x) }()
	return done
}

func waitErr(t *testing.T, done <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatalf("the step did not return within %s", timeout)
		return nil
	}
}

func TestExecCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	s := sh(`sleep 100 & echo "pid $$"; sleep 100; wait`)
	s.Grace = time.Minute // SIGTERM alone must do it
	ctx, cancel := context.WithCancel(t.Context())
	rec := &recorder{}
	done := runAsync(ctx, s, rec.exec())
	pgid := rec.loggedPID(t)
	waitFor(t, 10*time.Second, "both sleeps to start", func() bool { return groupMembers(t, pgid) >= 3 })

	cancel()
	if err := waitErr(t, done, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	waitFor(t, 10*time.Second, "the process group to be gone", func() bool { return groupMembers(t, pgid) == 0 })
}

func TestExecKillAfterGrace(t *testing.T) {
	t.Parallel()
	// trap "" TERM makes sh and its children ignore SIGTERM.
	s := sh(`trap "" TERM; sleep 100 & echo "pid $$"; sleep 100`)
	s.Grace = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	rec := &recorder{}
	done := runAsync(ctx, s, rec.exec())
	pgid := rec.loggedPID(t)

	cancel()
	start := time.Now()
	err := waitErr(t, done, 10*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took < s.Grace {
		t.Errorf("returned after %s, before the grace period of %s: SIGTERM was not ignored?", took, s.Grace)
	}
	waitFor(t, 10*time.Second, "the process group to be gone", func() bool { return groupMembers(t, pgid) == 0 })
}

func TestExecTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := sh(`sleep 100`).Run(ctx, (&recorder{}).exec())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestExecLeftoversAreKilled(t *testing.T) {
	t.Parallel()
	// The background sleep holds stdout open; the step must not wait for it.
	rec := &recorder{}
	done := runAsync(t.Context(), sh(`sleep 100 & echo "pid $$"`), rec.exec())
	if err := waitErr(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pgid := rec.loggedPID(t)
	waitFor(t, 10*time.Second, "the leftover sleep to be gone", func() bool { return groupMembers(t, pgid) == 0 })
}

func TestExecCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec := &recorder{}
	if err := sh(`echo ran`).Run(ctx, rec.exec()); !errors.Is(err, context.Canceled) || len(rec.lines()) > 0 {
		t.Errorf("err = %v, lines = %q; want context.Canceled and no run", err, rec.lines())
	}
}

func TestExecEscapedProcessIsNotWaitedFor(t *testing.T) {
	t.Parallel()
	// setsid leaves the process group, so the sleep survives the step and
	// keeps its stdout open: the step must return anyway.
	pidFile := filepath.Join(t.TempDir(), "escaped")
	s := sh(`setsid sh -c 'echo $$ > "$PIDFILE"; exec sleep 20' & while [ ! -s "$PIDFILE" ]; do sleep 0.01; done; echo started`)
	s.Env = map[string]string{"PIDFILE": pidFile}
	rec := &recorder{}
	done := runAsync(t.Context(), s, rec.exec())
	err := waitErr(t, done, 15*time.Second)
	if b, _ := os.ReadFile(pidFile); len(b) > 0 {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		_ = syscall.Kill(pid, syscall.SIGKILL) // the escaped sleep is ours to clean up; ESRCH if it is gone
	}
	if err != nil {
		t.Fatal(err)
	}
	if lines := rec.lines(); !slices.Equal(lines, []string{"started"}) {
		t.Errorf("lines = %q, want started", lines)
	}
}

func TestExecSlowLogConsumerLosesNothing(t *testing.T) {
	t.Parallel()
	// The first line is read alone; the program writes the rest and exits
	// while the consumer is still busy with it, for longer than the reader
	// waits for an idle pipe after the exit.
	flag := filepath.Join(t.TempDir(), "go-on")
	s := sh(`echo one; while [ ! -e "$FLAG" ]; do sleep 0.01; done; echo two; echo three`)
	s.Env = map[string]string{"FLAG": flag}
	var lines []string
	x := (&recorder{}).exec()
	x.LogFunc = func(_, line string) {
		lines = append(lines, line)
		if line == "one" {
			if err := os.WriteFile(flag, nil, 0o644); err != nil {
				t.Error(err)
			}
			time.Sleep(1500 * time.Millisecond) // a consumer slower than the drain timeout (1s)
		}
	}
	if err := s.Run(t.Context(), x); err != nil {
		t.Fatal(err)
	}
	if want := []string{"one", "two", "three"}; !slices.Equal(lines, want) {
		t.Errorf("lines = %q, want %q", lines, want)
	}
}

// TestExecCheckpoints: ::checkpoint lines record checkpoints, in order
// with the other lines; one that cannot be taken is logged with why; the
// checkpoint a step resumes from is in CONVEYOR_CHECKPOINT, empty when
// there is none.
func TestExecCheckpoints(t *testing.T) {
	t.Parallel()
	s := sh(`echo "from $CONVEYOR_CHECKPOINT"
echo '::checkpoint {"row": 1}'
echo '::checkpoint {"row": '
echo '::checkpoint null'
echo '::checkpoint'
printf '::checkpoint "%s"\n' "$(head -c 70000 /dev/zero | tr '\0' x)"
echo '::checkpoint 	"tab"  '
echo '::checkpoints are fine here'
echo '::checkpoint {"row": 2}'`)
	rec := &recorder{}
	x := rec.exec()
	x.ResumeCheckpoint = json.RawMessage(`{"row": 0}`)
	if err := s.Run(t.Context(), x); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.recorded(), []string{`{"row": 1}`, `"tab"`, `{"row": 2}`}; !slices.Equal(got, want) {
		t.Errorf("checkpoints %q, want %q", got, want)
	}
	lines := rec.lines()
	if len(lines) != 6 || lines[0] != `from {"row": 0}` || lines[5] != "::checkpoints are fine here" {
		t.Fatalf("log %.200q, want the checkpoint it resumes from, four refused lines, one plain line", lines)
	}
	for i, why := range []string{"checkpoint is not valid JSON", "checkpoint must not be null", "checkpoint is not valid JSON",
		"checkpoint line is over 65536 bytes"} {
		l := lines[i+1]
		if !strings.HasPrefix(l, "::checkpoint") || !strings.HasSuffix(l, "(refused: "+why+")") || len(l) > conveyor.MaxLogLineBytes {
			t.Errorf("log line %d: %d bytes %.60q…, want the refused line saying %q", i+1, len(l), l, why)
		}
	}

	// No checkpoint: the variable is empty. A checkpoint the engine
	// cannot keep is logged with why.
	rec = &recorder{refuse: conveyor.Errorf(conveyor.ECONFLICT, "the attempt no longer runs here")}
	if err := sh(`echo "from $CONVEYOR_CHECKPOINT."; echo '::checkpoint 1'`).Run(t.Context(), rec.exec()); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.lines(), []string{"from .", "::checkpoint 1 (refused: the attempt no longer runs here)"}; !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
}
