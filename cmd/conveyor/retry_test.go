package main_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestRetryCommand: retry prints the new execution's id (-o json: the
// execution), watches it with --watch, and refuses an execution that
// has not ended and an unknown one.
func TestRetryCommand(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	writePipeline(t, pipes, "fails", failingPipeline)
	writePipeline(t, pipes, "waits", waitingPipeline)
	n := startNode(t, t.TempDir(), pipes)
	submit := func(p string) string {
		t.Helper()
		return strings.TrimSpace(mustCLI(t, n, "", "run", "-d", p))
	}
	failed := submit("fails")
	waitFor(t, "the execution to fail", func() bool { return status(t, n.client, failed).Status == conveyor.StatusFailed })

	id := strings.TrimSpace(mustCLI(t, n, "", "retry", failed))
	if ex := status(t, n.client, id); ex.RetryOf == nil || *ex.RetryOf != failed || ex.Pipeline != "fails" {
		t.Errorf("retry printed %q, an execution %+v; want a new one of fails with retry_of %s", id, ex, failed)
	}
	if out := mustCLI(t, n, "", "get", id); !regexp.MustCompile(`(?m)^retry of +` + failed + `$`).MatchString(out) {
		t.Errorf("get of the retry has no retry of line:\n%s", out)
	}

	var ex conveyor.Execution
	out := mustCLI(t, n, "", "retry", failed, "-o", "json")
	if err := json.Unmarshal([]byte(out), &ex); err != nil || ex.RetryOf == nil || *ex.RetryOf != failed || ex.ID == id {
		t.Errorf("retry -o json printed %q (%v), want a new execution with retry_of %s", out, err, failed)
	}

	// --watch: as run, exit 1 unless the new execution completes.
	out, errOut, err := cli(t, n, "", "retry", failed, "--watch")
	if code := exitCode(t, err); code != 1 {
		t.Errorf("retry --watch of a failing pipeline exited %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !regexp.MustCompile(`(?m)^\S+: retry of `+failed+`\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^\S+ fails failed in \S+ \(attempt 2\)$`).MatchString(out) {
		t.Errorf("retry --watch printed:\n%s", out)
	}
	quick := submit("quick")
	waitFor(t, "the execution to complete", func() bool { return status(t, n.client, quick).Status == conveyor.StatusCompleted })
	out, errOut, err = cli(t, n, "", "retry", "-w", quick, "-o", "json")
	if code := exitCode(t, err); code != 0 {
		t.Fatalf("retry -w -o json of a completed execution exited %d\n%s\n%s", code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &ex); err != nil || ex.Status != conveyor.StatusCompleted || ex.RetryOf == nil || *ex.RetryOf != quick {
		t.Errorf("retry -w -o json printed %q (%v), want the completed retry alone", out, err)
	}

	waiting := submit("waits")
	for _, c := range []struct{ id, says string }{{waiting, "conflict"}, {"nope", "not_found"}} {
		out, errOut, err := cli(t, n, "", "retry", c.id)
		if code := exitCode(t, err); code != 1 || !strings.Contains(errOut, c.says) || out != "" {
			t.Errorf("retry %s exited %d, printed %q, stderr %q; want 1 and %s", c.id, code, out, errOut, c.says)
		}
	}
}
