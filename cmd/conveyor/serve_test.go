package main_test

import (
	"os"
	"strings"
	"testing"
)

// TestServeWarnsWithoutPipelines: a node with nothing to run says why and
// how to load pipelines, whether its folder is empty or, left to the
// default, missing; a node with pipelines says nothing of the kind.
func TestServeWarnsWithoutPipelines(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("pipelines"); err == nil {
		t.Fatal("the test runs where a ./pipelines folder exists: serve would load it")
	}
	empty := t.TempDir()
	for _, tt := range []struct {
		name, pipelines, why string
	}{
		{"empty folder", empty, "no pipelines: every submission will be refused, as " + empty + " holds no .yaml or .yml file"},
		{"no folder", "", "no pipelines: every submission will be refused, as there is no ./pipelines folder"},
	} {
		n := startNode(t, t.TempDir(), tt.pipelines)
		waitFor(t, tt.name+": the warning", func() bool { return strings.Contains(n.stderr.String(), "no pipelines") })
		if log := n.stderr.String(); !strings.Contains(log, tt.why) || !strings.Contains(log, "--pipelines DIR") {
			t.Errorf("%s: the warning does not say %q and how to load pipelines:\n%s", tt.name, tt.why, log)
		}
	}

	n := startNode(t, t.TempDir(), "../../examples/pipelines")
	n.terminate(t) // its whole log is read once it has exited
	if log := n.stderr.String(); strings.Contains(log, "no pipelines") {
		t.Errorf("a node with pipelines warns:\n%s", log)
	}
}
