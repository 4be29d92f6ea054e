package main_test

// End-to-end tests of the client commands' output: the real binary, its
// stdout a pipe (plain lines), against a real server.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// child is a conveyor client command running in the background.
type child struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{}
	err    error // cmd.Wait's, set before exited is closed
}

func startCLI(t *testing.T, n *node, args ...string) *child {
	t.Helper()
	// Signalled by hand: the test sends SIGINT itself.
	cmd := exec.Command(binary, append(args, "--server", n.url)...) //nolint:noctx // see above
	c := &child{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{}, 2)
	for r, into := range map[*bufio.Scanner]*syncBuffer{bufio.NewScanner(stdout): c.stdout, bufio.NewScanner(stderr): c.stderr} {
		go func() {
			for r.Scan() {
				into.WriteString(r.Text() + "\n")
			}
			copied <- struct{}{}
		}()
	}
	go func() {
		<-copied
		<-copied
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// wait waits for the child to exit and returns its exit code.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	waitFor(t, "conveyor "+strings.Join(c.cmd.Args[1:], " ")+" to exit", func() bool {
		select {
		case <-c.exited:
			return true
		default:
			return false
		}
	})
	return exitCode(t, c.err)
}

// repeatedWord finds two equal words in a row in out, the mark of a line
// put together from overlapping parts ("completed completed").
func repeatedWord(out string) string {
	for line := range strings.SplitSeq(out, "\n") {
		words := strings.Fields(line)
		for i := 1; i < len(words); i++ {
			if words[i] == words[i-1] {
				return line
			}
		}
	}
	return ""
}

const burstPipeline = `
steps:
  - name: burst
    exec:
      command:
        - sh
        - -c
        - |
          i=1
          while [ "$i" -le 50 ]; do
            echo "::progress {\"current\":$i,\"total\":50,\"message\":\"update $i\",\"metrics\":{\"rows\":$i}}"
            i=$((i + 1))
          done
          sleep 0.5
`

const failingPipeline = `
retries: 1
steps:
  - name: fail
    exec:
      command: ["sh", "-c", "echo \"broken on attempt $CONVEYOR_ATTEMPT\" >&2; exit 3"]
`

func TestRunPlainLines(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "burst", burstPipeline)
	writePipeline(t, pipes, "fails", failingPipeline)
	n := startNode(t, t.TempDir(), pipes)

	t.Run("progress", func(t *testing.T) {
		t.Parallel()
		out, errOut, err := cli(t, n, "", "run", "burst")
		if code := exitCode(t, err); code != 0 {
			t.Fatalf("run exited %d\n%s\n%s", code, out, errOut)
		}
		// 50 updates in far less than a second: at most a few progress
		// lines, and the last progress shown is the last update, with its
		// metrics. On a busy machine run may connect only after the
		// updates; then the opening status line carries that progress.
		if progress := regexp.MustCompile(`(?m)^\S+ \S+ progress .*$`).FindAllString(out, -1); len(progress) > 10 {
			t.Errorf("%d progress lines for 50 updates, want at most 10:\n%s", len(progress), out)
		}
		shown := regexp.MustCompile(`(?m)^\S+ \S+ (progress|status running) .*burst: .*$`).FindAllString(out, -1)
		if len(shown) == 0 || !strings.Contains(shown[len(shown)-1], "burst: update 50 [rows=50]") {
			t.Errorf("lines with progress %q, want the last to show update 50 with its metrics:\n%s", shown, out)
		}
		// run may connect before or after the start: the first line
		// is the started event or the opening status.
		for _, want := range []string{`(?m)^\S+ \S+ (started|status running) attempt 1`, `(?m)^\S+ \S+ completed attempt 1$`, `(?m)^\S+ burst completed in \S+ \(attempt 1\)$`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("no line matching %s:\n%s", want, out)
			}
		}
		if line := repeatedWord(out); line != "" {
			t.Errorf("a word twice in a row: %q", line)
		}
	})

	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		out, errOut, err := cli(t, n, "", "run", "fails")
		if code := exitCode(t, err); code != 1 {
			t.Fatalf("run of a failing pipeline exited %d, want 1\n%s\n%s", code, out, errOut)
		}
		// The first attempt may have failed before run connected, so
		// its retrying line is not asked for.
		for _, want := range []string{
			`(?m)^\S+ \S+ failed attempt 2 error: `,
			`(?m)^\S+ fails failed in \S+ \(attempt 2\)$`,
			`(?m)^error: \w+: `,
			`(?m)^last log lines:\n  \S+ attempt 2 fail stderr: broken on attempt 2$`,
		} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("no line matching %s:\n%s", want, out)
			}
		}
		if _, logs, _ := strings.Cut(out, "last log lines:"); strings.Contains(logs, "broken on attempt 1") {
			t.Errorf("log lines of the first attempt printed after the last failed:\n%s", out)
		}
		if !strings.Contains(errOut, " failed: ") {
			t.Errorf("stderr %q does not say it failed", errOut)
		}
		if line := repeatedWord(out); line != "" {
			t.Errorf("a word twice in a row: %q", line)
		}
	})

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		out := mustCLI(t, n, "", "run", "burst", "-o", "json")
		var ex conveyor.Execution
		if err := json.Unmarshal([]byte(out), &ex); err != nil || ex.Status != conveyor.StatusCompleted || ex.Pipeline != "burst" {
			t.Fatalf("run -o json printed %q (%v), want the completed execution alone", out, err)
		}
	})
}

const waitingPipeline = `
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "echo '::progress 10% waiting'; exec sleep 60"]
`

var idOfLine = regexp.MustCompile(`(?m)^\S+ ([0-9a-f-]{36}) `)

// TestInterrupt sends SIGINT to run and watch: they stop watching and
// say how to cancel, or with --cancel-on-interrupt cancel and wait.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "wait", waitingPipeline)
	n := startNode(t, t.TempDir(), pipes)

	// interrupted starts conveyor with args, waits until it shows the
	// execution's progress, sends SIGINT and returns the child and the
	// execution's id.
	interrupted := func(t *testing.T, args ...string) (*child, string) {
		c := startCLI(t, n, args...)
		waitFor(t, "the progress line", func() bool { return strings.Contains(c.stdout.String(), "waiting") })
		m := idOfLine.FindStringSubmatch(c.stdout.String())
		if m == nil {
			t.Fatalf("no execution id in %q", c.stdout)
		}
		if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		return c, m[1]
	}

	for _, cmd := range []string{"run", "watch"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			args := []string{"run", "wait"}
			if cmd == "watch" {
				ex, err := n.client.Submit(t.Context(), "wait", nil)
				if err != nil {
					t.Fatal(err)
				}
				args = []string{"watch", ex.ID}
			}
			c, id := interrupted(t, args...)
			if code := c.wait(t); code != 130 {
				t.Fatalf("exit %d after SIGINT, want 130\n%s\n%s", code, c.stdout, c.stderr)
			}
			if want := "the execution goes on. Cancel it with: conveyor cancel " + id; !strings.Contains(c.stderr.String(), want) {
				t.Errorf("stderr %q does not say %q", c.stderr, want)
			}
			if got := status(t, n.client, id).Status; got != conveyor.StatusRunning {
				t.Errorf("execution %s after SIGINT to %s, want running", got, cmd)
			}
			if _, err := n.client.Cancel(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("watch --batch", func(t *testing.T) {
		t.Parallel()
		b, err := n.client.SubmitBatch(t.Context(), []conveyor.NewExecution{{Pipeline: "wait"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := startCLI(t, n, "watch", "--batch", b.ID)
		waitFor(t, "the running batch", func() bool { return strings.Contains(c.stdout.String(), b.ID+" running") })
		if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := c.wait(t); code != 130 {
			t.Fatalf("exit %d after SIGINT, want 130\n%s\n%s", code, c.stdout, c.stderr)
		}
		if want := "its executions go on. Cancel them with: conveyor cancel --batch " + b.ID; !strings.Contains(c.stderr.String(), want) {
			t.Errorf("stderr %q does not say %q", c.stderr, want)
		}
		if got, err := n.client.Batch(t.Context(), b.ID); err != nil || got.Status != conveyor.StatusRunning {
			t.Errorf("batch after SIGINT: %+v, %v; want running", got, err)
		}
		if _, err := n.client.CancelBatch(t.Context(), b.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cancel-on-interrupt", func(t *testing.T) {
		t.Parallel()
		c, id := interrupted(t, "run", "wait", "--cancel-on-interrupt")
		if code := c.wait(t); code != 1 {
			t.Fatalf("exit %d after SIGINT with --cancel-on-interrupt, want 1\n%s\n%s", code, c.stdout, c.stderr)
		}
		if !regexp.MustCompile(`(?m)^\S+ `+id+` cancelled attempt 1`).MatchString(c.stdout.String()) ||
			!strings.Contains(c.stdout.String(), id+" wait cancelled in ") {
			t.Errorf("no cancelled lines:\n%s", c.stdout)
		}
		if !strings.Contains(c.stderr.String(), "cancel of "+id+" requested") {
			t.Errorf("stderr %q does not say the cancel was requested", c.stderr)
		}
		if got := status(t, n.client, id).Status; got != conveyor.StatusCancelled {
			t.Errorf("execution %s, want cancelled", got)
		}
	})
}

func TestLogsAndEvents(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	// talk writes a line, waits for the test to create goFile, and
	// writes another.
	goFile := filepath.Join(t.TempDir(), "go")
	writePipeline(t, pipes, "talk", fmt.Sprintf(`
steps:
  - name: talk
    exec:
      command: ["sh", "-c", "echo first; while [ ! -e %s ]; do sleep 0.05; done; echo second >&2"]
`, goFile))
	n := startNode(t, t.TempDir(), pipes)
	ex, err := n.client.Submit(t.Context(), "talk", nil)
	if err != nil {
		t.Fatal(err)
	}

	follow := startCLI(t, n, "logs", "-f", ex.ID)
	waitFor(t, "logs -f to print the first line", func() bool { return strings.Contains(follow.stdout.String(), "first") })
	if strings.Contains(follow.stdout.String(), "second") {
		t.Fatal("second line printed before it was written")
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := follow.wait(t); code != 0 {
		t.Fatalf("logs -f exited %d\n%s", code, follow.stderr)
	}
	want := regexp.MustCompile(`^\S+ attempt 1 talk stdout: first\n\S+ attempt 1 talk stderr: second\n$`)
	if !want.MatchString(follow.stdout.String()) {
		t.Errorf("logs -f printed:\n%s", follow.stdout)
	}
	if out := mustCLI(t, n, "", "logs", ex.ID); !want.MatchString(out) {
		t.Errorf("logs printed:\n%s", out)
	}
	var line conveyor.LogLine
	first, _, _ := strings.Cut(mustCLI(t, n, "", "logs", ex.ID, "-o", "json"), "\n")
	if err := json.Unmarshal([]byte(first), &line); err != nil || line.Line != "first" || line.Attempt != 1 || line.Stream != "stdout" {
		t.Errorf("logs -o json: first line %q (%v)", first, err)
	}

	events := mustCLI(t, n, "", "events", ex.ID)
	if !regexp.MustCompile(`^1 \S+ started attempt 1\n(.*\n)*\d+ \S+ completed attempt 1\n$`).MatchString(events) {
		t.Errorf("events printed:\n%s", events)
	}
	if after := mustCLI(t, n, "", "events", ex.ID, "--after", "1"); after == "" || strings.HasPrefix(after, "1 ") || strings.Count(events, "\n") != strings.Count(after, "\n")+1 {
		t.Errorf("events --after 1 printed:\n%s", after)
	}
	// Stored seqs may skip progress samples the store did not keep.
	var seq int64
	for l := range strings.SplitSeq(strings.TrimSpace(mustCLI(t, n, "", "events", ex.ID, "-o", "json")), "\n") {
		var ev conveyor.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Seq <= seq || ev.ExecutionID != ex.ID {
			t.Errorf("events -o json line after seq %d: %q (%v)", seq, l, err)
		}
		seq = ev.Seq
	}

	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"logs", "nope"}, "not_found"},
		{[]string{"logs", "-f", "nope"}, "not_found"},
		{[]string{"events", "nope"}, "not_found"},
		{[]string{"events", ex.ID, "--after", "-1"}, "--after"},
		{[]string{"events", ex.ID, "-o", "yaml"}, `want text or json, not "yaml"`},
		{[]string{"logs", ex.ID, "-o", "xml"}, `want text or json, not "xml"`},
		{[]string{"watch", "nope"}, "not_found"},
		{[]string{"get", "nope", "-o", "json"}, "not_found"},
		{[]string{"ls", "-o", "table"}, `want text or json, not "table"`},
	} {
		out, errOut, err := cli(t, n, "", tc.args...)
		if exitCode(t, err) != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("conveyor %s: err %v, stdout %q, stderr %q, want exit 1 and %q", strings.Join(tc.args, " "), err, out, errOut, tc.want)
		}
	}
}

func TestListAndGet(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	writePipeline(t, pipes, "fails", failingPipeline)
	n := startNode(t, t.TempDir(), pipes)
	var ids []string
	for _, p := range []string{"quick", "fails"} {
		_, _, err := cli(t, n, "", "run", p)
		if err != nil && p == "quick" {
			t.Fatal(err)
		}
	}
	page, err := n.client.List(t.Context(), conveyor.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range page.Executions {
		ids = append(ids, ex.ID)
	}
	if len(ids) != 2 {
		t.Fatalf("%d executions, want 2", len(ids))
	}

	out, errOut, err := cli(t, n, "", "ls")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ID PIPELINE STATUS ATTEMPT PROGRESS DURATION CREATED TAGS ERROR" {
		t.Errorf("ls header %q", lines[0])
	}
	// Newest first: the failed execution, on its second attempt, with
	// its error's code.
	if !regexp.MustCompile(`^` + ids[0] + ` +fails +failed +2 +\S+ +[0-9.]+m?s +.* step_failed: `).MatchString(lines[1]) {
		t.Errorf("ls row of the failed execution: %q", lines[1])
	}
	if !regexp.MustCompile(`^` + ids[1] + ` +quick +completed +1 +100.0% +[0-9.]+m?s +.* +- +-$`).MatchString(lines[2]) {
		t.Errorf("ls row of the completed execution: %q", lines[2])
	}
	if errOut != "" {
		t.Errorf("ls wrote to stderr: %q", errOut)
	}

	out, errOut, err = cli(t, n, "", "ls", "--limit", "1", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ex conveyor.Execution
	if err := json.Unmarshal([]byte(out), &ex); err != nil || ex.ID != ids[0] {
		t.Errorf("ls --limit 1 -o json printed %q (%v), want the newest execution alone", out, err)
	}
	if !regexp.MustCompile(`^more: --cursor \S+\n$`).MatchString(errOut) {
		t.Errorf("ls --limit 1: stderr %q, want the more: hint", errOut)
	}

	out = mustCLI(t, n, "", "get", ids[0])
	for _, want := range []string{`(?m)^status +failed$`, `(?m)^attempt +2$`, `(?m)^error +step_failed: `, `(?m)^pipeline +fails$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("get printed no line matching %s:\n%s", want, out)
		}
	}
	if err := json.Unmarshal([]byte(mustCLI(t, n, "", "get", ids[1], "-o", "json")), &ex); err != nil || ex.Status != conveyor.StatusCompleted {
		t.Errorf("get -o json: %+v (%v)", ex, err)
	}

	var p conveyor.PipelineInfo
	for l := range strings.SplitSeq(strings.TrimSpace(mustCLI(t, n, "", "pipelines", "-o", "json")), "\n") {
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.Name == "" {
			t.Errorf("pipelines -o json line %q (%v)", l, err)
		}
	}
	if out := mustCLI(t, n, "", "pipelines", "fails"); !strings.HasPrefix(out, "fails: steps pipeline, 1 retries (waits 1s, exponential, up to 10m0s)\n") {
		t.Errorf("pipelines fails printed:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.CommandContext(t.Context(), binary, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	flag, err := exec.CommandContext(t.Context(), binary, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(flag) {
		t.Errorf("version printed %q, --version %q", out, flag)
	}
	js, err := exec.CommandContext(t.Context(), binary, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Commit, Go string }
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	// What the go command reads from the same binary is the truth.
	info, err := exec.CommandContext(t.Context(), "go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatal(err)
	}
	setting := func(key string) string {
		m := regexp.MustCompile(`(?m)^\s+build\s+` + regexp.QuoteMeta(key) + `=(\S+)$`).FindSubmatch(info)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	mod := regexp.MustCompile(`(?m)^\s+mod\s+\S+\s+(\S+)`).FindSubmatch(info)
	commit := setting("vcs.revision")
	switch {
	case commit == "":
		commit = "unknown"
	case setting("vcs.modified") == "true":
		commit += "-dirty"
	}
	if v.Go != runtime.Version() || v.Commit != commit || mod == nil || v.Version != string(mod[1]) {
		t.Errorf("version -o json: %+v, want go %s, commit %s, version %s\n%s", v, runtime.Version(), commit, mod, info)
	}
	if want := "conveyor " + v.Version + "\ncommit " + v.Commit + "\n" + v.Go + "\n"; string(out) != want {
		t.Errorf("version printed %q, want %q", out, want)
	}
	_, err = exec.CommandContext(t.Context(), binary, "version", "-o", "yaml").Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(exit.Stderr), `want text or json, not "yaml"`) {
		t.Errorf("version -o yaml: %v", err)
	}
}
