package main_test

// End-to-end tests of the batch commands and the tag and batch filters:
// the real binary against a real server.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

const quickPipeline = `
steps:
  - name: hello
    exec:
      command: ["sh", "-c", "echo hello"]
`

// cli runs the conveyor binary against n with stdin and returns its
// stdout and stderr; err is non-nil if it exited non-zero.
func cli(t *testing.T, n *node, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary, append(args, "--server", n.url)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustCLI is cli for commands that must succeed.
func mustCLI(t *testing.T, n *node, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, n, stdin, args...)
	if err != nil {
		t.Fatalf("conveyor %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// rows are the first column of a table printed by ls or batches, without
// the header.
func rows(t *testing.T, table string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("table without a header:\n%s", table)
	}
	var ids []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			ids = append(ids, f[0])
		}
	}
	slices.Sort(ids)
	return ids
}

// memberIDs are the ids of a batch's members as the server lists them.
func memberIDs(t *testing.T, n *node, batch string) []string {
	t.Helper()
	page, err := n.client.List(t.Context(), conveyor.ListFilter{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ex := range page.Executions {
		ids = append(ids, ex.ID)
	}
	slices.Sort(ids)
	return ids
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "batch.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBatchWithABadLineSubmitsNothing: a bad line, found by the CLI or by
// the server, is an error naming its line, and no execution is created.
func TestBatchWithABadLineSubmitsNothing(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes)
	good := `{"pipeline": "quick", "input": {"n": 1}}`
	for _, tc := range []struct {
		name, file string
		args       []string
		want       []string // in stderr
	}{
		{"malformed JSON", good + "\n\n{\"pipeline\": \"quick\",\n", nil, []string{"batch.jsonl:3:"}},
		{"misspelt field", good + "\n{\"pipline\": \"quick\"}\n", nil, []string{"batch.jsonl:2:", `unknown field "pipline"`}},
		{"no pipeline", good + "\n{\"input\": {}}\n", nil, []string{"batch.jsonl:2:", "--pipeline"}},
		{"input not an object", good + "\n\n\n{\"pipeline\": \"quick\", \"input\": [1]}\n", nil, []string{"batch.jsonl:4:", "JSON object"}},
		{"bad tag", "\n" + `{"pipeline": "quick", "tags": {"Size": "big"}}`, nil, []string{"batch.jsonl:2:", `tag "Size"`}},
		{"line not an input", "{\"n\": 1}\n\n[1]\n", []string{"--pipeline", "quick"}, []string{"batch.jsonl:3:", "JSON object"}},
		{"empty file", "\n\n", nil, []string{"batch.jsonl: no executions"}},
		{"unknown pipeline", good + "\n\n" + `{"pipeline": "nope"}` + "\n", nil,
			[]string{`executions[1]: pipeline "nope" does not exist`, "batch.jsonl:3)"}},
		{"bad batch tag", good, []string{"--tag", "env"}, []string{"--tag", `"env"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file)
			out, errOut, err := cli(t, n, "", append([]string{"batch", path}, tc.args...)...)
			if err == nil {
				t.Fatalf("batch succeeded, printing %q", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
	batches, err := n.client.Batches(t.Context(), conveyor.BatchFilter{})
	if err != nil {
		t.Fatal(err)
	}
	executions, err := n.client.List(t.Context(), conveyor.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(batches.Batches) != 0 || len(executions.Executions) != 0 {
		t.Fatalf("bad batches created %d batches and %d executions, want none", len(batches.Batches), len(executions.Executions))
	}
}

// TestBatchListedByBatchesAndLs submits a batch and an execution with
// tags and finds them with batches, ls --batch and ls --tag.
func TestBatchListedByBatchesAndLs(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes)
	path := writeFile(t, `{"pipeline": "quick", "input": {"n": 1}, "tags": {"size": "big"}}

{"pipeline": "quick", "input": {"n": 2}}
{"pipeline": "quick", "tags": {"env": "own"}}
`)
	batch := strings.TrimSpace(mustCLI(t, n, "", "batch", path, "--tag", "env:test", "--tag", "team:a"))
	solo := strings.TrimSpace(mustCLI(t, n, "", "run", "quick", "-d", "--tag", "env:other"))
	members := memberIDs(t, n, batch)
	if len(members) != 3 || slices.Contains(members, solo) {
		t.Fatalf("batch %s has members %v, want 3 without %s", batch, members, solo)
	}

	if got := rows(t, mustCLI(t, n, "", "batches")); !slices.Equal(got, []string{batch}) {
		t.Errorf("batches lists %v, want [%s]", got, batch)
	}
	if got := rows(t, mustCLI(t, n, "", "batches", "--tag", "team:a", "--tag", "env:test")); !slices.Equal(got, []string{batch}) {
		t.Errorf("batches --tag team:a --tag env:test lists %v, want [%s]", got, batch)
	}
	if got := rows(t, mustCLI(t, n, "", "batches", "--tag", "env:other")); len(got) != 0 {
		t.Errorf("batches --tag env:other lists %v, want none", got)
	}
	var b conveyor.Batch
	if err := json.Unmarshal([]byte(mustCLI(t, n, "", "batches", batch, "-o", "json")), &b); err != nil {
		t.Fatal(err)
	}
	if b.ID != batch || b.Total != 3 || b.Tags["env"] != "test" || b.Tags["team"] != "a" {
		t.Errorf("batches %s printed %+v, want the batch of 3 with its tags", batch, b)
	}

	if got := rows(t, mustCLI(t, n, "", "ls", "--batch", batch)); !slices.Equal(got, members) {
		t.Errorf("ls --batch lists %v, want %v", got, members)
	}
	big := rows(t, mustCLI(t, n, "", "ls", "--tag", "size:big"))
	if len(big) != 1 || !slices.Contains(members, big[0]) {
		t.Errorf("ls --tag size:big lists %v, want one member", big)
	}
	// The batch's env:test goes to every member but the one with its own env.
	if got := rows(t, mustCLI(t, n, "", "ls", "--tag", "env:test")); len(got) != 2 || !slices.Contains(got, big[0]) {
		t.Errorf("ls --tag env:test lists %v, want two members with %s", got, big[0])
	}
	if got := rows(t, mustCLI(t, n, "", "ls", "--tag", "env:test", "--tag", "size:big", "--batch", batch)); !slices.Equal(got, big) {
		t.Errorf("ls --tag env:test --tag size:big --batch lists %v, want %v", got, big)
	}
	if got := rows(t, mustCLI(t, n, "", "ls", "--tag", "env:other")); !slices.Equal(got, []string{solo}) {
		t.Errorf("ls --tag env:other lists %v, want [%s]", got, solo)
	}
	if _, errOut, err := cli(t, n, "", "ls", "--tag", "env"); err == nil || !strings.Contains(errOut, "key:value") {
		t.Errorf("ls --tag env: err %v, stderr %q, want an error asking for key:value", err, errOut)
	}
}

// TestBatchFromStdinWithPipeline reads inputs from stdin and runs them all
// with --pipeline.
func TestBatchFromStdinWithPipeline(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes)
	batch := strings.TrimSpace(mustCLI(t, n, "{\"n\": 1}\n\n  {\"n\": 2}  \r\n", "batch", "-", "--pipeline", "quick"))
	page, err := n.client.List(t.Context(), conveyor.ListFilter{Batch: batch, WithInput: true})
	if err != nil {
		t.Fatal(err)
	}
	var inputs []int
	for _, ex := range page.Executions {
		if ex.Pipeline != "quick" {
			t.Errorf("member %s runs %q, want quick", ex.ID, ex.Pipeline)
		}
		var in struct{ N int }
		if err := json.Unmarshal(ex.Input, &in); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, in.N)
	}
	slices.Sort(inputs)
	if !slices.Equal(inputs, []int{1, 2}) {
		t.Fatalf("members have inputs n=%v, want 1 and 2", inputs)
	}
}

// TestCancelBatch cancels a batch with one member running and one waiting,
// then cannot cancel it again.
func TestCancelBatch(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "slow", `
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "exec sleep 60"]
`)
	n := startNode(t, t.TempDir(), pipes, "--concurrency", "1")
	batch := strings.TrimSpace(mustCLI(t, n, "{}\n{}\n", "batch", "-", "--pipeline", "slow"))
	waitFor(t, "a member to run", func() bool {
		b, err := n.client.Batch(t.Context(), batch)
		return err == nil && b.Counts.Running == 1
	})

	out := mustCLI(t, n, "", "cancel", "--batch", batch)
	if !strings.Contains(out, batch) || !strings.Contains(out, "cancel requested") {
		t.Errorf("cancel --batch printed %q", out)
	}
	waitFor(t, "the batch to be cancelled", func() bool {
		b, err := n.client.Batch(t.Context(), batch)
		return err == nil && b.Status == conveyor.StatusCancelled
	})
	page, err := n.client.List(t.Context(), conveyor.ListFilter{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range page.Executions {
		if ex.Status != conveyor.StatusCancelled {
			t.Errorf("member %s is %s, want cancelled", ex.ID, ex.Status)
		}
	}
	if got := rows(t, mustCLI(t, n, "", "batches", "--status", "cancelled")); !slices.Equal(got, []string{batch}) {
		t.Errorf("batches --status cancelled lists %v, want [%s]", got, batch)
	}

	if _, errOut, err := cli(t, n, "", "cancel", "--batch", batch); err == nil || !strings.Contains(errOut, "already cancelled") {
		t.Errorf("second cancel --batch: err %v, stderr %q, want already cancelled", err, errOut)
	}
	if _, errOut, err := cli(t, n, "", "cancel", "--batch", batch, page.Executions[0].ID); err == nil || !strings.Contains(errOut, "--batch") {
		t.Errorf("cancel with an ID and --batch: err %v, stderr %q, want a usage error", err, errOut)
	}
	if _, errOut, err := cli(t, n, "", "batches", "nope"); err == nil || !strings.Contains(errOut, "not_found") {
		t.Errorf("batches nope: err %v, stderr %q, want not_found", err, errOut)
	}
}
