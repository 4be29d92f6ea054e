package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// watchBatch follows a batch to its end: one line per change of the
// batch's counts and per change of a member's status, and on a terminal
// one overall bar under them. It returns errNotCompleted unless the batch
// completed.
//
// The terminal shows no bar per running member: mpb offers no safe way
// to keep "as many running members as fit, most recent first" without
// adding and dropping bars from several places, which is where barView
// went wrong; the member lines above the overall bar say the same.
func watchBatch(ctx context.Context, c *client.Client, id string, output *outputFormat) error {
	// Asked first so that an unknown batch is an error before any bar.
	if _, err := c.Batch(ctx, id); err != nil {
		return fmt.Errorf("batch %s: %w", id, err)
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	interrupted := onInterrupt(watchCtx, stopWatching)
	s, err := c.WatchMany(watchCtx, client.ManyFilter{Batch: id})
	if err != nil {
		return fmt.Errorf("batch %s: %w", id, err)
	}
	defer s.Close()

	w := newBatchWatcher(os.Stdout)
	var bar *batchBar
	switch {
	case output.json():
		w.out = io.Discard // only the final batch is printed
	case isTerminal(os.Stdout):
		bar = newBatchBar(os.Stdout, id)
		w.out = bar.progress
		w.onBatch = bar.update
	}
	final, err := w.follow(watchCtx, s)
	if bar != nil {
		bar.end(final)
	}
	if interrupted() {
		fmt.Fprintf(os.Stderr, "conveyor: stopped watching batch %s; its executions go on. Cancel them with: conveyor cancel --batch %s\n", id, id)
		return interruptedStatus
	}
	if err != nil {
		return fmt.Errorf("batch %s: %w", id, err)
	}
	if output.json() {
		b, err := c.Batch(ctx, id)
		if err != nil {
			return fmt.Errorf("batch %s: %w", id, err)
		}
		if err := printJSON(os.Stdout, b); err != nil {
			return err
		}
	}
	if final.Status != conveyor.StatusCompleted {
		n := final.Counts
		return errNotCompleted{fmt.Sprintf("batch %s %s: %d completed, %d failed, %d cancelled of %d",
			id, final.Status, n.Completed, n.Failed, n.Cancelled, final.Total)}
	}
	return nil
}

// batchWatcher turns a batch stream into lines, one per change: it
// remembers each member's status and the batch's last counts, so that
// progress events and repeated messages print nothing.
type batchWatcher struct {
	out      io.Writer
	onBatch  func(*client.BatchUpdate) // every batch message, changed or not; may be nil
	statuses map[string]conveyor.Status
	last     *client.BatchUpdate
}

func newBatchWatcher(out io.Writer) *batchWatcher {
	return &batchWatcher{out: out, statuses: map[string]conveyor.Status{}}
}

// follow reads s to its end and returns the final batch message.
func (w *batchWatcher) follow(ctx context.Context, s *client.ManyStream) (*client.BatchUpdate, error) {
	for {
		m, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			if w.last == nil || !w.last.Status.Final() {
				return nil, errors.New("stream ended before the batch did")
			}
			return w.last, nil
		}
		if err != nil {
			return nil, err
		}
		switch {
		case m.Batch != nil:
			w.batch(m.Batch)
		case m.Event != nil:
			w.member(m.Event)
		}
	}
}

// member prints ev if it changes its member's status.
func (w *batchWatcher) member(ev *conveyor.Event) {
	status := ev.Status
	if ev.Type != conveyor.EventStatus {
		status = conveyor.StatusOf(ev.Type)
	}
	if status == "" || ev.ExecutionID == "" {
		return // progress: the overall line or bar shows it
	}
	if old, ok := w.statuses[ev.ExecutionID]; ok && old == status {
		return // an opening status message sent again after a reconnection
	}
	w.statuses[ev.ExecutionID] = status
	line := fmt.Sprintf("%s %s %s", clock(ev.Time), ev.ExecutionID, ev.Type)
	if ev.Type == conveyor.EventStatus {
		line += " " + string(ev.Status)
	}
	if ev.Attempt > 1 {
		line += fmt.Sprintf(" (attempt %d)", ev.Attempt)
	}
	if ev.Error != nil {
		line += " error: " + ev.Error.Error()
	}
	fmt.Fprintln(w.out, line)
}

// batch prints u if the batch's status or counts changed.
func (w *batchWatcher) batch(u *client.BatchUpdate) {
	if w.onBatch != nil {
		w.onBatch(u)
	}
	changed := w.last == nil || w.last.Status != u.Status || w.last.Counts != u.Counts
	w.last = u
	if changed {
		fmt.Fprintf(w.out, "%s batch %s\n", clock(u.Time), batchSummary(u))
	}
}

// batchSummary is the state of a batch in one line, without its time.
func batchSummary(u *client.BatchUpdate) string {
	n := u.Counts
	return fmt.Sprintf("%s %s %.1f%% of %d: pending %d, running %d, completed %d, failed %d, cancelled %d",
		u.BatchID, u.Status, u.Progress.Percentage, u.Total, n.Pending, n.Running, n.Completed, n.Failed, n.Cancelled)
}

func clock(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.Local().Format("15:04:05.000")
}

// batchBar is the overall bar of a batch on a terminal; lines written to
// its progress print above it. Its text is an atomic value that the
// decorator reads, so no lock of ours is ever held while mpb runs.
type batchBar struct {
	progress *mpb.Progress
	bar      *mpb.Bar
	text     atomic.Pointer[string]
}

func newBatchBar(out io.Writer, id string) *batchBar {
	b := &batchBar{progress: mpb.New(mpb.WithOutput(out), mpb.WithWidth(30))}
	text := "connecting"
	b.text.Store(&text)
	b.bar = b.progress.AddBar(1000,
		mpb.PrependDecorators(decor.Name("batch "+shortID(id), decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Any(func(decor.Statistics) string {
			return " " + *b.text.Load()
		})),
	)
	return b
}

func (b *batchBar) update(u *client.BatchUpdate) {
	n := u.Counts
	text := fmt.Sprintf("%s: %d pending, %d running, %d completed, %d failed, %d cancelled",
		u.Status, n.Pending, n.Running, n.Completed, n.Failed, n.Cancelled)
	b.text.Store(&text)
	if !u.Status.Final() {
		b.bar.SetCurrent(min(int64(u.Progress.Percentage*10), 999)) // 1000 would end the bar
	}
}

// end stops the bar, full if the batch completed, and waits until it is
// drawn for the last time.
func (b *batchBar) end(final *client.BatchUpdate) {
	if final != nil && final.Status == conveyor.StatusCompleted {
		b.bar.SetCurrent(1000)
	} else {
		if final == nil {
			text := "stream lost"
			b.text.Store(&text)
		}
		b.bar.Abort(false)
	}
	b.progress.Wait()
}
