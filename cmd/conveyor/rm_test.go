package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestRmCommand: rm deletes final executions and says so; a running one
// is a conflict and an unknown one not found, and rm without ids says
// what it takes.
func TestRmCommand(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	writePipeline(t, pipes, "hold", "steps:\n  - name: hold\n    sleep: 1h\n")
	n := startNode(t, t.TempDir(), pipes, "--retention", "30d")
	ctx := t.Context()
	var done []string
	for range 2 {
		ex, err := n.client.Submit(ctx, "quick", nil)
		if err != nil {
			t.Fatal(err)
		}
		if ex, err = n.client.Wait(ctx, ex.ID); err != nil || ex.Status != conveyor.StatusCompleted {
			t.Fatalf("quick: %+v, %v", ex, err)
		}
		done = append(done, ex.ID)
	}
	held, err := n.client.Submit(ctx, "hold", nil)
	if err != nil {
		t.Fatal(err)
	}

	out := mustCLI(t, n, "", append([]string{"rm"}, done...)...)
	if want := done[0] + ": deleted\n" + done[1] + ": deleted\n"; out != want {
		t.Errorf("rm printed %q, want %q", out, want)
	}
	for _, id := range done {
		if _, err := n.client.Get(ctx, id); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
			t.Errorf("%s after rm: %v, want not_found", id, err)
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"rm"}, "rm takes the ids of the executions to delete"},
		{[]string{"rm", done[0]}, "not_found"},
		{[]string{"rm", held.ID}, "only a final execution can be deleted (cancel it first)"},
	} {
		if _, errOut, err := cli(t, n, "", bad.args...); err == nil || !strings.Contains(errOut, bad.want) {
			t.Errorf("conveyor %s: err %v, stderr %q; want an error with %q", strings.Join(bad.args, " "), err, errOut, bad.want)
		}
	}
	if !strings.Contains(n.stderr.String(), "deleting final executions older than the retention") ||
		!strings.Contains(n.stderr.String(), "retention=720h0m0s") {
		t.Errorf("serve --retention 30d does not log its retention:\n%s", n.stderr)
	}
}

// TestServeRetentionFlag: a bad --retention (or CONVEYOR_RETENTION)
// stops serve at once with a clear error, before it creates anything.
func TestServeRetentionFlag(t *testing.T) {
	t.Parallel()
	for _, bad := range []struct {
		value, want string
	}{
		{"-1d", "must not be negative (0: keep forever), got -1d"},
		{"-5m", "must not be negative"},
		{"3x", `want a duration such as 30d, 12h or 90m (0: keep forever), not "3x"`},
		{"2w", `not "2w"`},
		{"1.5d", `not "1.5d"`},
		{"d", `not "d"`},
		{"30s", "retention must be at least 1m0s (0: keep executions forever), got 30s"},
	} {
		for _, env := range []bool{false, true} {
			data := t.TempDir()
			args := []string{"serve", "--addr", "127.0.0.1:0", "--data", data}
			cmd := exec.CommandContext(t.Context(), binary, args...)
			if env {
				cmd.Env = append(os.Environ(), "CONVEYOR_RETENTION="+bad.value)
			} else {
				cmd.Args = append(cmd.Args, "--retention", bad.value)
			}
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), bad.want) {
				t.Errorf("serve with retention %q (env %v): err %v, output %s", bad.value, env, err, out)
			}
			if _, err := os.Stat(filepath.Join(data, "conveyor.db")); !os.IsNotExist(err) {
				t.Errorf("serve with retention %q created its database: %v", bad.value, err)
			}
		}
	}
}
