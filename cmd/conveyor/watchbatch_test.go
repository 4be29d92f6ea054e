package main_test

// End-to-end tests of watch --batch: the real binary against a real
// server, its output a pipe (plain lines, no bars).

import (
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// exitCode is the exit status of a cli run: 0 for a nil error.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("conveyor did not run: %v", err)
	}
	return exit.ExitCode()
}

// memberEnded reports whether out has a line for member id with status
// final: its final event, or its opening status if it had ended before
// the stream opened.
func memberEnded(out, id, final string) bool {
	return regexp.MustCompile(`(?m)^\S+ ` + regexp.QuoteMeta(id) + ` (status )?` + final + `\b`).MatchString(out)
}

func TestWatchBatch(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	writePipeline(t, pipes, "fails", `
retries: 1
steps:
  - name: fail
    exec:
      command: ["sh", "-c", "echo broken >&2; exit 3"]
`)
	n := startNode(t, t.TempDir(), pipes)

	t.Run("completed", func(t *testing.T) {
		t.Parallel()
		batch := strings.TrimSpace(mustCLI(t, n, "{}\n{}\n{}\n", "batch", "-", "--pipeline", "quick"))
		out, errOut, err := cli(t, n, "", "watch", "--batch", batch)
		if code := exitCode(t, err); code != 0 {
			t.Fatalf("watch --batch exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, id := range memberIDs(t, n, batch) {
			if !memberEnded(out, id, "completed") {
				t.Errorf("no completed line for member %s:\n%s", id, out)
			}
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		want := "batch " + batch + " completed 100.0% of 3: pending 0, running 0, completed 3, failed 0, cancelled 0"
		if last := lines[len(lines)-1]; !strings.HasSuffix(last, want) {
			t.Errorf("last line %q, want it to end with %q", last, want)
		}
		if strings.Contains(out, " progress") {
			t.Errorf("progress events printed:\n%s", out)
		}
	})

	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		file := writeFile(t, `{"pipeline": "quick"}`+"\n"+`{"pipeline": "fails"}`+"\n")
		batch := strings.TrimSpace(mustCLI(t, n, "", "batch", file))
		out, errOut, err := cli(t, n, "", "watch", "--batch", batch)
		if code := exitCode(t, err); code != 1 {
			t.Fatalf("watch --batch exited %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "batch "+batch+" failed") {
			t.Errorf("stderr %q does not say the batch failed", errOut)
		}
		ended := map[string]int{}
		for _, id := range memberIDs(t, n, batch) {
			for _, final := range []string{"completed", "failed"} {
				if memberEnded(out, id, final) {
					ended[final]++
				}
			}
		}
		if ended["completed"] != 1 || ended["failed"] != 1 {
			t.Errorf("members ended %v, want one completed and one failed:\n%s", ended, out)
		}
		if !strings.Contains(out, "batch "+batch+" failed 100.0% of 2: pending 0, running 0, completed 1, failed 1, cancelled 0") {
			t.Errorf("no final batch line:\n%s", out)
		}
	})

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			args []string
			want string // in stderr
		}{
			{[]string{"watch", "--batch", "nope"}, "not_found"},
			{[]string{"watch", "--batch", "nope", "some-execution"}, "--batch"},
			{[]string{"watch"}, "--batch"},
		} {
			out, errOut, err := cli(t, n, "", tc.args...)
			if exitCode(t, err) == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("conveyor %s: err %v, stderr %q, want an error with %q", strings.Join(tc.args, " "), err, errOut, tc.want)
			}
			if out != "" {
				t.Errorf("conveyor %s printed %q, want nothing", strings.Join(tc.args, " "), out)
			}
		}
	})
}
