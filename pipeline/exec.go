package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conveyor-run/conveyor"
)

// DefaultKillGrace is how long an exec step's processes have, after
// SIGTERM, to stop on their own before SIGKILL, unless the step sets grace.
const DefaultKillGrace = 5 * time.Second

// Output limits of exec steps.
const (
	// MaxEnvInput is the largest input also given as CONVEYOR_INPUT; a
	// larger one reaches the program on stdin only (CONVEYOR_INPUT is
	// empty), as one environment string is limited (128 KiB on Linux) and
	// so is the whole environment.
	MaxEnvInput = 64 << 10
)

// drainTimeout is how long output may stay idle once the step's processes
// are gone before reading stops: only a process that escaped the process
// group (setsid) can keep the pipes open, and it is not waited for.
const drainTimeout = time.Second

// ExecSpec is an exec step: a program run directly, without a shell, in its
// own process group.
type ExecSpec struct {
	Command []string          `json:"command"` // argv; Command[0] is looked up in PATH unless it has a slash
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"` // absolute; "" is the server's working folder
	Grace   time.Duration     `json:"-"`             // SIGTERM to SIGKILL; 0 is DefaultKillGrace
}

// MarshalJSON shows the grace as a Go duration string and hides env values,
// which is where secrets live, from whoever may list pipelines.
func (s ExecSpec) MarshalJSON() ([]byte, error) {
	type plain ExecSpec
	return json.Marshal(struct {
		plain
		Grace string `json:"grace"`
	}{plain{Command: s.Command, Env: redact(s.Env), Dir: s.Dir}, s.grace().String()})
}

func (s *ExecSpec) grace() time.Duration {
	if s.Grace > 0 {
		return s.Grace
	}
	return DefaultKillGrace
}

// Run runs the program and waits for it. See the package documentation
// for what the program gets and how it reports progress. A non-zero exit
// fails the step with ESTEPFAILED; when ctx ends first, the process group
// gets SIGTERM, then SIGKILL after the grace period, and Run returns
// ctx.Err(). When the program exits, whatever it left running in its
// process group is killed: a step's processes do not outlive it.
func (s *ExecSpec) Run(ctx context.Context, x *conveyor.Exec) error {
	if len(s.Command) == 0 {
		return conveyor.Errorf(conveyor.ESTEPFAILED, "exec step without a command")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	input := []byte(x.Input)
	if len(input) == 0 {
		input = []byte("null")
	}
	// Not CommandContext: on cancel it would SIGKILL only the program, at
	// once, where waitOrStop gives the whole process group SIGTERM and the
	// grace period first.
	cmd := exec.Command(s.Command[0], s.Command[1:]...) //nolint:noctx // waitOrStop acts on ctx, see above
	cmd.Dir = s.Dir
	cmd.Env = s.environ(x, input)
	// Its own process group, so cancel reaches everything it started; and
	// SIGKILL if the server dies (kill -9), so a step does not run on while
	// another node retries the execution. Pdeathsig reaches only this
	// process, not what it started: a best effort.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	// Our own pipes, not exec's: Cmd.Wait would wait for output to close,
	// which a leftover background process can delay forever, and the group
	// must be killed as soon as the program exits.
	var p pipes
	defer p.close()
	if err := p.open(); err != nil {
		return conveyor.Errorf(conveyor.ESTEPFAILED, "exec %s: %v", s.Command[0], err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.child[0], p.child[1], p.child[2]
	err := cmd.Start()
	p.closeChild()
	if err != nil {
		return conveyor.Errorf(conveyor.ESTEPFAILED, "%v", err)
	}
	pgid := cmd.Process.Pid // Setpgid made the program its group's leader

	stdin, stdout, stderr := p.parent[0], &output{f: p.parent[1]}, &output{f: p.parent[2]}
	var wg sync.WaitGroup
	var lastStderr string
	wg.Go(func() {
		_, _ = stdin.Write(input) // an error means the program stopped reading: its business
		_ = stdin.Close()
	})
	wg.Go(func() {
		readLines(stdout, func(line string) { stdoutLine(x, line) })
	})
	wg.Go(func() {
		readLines(stderr, func(line string) {
			if strings.TrimSpace(line) != "" {
				lastStderr = line
			}
			x.LogTo("stderr", line)
		})
	})

	waitErr := waitOrStop(ctx, cmd, s.grace())
	signalGroup(pgid, syscall.SIGKILL)     // leftovers go with the program, as in docker
	_ = stdin.SetWriteDeadline(time.Now()) // no one left to feed
	stdout.drain()
	stderr.drain()
	wg.Wait()

	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		// Stopped, even if it exited 0 on SIGTERM: not a success.
		return ctx.Err()
	case waitErr == nil:
		return nil
	case errors.As(waitErr, &exitErr):
		msg := exitErr.Error() // "exit status 3", "signal: killed"
		if lastStderr != "" {
			msg += ": " + conveyor.TruncateUTF8(lastStderr, 512)
		}
		return conveyor.Errorf(conveyor.ESTEPFAILED, "%s", msg)
	default:
		return conveyor.Errorf(conveyor.ESTEPFAILED, "wait: %v", waitErr)
	}
}

// stdoutLine handles a line of an exec step's standard output: a
// progress line reports progress, a data line sets data, a checkpoint
// line records a checkpoint (stored before the next line is read),
// anything else (a malformed progress line too) is logged. A data or
// checkpoint line that cannot be taken is logged to stderr with why,
// and the data or checkpoint stays as it was.
func stdoutLine(x *conveyor.Exec, line string) {
	if u, ok, err := ParseProgressLine(line); ok && err == nil {
		x.Progress(u)
		return
	}
	var err error
	if patch, ok, perr := ParseDataLine(line); ok {
		if err = perr; err == nil {
			err = x.SetDataJSON(patch)
		}
	} else if cp, ok, perr := ParseCheckpointLine(line); ok {
		if err = perr; err == nil {
			err = x.CheckpointJSON(cp)
		}
	} else {
		x.LogTo("stdout", line)
		return
	}
	if err != nil {
		x.LogTo("stderr", refused(line, err))
	}
}

// refused is the log line of a data or checkpoint line that was not
// taken: the line, cut if need be so that why fits.
func refused(line string, err error) string {
	why := " (refused: " + conveyor.ErrorMessage(err) + ")"
	if len(line)+len(why) > conveyor.MaxLogLineBytes {
		line = conveyor.TruncateUTF8(line, conveyor.MaxLogLineBytes-len(why)-len(conveyor.TruncatedMark)) + conveyor.TruncatedMark
	}
	return line + why
}

// environ is the server's environment, then the step's, then the
// CONVEYOR_ variables, later ones winning, so that a step cannot be
// misled about which execution it runs for.
func (s *ExecSpec) environ(x *conveyor.Exec, input []byte) []string {
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		env = append(env, k+"="+s.Env[k])
	}
	env = append(env,
		"CONVEYOR_EXECUTION_ID="+x.ID,
		"CONVEYOR_PIPELINE="+x.Pipeline,
		"CONVEYOR_STEP="+x.Step,
		"CONVEYOR_ATTEMPT="+strconv.Itoa(x.Attempt),
	)
	if len(input) > MaxEnvInput {
		input = nil // set, though, so that no CONVEYOR_INPUT of the server's own shows through
	}
	// Empty when none, for the same reason.
	return append(env, "CONVEYOR_INPUT="+string(input), "CONVEYOR_CHECKPOINT="+string(x.ResumeCheckpoint))
}

// waitOrStop waits for the program; if ctx ends first it sends SIGTERM to
// the process group, then SIGKILL once grace has passed.
func waitOrStop(ctx context.Context, cmd *exec.Cmd, grace time.Duration) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return err
	case <-ctx.Done():
	}
	pgid := cmd.Process.Pid
	signalGroup(pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
	}
	signalGroup(pgid, syscall.SIGKILL)
	return <-exited
}

// signalGroup sends sig to process group pgid. Its error is not checked:
// ESRCH means the group is already gone, which is what a kill wants, and
// EPERM cannot happen to a group we started.
func signalGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}

// pipes are the program's stdin, stdout and stderr: the child's ends and
// ours.
type pipes struct {
	child  [3]*os.File
	parent [3]*os.File
}

func (p *pipes) open() error {
	for i := range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		if i == 0 { // stdin: the child reads
			p.child[i], p.parent[i] = r, w
		} else {
			p.child[i], p.parent[i] = w, r
		}
	}
	return nil
}

// closeChild closes our copies of the child's ends, so that reads see EOF
// once every process holding them is gone.
func (p *pipes) closeChild() {
	for i, f := range p.child {
		if f != nil {
			f.Close()
			p.child[i] = nil
		}
	}
}

func (p *pipes) close() {
	p.closeChild()
	for _, f := range p.parent {
		if f != nil {
			f.Close()
		}
	}
}

// output is our end of the program's stdout or stderr. Setting a deadline
// on it fails only once it is closed, when there is nothing left to stop,
// so those errors are not checked.
type output struct {
	f        *os.File
	draining atomic.Bool
}

// Read reads the pipe; once draining, it gives up after drainTimeout
// without data. The deadline is renewed per read, so a slow consumer of
// the lines loses none of them.
func (o *output) Read(b []byte) (int, error) {
	if o.draining.Load() {
		_ = o.f.SetReadDeadline(time.Now().Add(drainTimeout))
	}
	return o.f.Read(b)
}

// drain starts draining, waking a read already waiting.
func (o *output) drain() {
	o.draining.Store(true)
	_ = o.f.SetReadDeadline(time.Now().Add(drainTimeout))
}

// readLines calls fn with each line of r without its line ending, the last
// one even without a newline. A line over conveyor.MaxLogLineBytes is
// cut (at a character boundary) and marked; the rest of it is skipped.
func readLines(r io.Reader, fn func(line string)) {
	br := bufio.NewReaderSize(r, conveyor.MaxLogLineBytes)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			fn(conveyor.TruncateUTF8(string(line), conveyor.MaxLogLineBytes-len(conveyor.TruncatedMark)) + conveyor.TruncatedMark)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		case len(line) > 0:
			line = line[:len(line)-len(lineEnding(line))]
			fn(string(line))
		}
		if err != nil {
			return
		}
	}
}

func lineEnding(line []byte) string {
	n := len(line)
	switch {
	case n >= 2 && line[n-2] == '\r' && line[n-1] == '\n':
		return "\r\n"
	case n >= 1 && line[n-1] == '\n':
		return "\n"
	}
	return ""
}
