package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// runCmd starts an execution and watches it.
func runCmd(newClient func() *client.Client) *cobra.Command {
	var input string
	var detach bool
	var runTags []string
	var key string
	var delay, runAt string
	var opts watchOpts
	run := &cobra.Command{
		Use:   "run PIPELINE",
		Short: "Start an execution and watch it to the end (exit 1 unless it completes)",
		Long: `Start an execution and watch it to the end (exit 1 unless it completes).

On a terminal it draws a live bar; otherwise (run > out.txt) it prints a
line per status change and at most one progress line a second. At the end
it prints the result, or the error and the last log lines.

Ctrl-C stops watching, not the execution (exit 130); with
--cancel-on-interrupt it cancels the execution and waits for its end.

With --delay or --run-at the execution stays pending until then; run
watches it wait (or returns at once with --detach).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in json.RawMessage
			if input != "" {
				if !json.Valid([]byte(input)) {
					return fmt.Errorf("--input is not valid JSON: %s", input)
				}
				in = json.RawMessage(input)
			}
			tags, err := tagsOf(runTags)
			if err != nil {
				return err
			}
			c, err := keyed(newClient(), key)
			if err != nil {
				return err
			}
			ex, err := c.SubmitExecution(cmd.Context(), conveyor.NewExecution{Pipeline: args[0], Input: in, Tags: tags,
				Delay: delay, RunAt: runAt})
			if err != nil {
				return err
			}
			if detach {
				if opts.output.json() {
					return printJSON(os.Stdout, ex)
				}
				fmt.Println(ex.ID)
				return nil
			}
			return watch(cmd.Context(), c, []*conveyor.Execution{ex}, opts)
		},
	}
	run.Flags().StringVar(&input, "input", "", "input as a JSON object")
	run.Flags().BoolVarP(&detach, "detach", "d", false, "print the execution id and return at once")
	run.Flags().StringArrayVar(&runTags, "tag", nil, "tag the execution with key:value (repeatable)")
	run.Flags().StringVar(&key, "idempotency-key", "", "send this Idempotency-Key: run again with the same key and input within 24 h, it watches the first execution instead of starting another")
	run.Flags().StringVar(&delay, "delay", "", "start no earlier than this long from now, a Go duration (90s, 1h30m)")
	run.Flags().StringVar(&runAt, "run-at", "", "start no earlier than this RFC 3339 time (2025-06-01T12:00:00Z)")
	run.MarkFlagsMutuallyExclusive("delay", "run-at")
	run.Flags().BoolVar(&opts.cancelOnInterrupt, "cancel-on-interrupt", false, "on Ctrl-C, cancel the execution and wait for its end, instead of leaving it running")
	opts.output = addOutputFlag(run)
	return run
}

// watchCmd watches executions, or a batch.
func watchCmd(newClient func() *client.Client) *cobra.Command {
	var batchID string
	var opts watchOpts
	cmd := &cobra.Command{
		Use:   "watch ID... | --batch ID",
		Short: "Watch executions, or a batch, live until they end (exit 1 unless all complete)",
		Long: `Watch executions, or a batch, live until they end (exit 1 unless all complete).

Ctrl-C stops watching; the executions go on (exit 130).`,
		Args: func(_ *cobra.Command, args []string) error {
			if n := len(args); batchID == "" && n == 0 || batchID != "" && n != 0 {
				return errors.New("watch takes execution IDs, or --batch and a batch ID")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient()
			if batchID != "" {
				return watchBatch(cmd.Context(), c, batchID, opts.output)
			}
			// Asked first: an unknown id is the server's not_found
			// before any bar, and bars are named by pipeline.
			var exs []*conveyor.Execution
			for _, id := range args {
				ex, err := c.Get(cmd.Context(), id)
				if err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				exs = append(exs, ex)
			}
			return watch(cmd.Context(), c, exs, opts)
		},
	}
	cmd.Flags().StringVar(&batchID, "batch", "", "watch every member of this batch and the batch's counts, instead of executions")
	opts.output = addOutputFlag(cmd)
	return cmd
}

// watchOpts says how run and watch behave.
type watchOpts struct {
	output            *outputFormat
	cancelOnInterrupt bool // Ctrl-C cancels the executions instead of leaving them
}

// errNotCompleted makes the process exit 1 when a watched execution did
// not complete.
type errNotCompleted []string

func (e errNotCompleted) Error() string {
	return strings.Join(e, "; ")
}

// exitStatus ends the process with its value and no message of its own:
// what there was to say has been said.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// interruptedStatus is the exit status after Ctrl-C, as a shell reports
// a process that SIGINT ended.
const interruptedStatus = exitStatus(130)

// watch follows the executions until all have ended: live bars when
// stdout is a terminal, lines otherwise, nothing but the final executions
// with -o json. Then it prints how each ended.
func watch(ctx context.Context, c *client.Client, exs []*conveyor.Execution, opts watchOpts) error {
	ids := make([]string, len(exs))
	for i, ex := range exs {
		ids[i] = ex.ID
	}
	var view watchView
	switch {
	case opts.output.json():
		view = quietView{}
	case isTerminal(os.Stdout):
		names := map[string]string{}
		for _, ex := range exs {
			names[ex.ID] = ex.Pipeline
			fmt.Printf("%s %s\n", ex.ID, ex.Pipeline) // the bars show only the end of the id
		}
		view = newBarView(os.Stdout, ids, names)
	default:
		view = newLineView(os.Stdout)
	}

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	interrupted := onInterrupt(watchCtx, func() {
		if !opts.cancelOnInterrupt {
			stopWatching()
			return
		}
		for _, id := range ids {
			ex, err := c.Cancel(context.WithoutCancel(ctx), id)
			if err != nil {
				fmt.Fprintf(os.Stderr, "conveyor: cancel %s: %v\n", id, err)
				continue
			}
			fmt.Fprintf(os.Stderr, "conveyor: cancel of %s requested (status %s); waiting for its end\n", id, ex.Status)
		}
	})

	streamErrs := make([]error, len(ids))
	done := make(chan int, len(ids))
	for i, id := range ids {
		go func() {
			streamErrs[i] = watchOne(watchCtx, c, id, view)
			done <- i
		}()
	}
	for range ids {
		<-done
	}
	view.wait()

	if interrupted() && !opts.cancelOnInterrupt {
		for _, id := range ids {
			fmt.Fprintf(os.Stderr, "conveyor: stopped watching %s; the execution goes on. Cancel it with: conveyor cancel %s\n", id, id)
		}
		return interruptedStatus
	}
	var failed errNotCompleted
	for i, id := range ids {
		if streamErrs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", id, streamErrs[i]))
			continue
		}
		ex, err := c.Get(ctx, id)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		if err := printEnd(ctx, c, ex, opts.output); err != nil {
			return err
		}
		switch ex.Status {
		case conveyor.StatusCompleted:
		case conveyor.StatusFailed:
			failed = append(failed, fmt.Sprintf("%s failed: %v", id, ex.Error))
		default:
			failed = append(failed, fmt.Sprintf("%s %s", id, ex.Status))
		}
	}
	if failed != nil {
		return failed
	}
	return nil
}

// onInterrupt calls do on the first SIGINT or SIGTERM until ctx ends;
// a second one ends the process as if the first had not been caught.
// interrupted reports whether do was called.
func onInterrupt(ctx context.Context, do func()) (interrupted func() bool) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	called := make(chan struct{})
	go func() {
		defer signal.Stop(sigs)
		select {
		case <-sigs:
			signal.Stop(sigs)
			close(called)
			do()
		case <-ctx.Done():
		}
	}()
	return func() bool {
		select {
		case <-called:
			return true
		default:
			return false
		}
	}
}

// watchOne shows the events of one execution until its stream ends; the
// error is why it broke off, nil once the execution has ended.
func watchOne(ctx context.Context, c *client.Client, id string, view watchView) error {
	var opts *client.WatchOpts
	if lv, ok := view.(logView); ok {
		opts = &client.WatchOpts{LogFunc: lv.log}
	}
	s, err := c.WatchWith(ctx, id, opts)
	if err != nil {
		view.end(id, nil)
		return err
	}
	defer s.Close()
	var last conveyor.Event
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			view.end(id, nil)
			return err
		}
		last = ev
		view.show(ev)
	}
	view.end(id, &last)
	return nil
}

// logView is a watchView that also shows log lines: the bars show the
// last one of each execution. The plain lines leave them out, since
// "conveyor logs" prints them, and at most one progress line a second
// is their point.
type logView interface {
	log(l conveyor.LogLine) // called from the execution's goroutine
}

// quietView shows nothing: with -o json only the final executions are
// printed.
type quietView struct{}

func (quietView) show(conveyor.Event)         {}
func (quietView) end(string, *conveyor.Event) {}
func (quietView) wait()                       {}

// lastLogLines is how many log lines of its last attempt are printed
// after an execution failed: enough to see why, short enough to read.
const lastLogLines = 10

// printEnd prints how an execution ended, with its full id: the result
// if it completed, else the error and, if it failed, its last log lines.
func printEnd(ctx context.Context, c *client.Client, ex *conveyor.Execution, output *outputFormat) error {
	if output.json() {
		return printJSON(os.Stdout, ex)
	}
	fmt.Printf("%s %s %s in %s (attempt %d)\n", ex.ID, ex.Pipeline, ex.Status, formatDuration(runTime(ex)), ex.Attempt)
	if ex.Status == conveyor.StatusCompleted {
		if len(ex.Result) > 0 && string(ex.Result) != "null" {
			fmt.Printf("result: %s\n", ex.Result)
		}
		return nil
	}
	if ex.Error != nil {
		fmt.Printf("error: %s\n", ex.Error.Error())
	}
	if ex.Status != conveyor.StatusFailed {
		return nil
	}
	lines, err := c.Logs(ctx, ex.ID)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", ex.ID, err)
	}
	lines = slices.DeleteFunc(lines, func(l conveyor.LogLine) bool { return l.Attempt != ex.Attempt })
	if len(lines) > lastLogLines {
		lines = lines[len(lines)-lastLogLines:]
	}
	if len(lines) > 0 {
		fmt.Printf("last log lines:\n")
		for _, l := range lines {
			fmt.Println("  " + logText(l))
		}
	}
	return nil
}

// runTime is how long an execution has run: until now if it runs, 0 if
// it never started.
func runTime(ex *conveyor.Execution) time.Duration {
	switch {
	case ex.StartedAt == nil:
		return 0
	case ex.FinishedAt == nil:
		return time.Since(*ex.StartedAt)
	}
	return ex.FinishedAt.Sub(*ex.StartedAt)
}

// formatDuration rounds d to what a person reads: hundredths under a
// minute, seconds above.
func formatDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// keyed is c sending key as the Idempotency-Key of its submissions, c
// itself when key is empty. A malformed key is an error before anything
// is sent.
func keyed(c *client.Client, key string) (*client.Client, error) {
	if key == "" {
		return c, nil
	}
	if err := conveyor.ValidateIdempotencyKey(key); err != nil {
		return nil, fmt.Errorf("--idempotency-key: %s", conveyor.ErrorMessage(err))
	}
	return c.WithIdempotencyKey(key), nil
}
