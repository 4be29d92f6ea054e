package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/conveyor-run/conveyor"
)

// maxBatch bounds how many queued writes go into one transaction.
const maxBatch = 1000

// writer commits events and log lines in batches from one goroutine: what
// queues while a transaction runs goes into the next (group commit).
type writer struct {
	store  conveyor.Store
	logger *slog.Logger
	reqs   chan writeReq
	done   chan struct{}
}

type writeReq struct {
	event *conveyor.Event
	line  *conveyor.LogLine
	done  chan error // nil: nobody waits for the commit
}

func newWriter(store conveyor.Store, logger *slog.Logger) *writer {
	w := &writer{store: store, logger: logger, reqs: make(chan writeReq, 4096), done: make(chan struct{})}
	go w.loop()
	return w
}

// write queues ev; it does not wait for the commit.
func (w *writer) write(ev conveyor.Event) {
	w.reqs <- writeReq{event: &ev}
}

// writeDurable queues ev and waits until it is committed.
func (w *writer) writeDurable(ev conveyor.Event) error {
	done := make(chan error, 1)
	w.reqs <- writeReq{event: &ev, done: done}
	return <-done
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
	var (
		events  []conveyor.Event
		lines   []conveyor.LogLine
		waiters []chan error
	)
	add := func(r writeReq) {
		if r.event != nil {
			events = append(events, *r.event)
		}
		if r.line != nil {
			lines = append(lines, *r.line)
		}
		if r.done != nil {
			waiters = append(waiters, r.done)
		}
	}
	for r := range w.reqs {
		add(r)
	drain:
		for len(events)+len(lines) < maxBatch {
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
		err := w.flush(events, lines)
		for _, c := range waiters {
			c <- err
		}
		clear(events)
		events, lines, waiters = events[:0], lines[:0], waiters[:0]
	}
}

// flush commits one batch, retrying briefly so a momentary failure (a busy
// database) does not lose a status change.
func (w *writer) flush(events []conveyor.Event, lines []conveyor.LogLine) error {
	ctx := context.Background()
	var err error
	for attempt, backoff := 0, 10*time.Millisecond; attempt < 5; attempt, backoff = attempt+1, backoff*4 {
		if attempt > 0 {
			time.Sleep(backoff)
		}
		if len(events) > 0 {
			if err = w.store.Append(ctx, events); conveyor.ErrorCode(err) == conveyor.EINVALID && len(events) > 1 {
				// One event the store refuses must not sink the others
				// batched with it: write them one by one.
				for _, ev := range events {
					if err := w.store.Append(ctx, []conveyor.Event{ev}); err != nil {
						w.logger.Error("write event", "execution", ev.ExecutionID, "seq", ev.Seq, "err", err)
					}
				}
				err = nil
			}
			if err != nil {
				w.logger.Warn("write events", "events", len(events), "attempt", attempt+1, "err", err)
				continue
			}
			events = nil
		}
		if len(lines) > 0 {
			if err = w.store.AppendLogs(ctx, lines); err != nil {
				w.logger.Warn("write logs", "lines", len(lines), "attempt", attempt+1, "err", err)
				continue
			}
		}
		return nil
	}
	return err
}
