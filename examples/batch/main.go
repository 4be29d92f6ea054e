// Command batch submits a batch of executions with the Go SDK (package
// client), polls the batch until every member has ended, printing its
// rollup (status, counts per status, percentage) whenever it changes, and
// then lists the members. It exits 0 only if the batch completed, that
// is if every member did.
//
// Start a server on the example pipelines, then run this program:
//
//	go run ./cmd/conveyor serve --pipelines examples/pipelines
//	go run ./examples/batch [-server URL] [-items count,count,hello]
//
// The server is -server, else $CONVEYOR_SERVER, else http://127.0.0.1:8080.
//
// Ctrl-C cancels the batch: its pending members at once, its running ones
// as their steps stop.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run is the program: args are its command line, program name first, and
// stdout is where it writes. It returns nil only if the batch completed.
// The test calls it against a node of its own.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet(args[0], flag.ExitOnError) // as flag.Parse would
	server := flags.String("server", defaultServer(), "URL of a running conveyor server [CONVEYOR_SERVER]")
	items := flags.String("items", "count,count,hello", "comma-separated pipeline names, one execution of each")
	interval := flags.Duration("interval", 500*time.Millisecond, "how often to poll the batch")
	if err := flags.Parse(args[1:]); err != nil {
		return err // not reached: ExitOnError exits on a bad flag, as flag.Parse does
	}
	if *interval <= 0 {
		return fmt.Errorf("-interval must be positive, not %s", *interval)
	}
	c := client.New(*server, nil)

	b, err := submit(ctx, c, strings.Split(*items, ","), stdout)
	if err != nil {
		return err
	}
	b, err = poll(ctx, c, b, *interval, stdout)
	if err != nil {
		return err
	}
	if err := listMembers(ctx, c, b.ID, stdout); err != nil {
		return err
	}
	if b.Status != conveyor.StatusCompleted {
		return fmt.Errorf("batch %s %s: %d failed and %d cancelled of %d", b.ID, b.Status, b.Counts.Failed, b.Counts.Cancelled, b.Total)
	}
	return nil
}

// submit submits one execution of each pipeline as a batch, all or
// nothing: if one item is wrong (an unknown pipeline, a bad tag), the
// server stores none and its error names the item, executions[i].
func submit(ctx context.Context, c *client.Client, pipelines []string, w io.Writer) (*conveyor.Batch, error) {
	items := make([]conveyor.NewExecution, len(pipelines))
	for i, p := range pipelines {
		input, err := json.Marshal(map[string]any{"from": "examples/batch", "item": i})
		if err != nil {
			return nil, err
		}
		// Each member gets its own tag and the batch's (below).
		items[i] = conveyor.NewExecution{Pipeline: p, Input: input, Tags: conveyor.Tags{"item": fmt.Sprint(i)}}
	}
	b, err := c.SubmitBatch(ctx, items, conveyor.Tags{"source": "examples-batch"})
	if err != nil {
		return nil, fmt.Errorf("submit batch: %w", err)
	}
	fmt.Fprintf(w, "submitted batch %s: %d executions (%s)\n", b.ID, b.Total, strings.Join(pipelines, ", "))
	return b, nil
}

// poll reads the batch every interval until it is final, printing its
// rollup whenever it changes. Reading a batch costs the server one row
// and its running members' percentages, however many members it has.
// When ctx ends first (Ctrl-C), poll cancels the batch.
func poll(ctx context.Context, c *client.Client, b *conveyor.Batch, interval time.Duration, w io.Writer) (*conveyor.Batch, error) {
	last := rollup(b)
	fmt.Fprintln(w, last)
	t := time.NewTicker(interval)
	defer t.Stop()
	for !b.Status.Final() {
		select {
		case <-ctx.Done():
			return nil, cancelBatch(ctx, c, b.ID, w)
		case <-t.C:
		}
		cur, err := c.Batch(ctx, b.ID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, cancelBatch(ctx, c, b.ID, w)
			}
			return nil, fmt.Errorf("read batch: %w", err)
		}
		b = cur
		if line := rollup(b); line != last {
			fmt.Fprintln(w, line)
			last = line
		}
	}
	return b, nil
}

// cancelBatch cancels the batch after ctx has ended, and returns why the
// program stops.
func cancelBatch(ctx context.Context, c *client.Client, id string, w io.Writer) error {
	ctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	b, err := c.CancelBatch(ctx, id)
	switch {
	case conveyor.ErrorCode(err) == conveyor.ECONFLICT:
		fmt.Fprintf(w, "interrupted; batch %s had already ended\n", id)
	case err != nil:
		return fmt.Errorf("interrupted; cancel batch %s: %w", id, err)
	default:
		fmt.Fprintf(w, "interrupted; cancelled batch %s: %d members cancelled, %d running ones told to stop\n",
			id, b.Counts.Cancelled, b.Counts.Running)
	}
	return errors.New("interrupted")
}

// rollup formats a batch's status, counts and percentage on one line.
func rollup(b *conveyor.Batch) string {
	n := b.Counts
	return fmt.Sprintf("  %-9s pending %d  running %d  completed %d  failed %d  cancelled %d  %5.1f%%",
		b.Status, n.Pending, n.Running, n.Completed, n.Failed, n.Cancelled, b.Progress.Percentage)
}

// listMembers prints the batch's members, page by page, newest first:
// GET /executions?batch=ID.
func listMembers(ctx context.Context, c *client.Client, batchID string, w io.Writer) error {
	fmt.Fprintln(w, "members:")
	f := conveyor.ListFilter{Batch: batchID}
	for {
		page, err := c.List(ctx, f)
		if err != nil {
			return fmt.Errorf("list members: %w", err)
		}
		for _, ex := range page.Executions {
			fmt.Fprintf(w, "  %s  %-8s %-9s %s\n", ex.ID, ex.Pipeline, ex.Status, describeTags(ex.Tags))
		}
		if page.NextCursor == nil {
			return nil
		}
		f.Cursor = *page.NextCursor
	}
}

// describeTags formats tags as "k=v k=v", sorted by key.
func describeTags(tags conveyor.Tags) string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		s = append(s, k+"="+tags[k])
	}
	return strings.Join(s, " ")
}

// defaultServer is the node to use without -server: CONVEYOR_SERVER, as
// the conveyor CLI reads it, else where conveyor serve listens by default.
func defaultServer() string {
	if s := os.Getenv("CONVEYOR_SERVER"); s != "" {
		return s
	}
	return "http://127.0.0.1:8080"
}
