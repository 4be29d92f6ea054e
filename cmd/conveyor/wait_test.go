package main_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestRunLater: run --delay and --run-at submit an execution that waits
// (get shows until when); a bad value, or both flags, submit nothing.
func TestRunLater(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes)

	later := strings.TrimSpace(mustCLI(t, n, "", "run", "-d", "--delay", "1h", "quick"))
	if ex := status(t, n.client, later); ex.Status != conveyor.StatusPending || ex.RunAt == nil || time.Until(*ex.RunAt) < 50*time.Minute {
		t.Errorf("run --delay 1h: %+v, want pending, an hour ahead", ex)
	}
	if out := mustCLI(t, n, "", "get", later); !regexp.MustCompile(`(?m)^starts at +\S+ \S+$`).MatchString(out) {
		t.Errorf("get of a delayed execution has no starts at line:\n%s", out)
	}
	past := strings.TrimSpace(mustCLI(t, n, "", "run", "-d", "--run-at", "2020-01-01T00:00:00Z", "quick"))
	waitFor(t, "the execution run at a past time to complete", func() bool {
		return status(t, n.client, past).Status == conveyor.StatusCompleted
	})

	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--delay", "soon"}, "delay"},
		{[]string{"--delay", "-5s"}, "delay"},
		{[]string{"--run-at", "tomorrow"}, "run_at"},
		{[]string{"--run-at", "2020-01-01T00:00:00Z", "--delay", "1s"}, "delay"},
	} {
		out, errOut, err := cli(t, n, "", append(append([]string{"run", "-d"}, tc.args...), "quick")...)
		if code := exitCode(t, err); code != 1 || !strings.Contains(errOut, tc.says) || out != "" {
			t.Errorf("run %s exited %d, printed %q, stderr %q; want 1 naming %s", strings.Join(tc.args, " "), code, out, errOut, tc.says)
		}
	}
	// A batch line with a bad delay is named, and nothing is submitted.
	lines := `{"pipeline": "quick", "delay": "1h"}` + "\n" + `{"pipeline": "quick", "delay": "later"}` + "\n"
	if out, errOut, err := cli(t, n, lines, "batch", "-"); exitCode(t, err) != 1 || !strings.Contains(errOut, "delay") ||
		!strings.Contains(errOut, "stdin:2") || out != "" {
		t.Errorf("batch with a bad delay: printed %q, stderr %q, %v; want exit 1 naming delay and stdin:2", out, errOut, err)
	}
	page, err := n.client.List(t.Context(), conveyor.ListFilter{})
	if err != nil || len(page.Executions) != 2 {
		t.Errorf("executions after the refused runs: %+v, %v; want the 2 accepted", page, err)
	}
}
