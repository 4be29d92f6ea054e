// Command client drives a running Conveyor server with the Go SDK
// (package client): it starts executions, polls and streams their
// progress, compares the two, watches several executions at once and shows
// how errors come back.
//
// Start a server on the example pipelines, then run this program:
//
//	go run ./cmd/conveyor serve --pipelines examples/pipelines
//	go run ./examples/client [-server URL]
//
// The server is -server, else $CONVEYOR_SERVER, else http://127.0.0.1:8080.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// pollInterval is the interval of the original spec's polling loop.
const pollInterval = 500 * time.Millisecond

// input is the JSON input of the executions this program starts. It has
// no "items", so "count" counts to its default, 10, and prints the input
// to its log.
var input = map[string]any{"from": "examples/client"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run is the program: args are its command line, program name first, and
// stdout is where it writes. The test calls it against a node of its own.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet(args[0], flag.ExitOnError) // as flag.Parse would
	server := flags.String("server", defaultServer(), "URL of a running conveyor server [CONVEYOR_SERVER]")
	if err := flags.Parse(args[1:]); err != nil {
		return err // not reached: ExitOnError exits on a bad flag, as flag.Parse does
	}

	c := client.New(*server, nil)
	steps := []struct {
		title string
		run   func(context.Context, *client.Client, io.Writer) error
	}{
		{"Start an execution and poll its progress", startAndPoll},
		{"Stream an execution over WebSocket", startAndStream},
		{"Polling every 500ms against streaming", compare},
		{"Watch several executions at once", watchMany},
		{"Errors", showErrors},
	}
	for i, s := range steps {
		fmt.Fprintf(stdout, "\n== %d. %s\n", i+1, s.title)
		if err := s.run(ctx, c, stdout); err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
	}
	return nil
}

// startAndPoll starts an execution and polls GET /executions/{id}/progress
// until it ends.
func startAndPoll(ctx context.Context, c *client.Client, w io.Writer) error {
	// Submit returns as soon as the execution is stored (HTTP 202); it is
	// pending until the engine claims it.
	ex, err := c.Submit(ctx, "count", input)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "started %s (pipeline %s, status %s)\n", ex.ID, ex.Pipeline, ex.Status)

	last := ""
	for {
		// Progress is nil while the server answers 204: no progress yet.
		p, err := c.Progress(ctx, ex.ID)
		if err != nil {
			return err
		}
		if line := describeProgress(p); line != last {
			fmt.Fprintln(w, "  poll:", line)
			last = line
		}
		// The progress alone cannot tell a failed execution from a running
		// one, so read the status too.
		cur, err := c.Get(ctx, ex.ID)
		if err != nil {
			return err
		}
		if cur.Status.Final() {
			fmt.Fprintf(w, "  %s after %d attempt(s)\n", cur.Status, cur.Attempt)
			return nil
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// startAndStream starts an execution and prints every message of its
// WebSocket stream: status first, then each change as it happens.
func startAndStream(ctx context.Context, c *client.Client, w io.Writer) error {
	ex, err := c.Submit(ctx, "count", input)
	if err != nil {
		return err
	}
	s, err := c.Watch(ctx, ex.ID)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(w, "  stream closed normally after the final message")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  seq %d: %s\n", ev.Seq, describeEvent(ev))
	}
}

// observation is what one way of watching saw of an execution.
type observation struct {
	updates int       // distinct progress states seen
	ended   time.Time // when the watcher noticed the final status
}

// compare watches one execution both ways at once: polling every 500ms,
// as the original spec did, and streaming.
func compare(ctx context.Context, c *client.Client, w io.Writer) error {
	ex, err := c.Submit(ctx, "count", input)
	if err != nil {
		return err
	}
	var polled, streamed observation
	var pollErr, streamErr error
	var wg sync.WaitGroup
	wg.Go(func() { polled, pollErr = observeByPolling(ctx, c, ex.ID) })
	wg.Go(func() { streamed, streamErr = observeByStreaming(ctx, c, ex.ID) })
	wg.Wait()
	if err := errors.Join(pollErr, streamErr); err != nil {
		return err
	}

	final, err := c.Get(ctx, ex.ID)
	if err != nil {
		return err
	}
	// FinishedAt is the server's clock; on one machine the lag is meaningful.
	fmt.Fprintf(w, "  polling:   %3d progress states, noticed the end %v after it happened\n",
		polled.updates, polled.ended.Sub(*final.FinishedAt).Round(time.Millisecond))
	fmt.Fprintf(w, "  streaming: %3d progress states, noticed the end %v after it happened\n",
		streamed.updates, streamed.ended.Sub(*final.FinishedAt).Round(time.Millisecond))
	return nil
}

func observeByPolling(ctx context.Context, c *client.Client, id string) (observation, error) {
	var o observation
	last := ""
	for {
		ex, err := c.Get(ctx, id) // one request gives both status and progress
		if err != nil {
			return o, err
		}
		if line := describeProgress(ex.Progress); ex.Progress != nil && line != last {
			o.updates++
			last = line
		}
		if ex.Status.Final() {
			o.ended = time.Now()
			return o, nil
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return o, err
		}
	}
}

func observeByStreaming(ctx context.Context, c *client.Client, id string) (observation, error) {
	var o observation
	s, err := c.Watch(ctx, id)
	if err != nil {
		return o, err
	}
	defer s.Close()
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			return o, err // io.EOF cannot come first: the final event ends the loop
		}
		switch {
		case ev.Type == conveyor.EventProgress, ev.Type == conveyor.EventStatus && ev.Progress != nil:
			o.updates++
		case ev.Type.Final():
			o.ended = time.Now()
			return o, nil
		}
	}
}

// watchMany starts several executions and watches them all, one goroutine
// and one stream each, printing a line per message.
func watchMany(ctx context.Context, c *client.Client, w io.Writer) error {
	runs := []struct {
		pipeline string
		input    any
	}{
		{"hello", nil},
		{"count", input},
		{"fail", nil},
	}
	out := log.New(w, "  ", 0) // a Logger writes each line whole
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, r := range runs {
		ex, err := c.Submit(ctx, r.pipeline, r.input)
		if err != nil {
			return err
		}
		wg.Go(func() {
			s, err := c.Watch(ctx, ex.ID)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			for {
				ev, err := s.Next(ctx)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						errs[i] = err
					}
					return
				}
				out.Printf("%-6s %s  %s", r.pipeline, ex.ID[len(ex.ID)-6:], describeEvent(ev))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// showErrors makes three mistakes on purpose. The client returns the
// server's JSON error as a *conveyor.Error; conveyor.ErrorCode reads its
// code, so callers switch on codes, not on HTTP statuses.
func showErrors(ctx context.Context, c *client.Client, w io.Writer) error {
	// An unknown pipeline: HTTP 422, code unknown_pipeline.
	_, err := c.Submit(ctx, "no-such-pipeline", nil)
	report(w, "submit an unknown pipeline", err, conveyor.EUNKNOWNPIPELINE)

	// An unknown execution: HTTP 404, code not_found, from REST and from
	// the stream (whose first message is then an error message).
	_, err = c.Get(ctx, "no-such-id")
	report(w, "get an unknown execution", err, conveyor.ENOTFOUND)
	s, err := c.Watch(ctx, "no-such-id")
	if err == nil {
		_, err = s.Next(ctx)
		s.Close()
	}
	report(w, "watch an unknown execution", err, conveyor.ENOTFOUND)

	// Cancelling a finished execution: HTTP 409, code conflict.
	ex, err := c.Submit(ctx, "noop", nil)
	if err != nil {
		return err
	}
	if _, err := c.Wait(ctx, ex.ID); err != nil {
		return err
	}
	_, err = c.Cancel(ctx, ex.ID)
	report(w, "cancel a finished execution", err, conveyor.ECONFLICT)
	return nil
}

func report(w io.Writer, what string, err error, want string) {
	if conveyor.ErrorCode(err) != want {
		fmt.Fprintf(w, "  %-28s -> unexpected: %v (want code %s)\n", what, err, want)
		return
	}
	fmt.Fprintf(w, "  %-28s -> %s: %s\n", what, conveyor.ErrorCode(err), conveyor.ErrorMessage(err))
}

// describeProgress formats progress as "step 2/3 count 45% item 4 of 10";
// an unknown total shows as "?".
func describeProgress(p *conveyor.Progress) string {
	if p == nil {
		return "no progress yet (204)"
	}
	total, pct := "?", "?"
	if p.TotalSteps != nil {
		total = fmt.Sprint(*p.TotalSteps)
	}
	if p.Percentage != nil {
		pct = fmt.Sprintf("%.4g", *p.Percentage)
	}
	s := fmt.Sprintf("step %d/%s %s %s%%", p.CurrentStep, total, p.CurrentStepName, pct)
	if p.Message != "" {
		s += " " + p.Message
	}
	return s
}

func describeEvent(ev conveyor.Event) string {
	switch ev.Type {
	case conveyor.EventStatus:
		return fmt.Sprintf("status %s, %s", ev.Status, describeProgress(ev.Progress))
	case conveyor.EventProgress:
		return "progress " + describeProgress(ev.Progress)
	case conveyor.EventCompleted:
		if len(ev.Result) == 0 {
			return "completed"
		}
		return fmt.Sprintf("completed, result %s", ev.Result)
	case conveyor.EventFailed, conveyor.EventRetrying:
		return fmt.Sprintf("%s on attempt %d: %v", ev.Type, ev.Attempt, ev.Error)
	default: // started, cancelled, and types newer than this program
		return string(ev.Type)
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// defaultServer is the node to use without -server: CONVEYOR_SERVER, as
// the conveyor CLI reads it, else where conveyor serve listens by default.
func defaultServer() string {
	if s := os.Getenv("CONVEYOR_SERVER"); s != "" {
		return s
	}
	return "http://127.0.0.1:8080"
}
