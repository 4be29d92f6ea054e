package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/conveyor-run/conveyor"
)

// maxBatch bounds how many queued writes go into one transaction.
const maxBatch = 1000

// writer commits events, checkpoints and log lines in batches from one
// goroutine: what queues while a transaction runs goes into the next
// (group commit).
type writer struct {
	store  conveyor.Store
	logger *slog.Logger
	stored func(id string) // Config.LogsStoredFunc
	reqs   chan writeReq
	done   chan struct{}

	metrics Metrics // times each flush
}

type writeReq struct {
	event      *conveyor.Event
	checkpoint *conveyor.Checkpoint
	line       *conveyor.LogLine
	done       chan writeResult // nil: nobody waits for the commit
}

// writeResult is the event or checkpoint as the store kept it (a
// completed event may have become cancelled: see conveyor.Store.Append)
// or why it was not.
type writeResult struct {
	event      conveyor.Event
	checkpoint conveyor.Checkpoint
	err        error
}

func newWriter(store conveyor.Store, logger *slog.Logger, logsStored func(id string), metrics Metrics) *writer {
	if logsStored == nil {
		logsStored = func(string) {}
	}
	if metrics == nil {
		metrics = noMetrics{}
	}
	w := &writer{store: store, logger: logger, stored: logsStored, metrics: metrics, reqs: make(chan writeReq, 4096), done: make(chan struct{})}
	go w.loop()
	return w
}

// write queues ev; it does not wait for the commit.
func (w *writer) write(ev conveyor.Event) {
	w.reqs <- writeReq{event: &ev}
}

// writeDurable queues ev and waits until it is committed. It returns ev
// as the store kept it.
func (w *writer) writeDurable(ev conveyor.Event) (conveyor.Event, error) {
	done := make(chan writeResult, 1)
	w.reqs <- writeReq{event: &ev, done: done}
	r := <-done
	return r.event, r.err
}

// writeCheckpoint queues c and waits until it is committed. It returns c
// as the store kept it (Dropped when fenced off).
func (w *writer) writeCheckpoint(c conveyor.Checkpoint) (conveyor.Checkpoint, error) {
	done := make(chan writeResult, 1)
	w.reqs <- writeReq{checkpoint: &c, done: done}
	r := <-done
	return r.checkpoint, r.err
}

func (w *writer) writeLog(line conveyor.LogLine) {
	w.reqs <- writeReq{line: &line}
}

// close flushes what is queued and stops the writer. Nothing may write after.
func (w *writer) close() {
	close(w.reqs)
	<-w.done
}

func (w *writer) loop() {
	defer close(w.done)
	type waiter struct {
		event      int // index in events, or -1
		checkpoint int // index in checkpoints, or -1
		done       chan writeResult
	}
	var (
		events      []conveyor.Event
		checkpoints []conveyor.Checkpoint
		lines       []conveyor.LogLine
		waiters     []waiter
	)
	add := func(r writeReq) {
		wt := waiter{-1, -1, r.done}
		if r.event != nil {
			wt.event, events = len(events), append(events, *r.event)
		}
		if r.checkpoint != nil {
			wt.checkpoint, checkpoints = len(checkpoints), append(checkpoints, *r.checkpoint)
		}
		if r.line != nil {
			lines = append(lines, *r.line)
		}
		if r.done != nil {
			waiters = append(waiters, wt)
		}
	}
	for r := range w.reqs {
		add(r)
	drain:
		for len(events)+len(checkpoints)+len(lines) < maxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break drain
				}
				add(r)
			default:
				break drain
			}
		}
		began := time.Now()
		cpErrs := w.flushCheckpoints(checkpoints)
		errs := w.flush(events, lines)
		w.metrics.StoreCommitted(commitWrite, time.Since(began))
		for _, wt := range waiters {
			var r writeResult
			if wt.event >= 0 {
				r.event, r.err = events[wt.event], errs[wt.event]
			} else {
				r.checkpoint, r.err = checkpoints[wt.checkpoint], cpErrs[wt.checkpoint]
			}
			wt.done <- r
		}
		clear(events)
		clear(checkpoints)
		events, checkpoints, lines, waiters = events[:0], checkpoints[:0], lines[:0], waiters[:0]
	}
}

// flush commits one batch and returns the error of each event, nil when
// stored. The store may rewrite events in place (see conveyor.Store.Append).
func (w *writer) flush(events []conveyor.Event, lines []conveyor.LogLine) []error {
	// Lines first: a run's lines are queued before its final event, so
	// once an execution is final its output is stored too.
	if len(lines) > 0 {
		err := w.retry("write logs", func(ctx context.Context) error { return w.store.AppendLogs(ctx, lines) })
		if conveyor.ErrorCode(err) == conveyor.EINVALID && len(lines) > 1 {
			for i := range lines {
				err := w.retry("write log line", func(ctx context.Context) error { return w.store.AppendLogs(ctx, lines[i:i+1]) })
				if err != nil {
					w.logger.Error("log line dropped", "execution", lines[i].ExecutionID, "err", err)
				}
			}
		} else if err != nil {
			w.logger.Error("log lines dropped", "lines", len(lines), "err", err)
		}
		// Before the events are written: a follower that sees the final
		// event reads once more and finds every line.
		w.logsStored(lines)
	}
	errs := make([]error, len(events))
	if len(events) > 0 {
		err := w.retry("write events", func(ctx context.Context) error { return w.store.Append(ctx, events) })
		if conveyor.ErrorCode(err) == conveyor.EINVALID && len(events) > 1 {
			// One event the store refuses must not sink the others
			// batched with it: write them one by one.
			err = nil
			for i := range events {
				errs[i] = w.retry("write event", func(ctx context.Context) error { return w.store.Append(ctx, events[i:i+1]) })
			}
		}
		if err != nil {
			for i := range errs {
				errs[i] = err
			}
		}
	}
	return errs
}

// flushCheckpoints commits checkpoints and returns the error of each,
// nil when stored (or fenced off: then the store marked it Dropped).
// They go before the batch's events: an event that ends an attempt
// would fence off a checkpoint its run recorded before it.
func (w *writer) flushCheckpoints(checkpoints []conveyor.Checkpoint) []error {
	errs := make([]error, len(checkpoints))
	if len(checkpoints) == 0 {
		return errs
	}
	err := w.retry("write checkpoints", func(ctx context.Context) error { return w.store.SaveCheckpoints(ctx, checkpoints) })
	if conveyor.ErrorCode(err) == conveyor.EINVALID && len(checkpoints) > 1 {
		// As for events: one refused write must not sink the others.
		for i := range checkpoints {
			errs[i] = w.retry("write checkpoint", func(ctx context.Context) error { return w.store.SaveCheckpoints(ctx, checkpoints[i:i+1]) })
		}
		return errs
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// logsStored tells Config.LogsStoredFunc of the executions of lines,
// once per run of lines of one execution (a batch usually holds few
// runs), without allocating.
func (w *writer) logsStored(lines []conveyor.LogLine) {
	for i := range lines {
		if i == 0 || lines[i].ExecutionID != lines[i-1].ExecutionID {
			w.stored(lines[i].ExecutionID)
		}
	}
}

// retry calls write until it succeeds, the store refuses the data
// (EINVALID: retrying cannot help) or five attempts failed, backing off
// so a momentary failure (a busy database) does not lose a status change.
// Nothing cancels a write: what is queued must reach the store even while
// the node stops (Stop waits for it); writeTimeout bounds each attempt so
// a database that stopped answering cannot hold the writer forever.
func (w *writer) retry(what string, write func(context.Context) error) error {
	backoff := 10 * time.Millisecond // then 40, 160 and 640 ms
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := write(ctx)
		cancel()
		if err == nil || conveyor.ErrorCode(err) == conveyor.EINVALID || attempt == writeAttempts {
			return err
		}
		w.logger.Warn(what, "attempt", attempt, "err", err)
		time.Sleep(backoff) // the writer has nothing else to do meanwhile
		backoff *= 4
	}
}

// writeAttempts is how many times a batch is tried before it is given up.
const writeAttempts = 5

// writeTimeout bounds one attempt to write a batch.
const writeTimeout = 30 * time.Second
