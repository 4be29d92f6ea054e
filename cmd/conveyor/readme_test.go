package main_test

// The README's walk-through and command lines, run as a reader would run
// them, so that the README stays true.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// walkMarker precedes each ```sh block of the README that
// TestREADMEWalkThrough runs.
const walkMarker = "<!-- README walk-through: cmd/conveyor/readme_test.go runs these blocks -->"

// readmeShellBlocks returns the ```sh blocks of the README, those after
// walkMarker only if marked.
func readmeShellBlocks(t *testing.T, marked bool) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	rest := string(b)
	for {
		i := strings.Index(rest, "```sh\n")
		if i < 0 {
			return blocks
		}
		isMarked := strings.HasSuffix(strings.TrimRight(rest[:i], "\n"), walkMarker)
		rest = rest[i+len("```sh\n"):]
		end := strings.Index(rest, "```\n")
		if end < 0 {
			t.Fatal("README.md: a ```sh block has no end")
		}
		if isMarked || !marked {
			blocks = append(blocks, rest[:end])
		}
		rest = rest[end:]
	}
}

// curlCall is one curl command of the walk-through: what it asked and
// the status it got (000: no answer).
type curlCall struct{ status, method, url string }

var curlLine = regexp.MustCompile(`(?m)^curl-call: (\d{3}) (\S+) (\S+)$`)

// TestREADMEWalkThrough runs the README's curl walk-through with bash and
// the real curl against a node serving examples/pipelines, the README's
// localhost:8080 swapped for the node's address, and checks what its
// comments promise.
func TestREADMEWalkThrough(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "sed", "grep", "tee"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed to run the README's walk-through: %v", tool, err)
			}
			t.Skipf("SKIPPED: %s is needed to run the README's walk-through: %v", tool, err)
		}
	}
	blocks := readmeShellBlocks(t, true)
	if len(blocks) == 0 {
		t.Fatalf("README.md has no ```sh block after %q", walkMarker)
	}
	n := startNode(t, t.TempDir(), "../../examples/pipelines")
	host := strings.TrimPrefix(n.url, "http://")

	// Each curl reports its answer on stderr; the reader's curl is the
	// same program without the report.
	script := "set -euo pipefail\n" +
		`curl() { command curl -w '%{stderr}\ncurl-call: %{http_code} %{method} %{url_effective}\n' "$@"; }` + "\n" +
		strings.ReplaceAll(strings.Join(blocks, "\n"), "localhost:8080", host) +
		"\necho \"walk-through ids: ${ID-} ${SLOW-}\"\n"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("script:\n%s\nstdout:\n%s\nstderr:\n%s\nserver log:\n%s", script, &stdout, &stderr, n.stderr)
		}
	})
	if err != nil {
		t.Fatalf("the walk-through stopped: %v", err)
	}

	ids := regexp.MustCompile(`walk-through ids: (\S+) (\S+)`).FindStringSubmatch(stdout.String())
	if ids == nil {
		t.Fatal("the walk-through did not set ID and SLOW")
	}
	id, slow := ids[1], ids[2]
	var calls []curlCall
	for _, m := range curlLine.FindAllStringSubmatch(stderr.String(), -1) {
		calls = append(calls, curlCall{status: m[1], method: m[2], url: strings.TrimPrefix(m[3], n.url)})
	}
	// answered returns the status of the first call of method to path.
	answered := func(method, path string) string {
		for _, c := range calls {
			if c.method == method && c.url == path {
				return c.status
			}
		}
		t.Errorf("the walk-through does not call %s %s; it calls %v", method, path, calls)
		return ""
	}
	for _, c := range calls {
		if !strings.HasPrefix(c.status, "2") {
			t.Errorf("%s %s answered %s", c.method, c.url, c.status)
		}
	}
	if got := answered("POST", "/executions"); got != "202" {
		t.Errorf("POST /executions answered %s, want 202", got)
	}
	if !strings.Contains(stderr.String(), "Location: /executions/"+id+"\r\n") {
		t.Errorf("no Location header for %s among the headers shown", id)
	}
	if got := answered("GET", "/executions/"+id+"/progress"); got != "200" && got != "204" {
		t.Errorf("progress answered %s, want 200 or 204", got)
	}
	if got := answered("POST", "/executions/"+slow+"/cancel"); got != "202" {
		t.Errorf("cancel answered %s, want 202", got)
	}
	if got := status(t, n.client, slow); got.Status != conveyor.StatusCancelled {
		t.Errorf("the cancelled execution is %s, want cancelled", got.Status)
	}
	for _, want := range []string{"event: cancelled\n", `"status":"cancelled"`, `{"events":[{"type":"started"`, `{"lines":[`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the walk-through printed no %s", want)
		}
	}
	answered("GET", "/executions/"+id+"/events")
	answered("GET", "/executions/"+id+"/logs")
}

// TestREADMECommandsParse: every conveyor command line in the README's
// ```sh blocks names a real command with flags it takes. --help makes
// each one parse its flags and stop.
func TestREADMECommandsParse(t *testing.T) {
	t.Parallel()
	var lines []string
	for _, block := range readmeShellBlocks(t, false) {
		for line := range strings.Lines(strings.ReplaceAll(block, "\\\n", " ")) {
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			f := strings.Fields(line)
			if len(f) > 1 && (f[0] == "conveyor" || f[0] == "./conveyor") {
				lines = append(lines, strings.Join(f, " "))
			}
		}
	}
	if len(lines) == 0 {
		t.Fatal("no conveyor command line in README.md")
	}
	for _, line := range lines {
		args := strings.Fields(line)[1:]
		for i, a := range args {
			args[i] = strings.Trim(a, `'"`)
		}
		out, err := exec.CommandContext(t.Context(), binary, append(args, "--help")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage:\n  conveyor "+args[0]) {
			t.Errorf("%s: %v\n%s", line, err, out)
		}
	}
}
