package main_test

// Resume from a checkpoint after a node is killed with SIGKILL: real
// processes, real exec steps leaving a marker file per step run.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// resumePipeline has three steps; each run of a step makes the file
// marks/STEP.ATTEMPT (never twice: set -C) holding the checkpoint it
// resumed from. On attempt 1, "two" records a checkpoint, says so and
// waits to be killed; on a later attempt it waits for the file gate.
func resumePipeline(marks, gate string) string {
	mark := `set -C; printf %s "$CONVEYOR_CHECKPOINT" > "$MARKS/$CONVEYOR_STEP.$CONVEYOR_ATTEMPT"`
	return fmt.Sprintf(`
retries: 1
resume: true
steps:
  - name: one
    exec:
      command: ["sh", "-c", %[3]q]
      env: {MARKS: %[1]q}
  - name: two
    exec:
      command:
        - sh
        - -c
        - |
          %[3]s
          if [ "$CONVEYOR_ATTEMPT" = 1 ]; then
            echo '::progress 1/2 row 500'
            echo '::checkpoint {"row": 500}'
            echo '::progress 1/2 checkpointed'
            exec sleep 60
          fi
          while [ ! -f "$GATE" ]; do sleep 0.05; done
          echo '::progress 2/2 done'
      env: {MARKS: %[1]q, GATE: %[2]q}
  - name: three
    exec:
      command: ["sh", "-c", %[3]q]
      env: {MARKS: %[1]q}
`, marks, gate, mark)
}

// waitCheckpointed waits until execution id has printed its checkpoint
// and returns the node running it. The progress line after the
// ::checkpoint line is read only once the checkpoint is stored.
func waitCheckpointed(t *testing.T, c *client.Client, id string) string {
	t.Helper()
	var node string
	waitFor(t, "the checkpoint of step two", func() bool {
		ex := status(t, c, id)
		node = ex.Node
		return ex.Status == conveyor.StatusRunning && ex.Progress != nil && ex.Progress.Message == "checkpointed"
	})
	return node
}

// checkResumed checks what a kill in step two left for the node that
// runs attempt 2: it resumes in step two with the checkpoint and its
// progress at 50%, where attempt 1 was; step one does not run again;
// the execution completes.
func checkResumed(t *testing.T, c *client.Client, id, marks, gate string) {
	t.Helper()
	ctx := context.Background()
	// Attempt 2's own first progress: without attempt 1's message.
	var p *conveyor.Progress
	waitLong(t, "attempt 2 to report step two", func() bool {
		ex := status(t, c, id)
		p = ex.Progress
		return ex.Attempt == 2 && ex.Status == conveyor.StatusRunning && p != nil && p.CurrentStep == 2 && p.Message == ""
	})
	if p.Percentage == nil || *p.Percentage != 50 {
		t.Errorf("attempt 2 began step two at %s, want 50%%, where attempt 1 was", toJSON(p))
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the execution to complete", func() bool { return status(t, c, id).Status.Final() })
	if ex := status(t, c, id); ex.Status != conveyor.StatusCompleted || ex.Attempt != 2 {
		t.Fatalf("%s on attempt %d %+v, want completed on attempt 2", ex.Status, ex.Attempt, ex.Error)
	}

	runs := map[string]string{} // STEP.ATTEMPT -> the checkpoint it resumed from
	entries, err := os.ReadDir(marks)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(marks, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		runs[e.Name()] = string(b)
	}
	want := map[string]string{"one.1": "", "two.1": "", "two.2": `{"row": 500}`, "three.2": ""}
	if !maps.Equal(runs, want) {
		t.Errorf("step runs (file: checkpoint) %q, want %q", runs, want)
	}

	evs, err := c.Events(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		if ev.Type == conveyor.EventProgress {
			continue
		}
		types = append(types, string(ev.Type))
		if ev.Type != conveyor.EventRetrying {
			continue
		}
		if ev.Error == nil || ev.Error.Code != conveyor.EINTERRUPTED {
			t.Errorf("retrying with %+v, want interrupted", ev.Error)
		}
		if p := ev.Progress; p == nil || p.CurrentStep != 2 || p.Percentage == nil || *p.Percentage != 50 {
			t.Errorf("retrying with progress %s, want step 2 at 50%%", toJSON(p))
		}
	}
	if want := []string{"started", "retrying", "started", "completed"}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
}

// waitLong is waitFor with room for a lease to expire and a rescue on a
// loaded machine.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResumeAfterKill: a three-step pipeline with resume: true, its node
// killed with SIGKILL in step two after a checkpoint, resumes in step two
// with that checkpoint and does not run step one again: on SQLite, where
// the restarted node recovers it, and on PostgreSQL, where the other node
// rescues it once the lease expires.
func TestResumeAfterKill(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		data, pipes, marks := t.TempDir(), t.TempDir(), t.TempDir()
		gate := filepath.Join(t.TempDir(), "gate")
		writePipeline(t, pipes, "resume", resumePipeline(marks, gate))
		n := startNode(t, data, pipes)
		ex, err := n.client.Submit(context.Background(), "resume", nil)
		if err != nil {
			t.Fatal(err)
		}
		waitCheckpointed(t, n.client, ex.ID)
		n.kill()

		n2 := startNode(t, data, pipes)
		checkResumed(t, n2.client, ex.ID, marks, gate)
	})
	t.Run("postgres", func(t *testing.T) {
		marks, gate := t.TempDir(), filepath.Join(t.TempDir(), "gate")
		nodes, _ := cluster(t, 2, map[string]string{"resume": resumePipeline(marks, gate)}, "--lease", "3s")
		ex, err := nodes[0].client.Submit(context.Background(), "resume", nil)
		if err != nil {
			t.Fatal(err)
		}
		victim, survivor := nodes[0], nodes[1]
		if waitCheckpointed(t, nodes[0].client, ex.ID) == "node-1" {
			victim, survivor = nodes[1], nodes[0]
		}
		victim.kill()
		checkResumed(t, survivor.client, ex.ID, marks, gate)
	})
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
