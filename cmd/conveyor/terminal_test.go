package main_test

// The live bars, drawn in a real pseudo-terminal: run and watch must
// end when their executions do, whatever the terminal's width.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// terminalRun is one run of the binary in a pseudo-terminal.
type terminalRun struct {
	out  string // all it wrote: stdout and stderr share the terminal
	code int
}

// hangDeadline is how long one run in a terminal may take. A run takes
// well under a second; a deadlock takes forever, so any bound finds it.
const hangDeadline = 60 * time.Second

// inTerminal runs the binary with its stdin, stdout and stderr on a
// pseudo-terminal cols wide. If it does not exit within hangDeadline it
// gets SIGQUIT, which makes the Go runtime print every goroutine's stack,
// and the test fails with that dump.
func inTerminal(t *testing.T, n *node, cols uint16, args ...string) terminalRun {
	t.Helper()
	// Not CommandContext: a hang must end in SIGQUIT and its dump, not
	// in the context's SIGKILL.
	cmd := exec.Command(binary, append(args, "--server", n.url)...) //nolint:noctx // see above
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out := &syncBuffer{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			k, err := tty.Read(buf)
			out.WriteString(string(buf[:k]))
			if err != nil {
				return // EIO once the process and its terminal are gone
			}
		}
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(hangDeadline):
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		<-copied
		t.Fatalf("conveyor %s hung in a %d-column terminal; its goroutines:\n%s", strings.Join(args, " "), cols, out)
	}
	<-copied
	code := 0
	var exit *exec.ExitError
	if errors.As(waitErr, &exit) {
		code = exit.ExitCode()
	} else if waitErr != nil {
		t.Fatal(waitErr)
	}
	return terminalRun{out: out.String(), code: code}
}

// busyPipeline reports progress as fast as it can, so that bar updates
// and the end race with mpb's drawing.
const busyPipeline = `
steps:
  - name: count
    exec:
      command: ["sh", "-c", "i=1; while [ $i -le 40 ]; do echo \"::progress $i/40 item $i\"; i=$((i+1)); done"]
  - name: tidy
    exec:
      command: ["true"]
`

func TestBarsNeverHang(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "busy", busyPipeline)
	n := startNode(t, t.TempDir(), pipes)
	runs := 15
	if testing.Short() {
		runs = 3
	}
	started := regexp.MustCompile(`(?m)^([0-9a-f-]{36}) busy\r?$`)
	for _, cols := range []uint16{0, 40, 200} {
		t.Run(fmt.Sprintf("run-%d-columns", cols), func(t *testing.T) {
			t.Parallel()
			for range runs {
				r := inTerminal(t, n, cols, "run", "busy")
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.out)
				}
				m := started.FindStringSubmatch(r.out)
				if m == nil {
					t.Fatalf("no line with the full id and the pipeline before the bar:\n%s", r.out)
				}
				if !strings.Contains(r.out, m[1]+" busy completed in ") {
					t.Fatalf("no end line with the full id:\n%s", r.out)
				}
			}
		})
	}
	t.Run("watch-5-at-100-columns", func(t *testing.T) {
		t.Parallel()
		for range runs {
			var ids []string
			for range 5 {
				ex, err := n.client.Submit(context.Background(), "busy", nil)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ex.ID)
			}
			r := inTerminal(t, n, 100, append([]string{"watch"}, ids...)...)
			if r.code != 0 {
				t.Fatalf("watch exited %d:\n%s", r.code, r.out)
			}
			for _, id := range ids {
				if !strings.Contains(r.out, id+" busy completed in ") {
					t.Fatalf("no end line for %s:\n%s", id, r.out)
				}
			}
		}
	})
}

// TestBarShowsTheLastLogLine: under its bar, watch shows the last line
// the step printed. The stream sends a run's last lines before its final
// event, so the final drawing has it.
func TestBarShowsTheLastLogLine(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "chatty", `
steps:
  - name: say
    exec:
      command: ["sh", "-c", "echo warming up; echo 'hello from the step'"]
`)
	n := startNode(t, t.TempDir(), pipes)
	r := inTerminal(t, n, 100, "run", "chatty")
	if r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "hello from the step") {
		t.Fatalf("the last log line is not under the bar:\n%s", r.out)
	}
}

// TestBarsOnlyOnATerminalStdout: with stdout a file and stderr a
// terminal, run writes plain lines to the file.
func TestBarsOnlyOnATerminalStdout(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes)
	tty, tt, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	defer tt.Close()
	file, err := os.Create(t.TempDir() + "/out.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	cmd := exec.CommandContext(t.Context(), binary, "run", "quick", "--server", n.url)
	cmd.Stdout, cmd.Stderr = file, tt
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file.Name())
	if err != nil {
		t.Fatal(err)
	}
	if out := string(b); !regexp.MustCompile(`(?m)^\S+ \S+ completed attempt 1$`).MatchString(out) || strings.Contains(out, "\x1b[") {
		t.Fatalf("run > file wrote no plain completed line, or wrote terminal escapes:\n%q", out)
	}
}
