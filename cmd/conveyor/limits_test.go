package main_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func TestServeLimitFlags(t *testing.T) {
	pipes := t.TempDir()
	writePipeline(t, pipes, "hold", "steps:\n  - name: hold\n    sleep: 1h\n")
	// A token every 1000 s with one banked: the second submission is
	// refused however slow the machine.
	n := startNode(t, t.TempDir(), pipes, "--rate-limit", "0.001", "--max-streams-per-client", "1")
	ctx := t.Context()
	ex, err := n.client.Submit(ctx, "hold", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.client.Submit(ctx, "hold", nil); conveyor.ErrorCode(err) != conveyor.ERATELIMITED {
		t.Fatalf("second submission with --rate-limit 0.001: %v, want rate_limited", err)
	}
	s, err := n.client.Watch(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.client.Watch(ctx, ex.ID); conveyor.ErrorCode(err) != conveyor.ERATELIMITED {
		t.Fatalf("second stream with --max-streams-per-client 1: %v, want rate_limited", err)
	}

	for _, flag := range []string{"--rate-limit", "--max-streams-per-client", "--max-streams", "--max-pending"} {
		out, err := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--pipelines", pipes, flag, "-1").CombinedOutput()
		if err == nil || !strings.Contains(string(out), flag+" must not be negative (0: no limit)") {
			t.Errorf("serve %s -1: err %v, output %s", flag, err, out)
		}
	}
}
