package main_test

import (
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestIdempotencyKeyFlag: run -d and batch with --idempotency-key print
// the first submission's id when sent again, and a malformed key is an
// error before anything is sent.
func TestIdempotencyKeyFlag(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes)

	first := strings.TrimSpace(mustCLI(t, n, "", "run", "quick", "-d", "--input", `{"n": 1}`, "--idempotency-key", "deploy-42"))
	again := strings.TrimSpace(mustCLI(t, n, "", "run", "quick", "-d", "--input", `{"n": 1}`, "--idempotency-key", "deploy-42"))
	if first == "" || again != first {
		t.Errorf("run with one key twice printed %q and %q, want the same id", first, again)
	}
	_, errOut, err := cli(t, n, "", "run", "quick", "-d", "--input", `{"n": 2}`, "--idempotency-key", "deploy-42")
	if err == nil || !strings.Contains(errOut, conveyor.EIDEMPOTENCYMISMATCH) {
		t.Errorf("another input under the key: err %v, stderr %q; want %s", err, errOut, conveyor.EIDEMPOTENCYMISMATCH)
	}

	lines := "{\"pipeline\": \"quick\"}\n{\"pipeline\": \"quick\"}\n"
	b1 := strings.TrimSpace(mustCLI(t, n, lines, "batch", "-", "--idempotency-key", "nightly"))
	b2 := strings.TrimSpace(mustCLI(t, n, lines, "batch", "-", "--idempotency-key", "nightly"))
	if b1 == "" || b2 != b1 {
		t.Errorf("batch with one key twice printed %q and %q, want the same id", b1, b2)
	}

	_, errOut, err = cli(t, n, "", "run", "quick", "-d", "--idempotency-key", "tab\there")
	if err == nil || !strings.Contains(errOut, "--idempotency-key") {
		t.Errorf("a malformed key: err %v, stderr %q; want an error naming the flag", err, errOut)
	}
	page, err := n.client.List(t.Context(), conveyor.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Executions) != 3 {
		t.Errorf("%d executions stored, want 3 (one run, a batch of two)", len(page.Executions))
	}
}
