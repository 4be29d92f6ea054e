package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// progressEvent returns progress event seq of the execution c claimed.
func progressEvent(c conveyor.Claim, seq int64, message string) conveyor.Event {
	return conveyor.Event{
		Type: conveyor.EventProgress, ExecutionID: c.Execution.ID, Seq: seq, Time: time.Now().UTC(),
		Attempt: c.Execution.Attempt, Progress: &conveyor.Progress{Message: message},
	}
}

// completedEvent returns a completed event seq of the execution c claimed,
// with a result and progress at 100%.
func completedEvent(c conveyor.Claim, seq int64) conveyor.Event {
	hundred := 100.0
	return conveyor.Event{
		Type: conveyor.EventCompleted, Status: conveyor.StatusCompleted, ExecutionID: c.Execution.ID, Seq: seq,
		Time: time.Now().UTC(), Attempt: c.Execution.Attempt,
		Progress: &conveyor.Progress{Percentage: &hundred, Message: "done"}, Result: json.RawMessage(`{"answer":42}`),
	}
}

// storedEvents returns the events of execution id in s.
func storedEvents(t *testing.T, s conveyor.Store, id string) []conveyor.Event {
	t.Helper()
	evs, err := s.Events(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// lineTexts returns the text of each line.
func lineTexts(lines []conveyor.LogLine) []string {
	var ts []string
	for _, l := range lines {
		ts = append(ts, l.Line)
	}
	return ts
}

// durable is writeDurable run in the background.
type durable struct {
	done chan struct{}
	ev   conveyor.Event
	err  error
}

func writeInBackground(w *writer, ev conveyor.Event) *durable {
	d := &durable{done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.ev, d.err = w.writeDurable(ev)
	}()
	return d
}

func (d *durable) wait(t *testing.T) (conveyor.Event, error) {
	t.Helper()
	select {
	case <-d.done:
		return d.ev, d.err
	case <-time.After(30 * time.Second):
		t.Fatal("writeDurable did not return in 30s")
		return conveyor.Event{}, nil
	}
}

// waitQueued waits until n writes wait in the writer's queue.
func waitQueued(t *testing.T, w *writer, n int) {
	t.Helper()
	waitUntil(t, "writes to queue", func() bool { return len(w.reqs) == n })
}

// TestWriterCommitsQueuedWritesTogether: what queues while a transaction
// runs is committed by the next ones, in the order it was written, each
// holding at most maxBatch events and lines.
func TestWriterCommitsQueuedWritesTogether(t *testing.T) {
	t.Parallel()
	g := newGate()
	s := &faultStore{Store: openStore(t), appendFunc: func([]conveyor.Event) error { g.pass(); return nil }}
	cs := runningExecutions(t, s, 3)
	w := newWriter(s, slog.New(slog.DiscardHandler), nil, nil)

	first := writeInBackground(w, progressEvent(cs[0], 2, "first"))
	g.waitEntered(t)
	// Queued behind the blocked commit: 2*maxBatch writes, one in a
	// hundred a log line, then a final event someone waits for.
	next := []int64{3, 2, 2} // each execution's next seq
	var want []conveyor.Event
	for i := range 2 * maxBatch {
		c := cs[i%len(cs)]
		if i%100 == 0 {
			w.writeLog(conveyor.LogLine{ExecutionID: c.Execution.ID, Time: time.Now().UTC(), Stream: "log", Line: "line"})
			continue
		}
		ev := progressEvent(c, next[i%len(cs)], "queued")
		next[i%len(cs)]++
		w.write(ev)
		want = append(want, ev)
	}
	final := completedEvent(cs[2], next[2])
	next[2]++
	want = append(want, final)
	last := writeInBackground(w, final)
	waitQueued(t, w, 2*maxBatch+1)
	g.open()
	if _, err := first.wait(t); err != nil {
		t.Fatal(err)
	}
	if ev, err := last.wait(t); err != nil || ev.Type != conveyor.EventCompleted {
		t.Fatalf("the final event: %s, %v", ev.Type, err)
	}
	w.close()

	// The gate makes the batches deterministic: everything was queued
	// when the first commit ended. Each full batch is maxBatch writes, of
	// which maxBatch/100 are lines.
	appends, logs := s.appendCalls(), s.appendLogsCalls()
	perBatch := maxBatch - maxBatch/100
	if got, want := sizes(appends), []int{1, perBatch, perBatch, 1}; !slices.Equal(got, want) {
		t.Errorf("Append batch sizes %v, want %v", got, want)
	}
	if got, want := sizes(logs), []int{maxBatch / 100, maxBatch / 100}; !slices.Equal(got, want) {
		t.Errorf("AppendLogs batch sizes %v, want %v", got, want)
	}
	var got []conveyor.Event
	for _, call := range appends[1:] {
		got = append(got, call...)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events written after the first, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ExecutionID != want[i].ExecutionID || got[i].Seq != want[i].Seq {
			t.Fatalf("write %d: %s #%d, want %s #%d", i, got[i].ExecutionID, got[i].Seq, want[i].ExecutionID, want[i].Seq)
		}
	}
	for i, c := range cs {
		evs := storedEvents(t, s, c.Execution.ID)
		if n := int64(len(evs)); n != next[i]-1 || evs[n-1].Seq != next[i]-1 {
			t.Errorf("execution %d: %d events stored, the last #%d; want %d", i, n, evs[n-1].Seq, next[i]-1)
		}
		lines, err := store.AllLogs(t.Context(), s, c.Execution.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 0 {
			t.Errorf("execution %d: no log lines stored", i)
		}
	}
}

// sizes returns the length of each batch.
func sizes[T any](batches [][]T) []int {
	var n []int
	for _, b := range batches {
		n = append(n, len(b))
	}
	return n
}

// TestWriterRetriesTransientFailure: a write the store fails for a moment
// is tried again until it is stored; the writer that waits for it never
// learns of the failure.
func TestWriterRetriesTransientFailure(t *testing.T) {
	t.Parallel()
	busy := errors.New("database is locked")
	var mu sync.Mutex
	eventFailures, lineFailures := 2, 1
	failing := func(n *int) error {
		mu.Lock()
		defer mu.Unlock()
		if *n > 0 {
			*n--
			return busy
		}
		return nil
	}
	s := &faultStore{
		Store:          openStore(t),
		appendFunc:     func([]conveyor.Event) error { return failing(&eventFailures) },
		appendLogsFunc: func([]conveyor.LogLine) error { return failing(&lineFailures) },
	}
	cs := runningExecutions(t, s, 1)
	w := newWriter(s, slog.New(slog.DiscardHandler), nil, nil)

	w.writeLog(conveyor.LogLine{ExecutionID: cs[0].Execution.ID, Time: time.Now().UTC(), Stream: "log", Line: "hello"})
	ev, err := w.writeDurable(completedEvent(cs[0], 2))
	if err != nil || ev.Type != conveyor.EventCompleted {
		t.Fatalf("writeDurable: %s, %v; want completed, nil", ev.Type, err)
	}
	w.close()

	if n := len(s.appendCalls()); n != 3 {
		t.Errorf("%d Append calls, want 3: two failed, one stored", n)
	}
	if n := len(s.appendLogsCalls()); n != 2 {
		t.Errorf("%d AppendLogs calls, want 2: one failed, one stored", n)
	}
	ex, err := s.GetExecution(t.Context(), cs[0].Execution.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != conveyor.StatusCompleted || string(ex.Result) != `{"answer":42}` {
		t.Errorf("stored %s with result %s, want completed with the result", ex.Status, ex.Result)
	}
	lines, err := store.AllLogs(t.Context(), s, cs[0].Execution.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := lineTexts(lines); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("stored lines %q, want the one written", got)
	}
}

// TestWriterRetryBacksOffAndGivesUp runs the writer in a synctest bubble:
// its backoff is time.Sleep, which fake time makes instant and exact. No
// real store is in the bubble (a store's I/O and connection goroutines do
// not belong there): the faultStore's Store is nil, so every call must be
// failed by its Func, and a call that reached a store would panic.
func TestWriterRetryBacksOffAndGivesUp(t *testing.T) {
	t.Parallel()
	ev := func() conveyor.Event {
		return conveyor.Event{Type: conveyor.EventCompleted, Status: conveyor.StatusCompleted, ExecutionID: "x", Seq: 2, Time: time.Now()}
	}

	t.Run("failure", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			busy := errors.New("database is locked")
			var calls []time.Time // only the writer goroutine appends
			var logs bytes.Buffer
			s := &faultStore{
				appendFunc:     func([]conveyor.Event) error { calls = append(calls, time.Now()); return busy },
				appendLogsFunc: func([]conveyor.LogLine) error { return busy },
			}
			w := newWriter(s, slog.New(slog.NewTextHandler(&logs, nil)), nil, nil)
			start := time.Now()
			w.writeLog(conveyor.LogLine{ExecutionID: "x", Time: start, Stream: "log", Line: "hello"})
			_, err := w.writeDurable(ev())
			w.close()

			if !errors.Is(err, busy) {
				t.Errorf("writeDurable: %v, want the store's failure once it gives up", err)
			}
			if len(calls) != 5 {
				t.Fatalf("%d attempts, want 5", len(calls))
			}
			// The batch's log lines go first (and fail five times too), so
			// the first event attempt waits for them: 10+40+160+640 ms.
			if got := calls[0].Sub(start); got != 850*time.Millisecond {
				t.Errorf("first event attempt after %s, want after the log lines gave up (850ms)", got)
			}
			var gaps []time.Duration
			for i := 1; i < len(calls); i++ {
				gaps = append(gaps, calls[i].Sub(calls[i-1]))
			}
			if want := []time.Duration{10 * time.Millisecond, 40 * time.Millisecond, 160 * time.Millisecond, 640 * time.Millisecond}; !slices.Equal(gaps, want) {
				t.Errorf("backoff %v, want %v", gaps, want)
			}
			t.Logf("backoff between attempts: %v", gaps)
			if n := len(s.appendLogsCalls()); n != 5 {
				t.Errorf("%d AppendLogs attempts, want 5", n)
			}
			if !strings.Contains(logs.String(), "log lines dropped") {
				t.Errorf("giving up on log lines was not logged:\n%s", logs.String())
			}
		})
	})

	t.Run("refusal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			refused := conveyor.Errorf(conveyor.EINVALID, "no")
			s := &faultStore{appendFunc: func([]conveyor.Event) error { return refused }}
			w := newWriter(s, slog.New(slog.DiscardHandler), nil, nil)
			start := time.Now()
			_, err := w.writeDurable(ev())
			waited := time.Since(start)
			w.close()

			if !errors.Is(err, refused) {
				t.Errorf("writeDurable: %v, want the refusal", err)
			}
			if n := len(s.appendCalls()); n != 1 || waited != 0 {
				t.Errorf("%d attempts over %s, want 1 at once: retrying cannot help", n, waited)
			}
		})
	})
}

// TestWriterRefusedWriteLosesOnlyItself: when the store refuses a batch
// because of one event or line (EINVALID), the batch is written again one
// by one: only the refused one is lost, and only its writer hears of it.
func TestWriterRefusedWriteLosesOnlyItself(t *testing.T) {
	t.Parallel()
	g := newGate()
	s := &faultStore{Store: openStore(t), appendFunc: func([]conveyor.Event) error { g.pass(); return nil }}
	cs := runningExecutions(t, s, 3)
	var logs bytes.Buffer
	w := newWriter(s, slog.New(slog.NewTextHandler(&logs, nil)), nil, nil)
	line := func(text string) {
		w.writeLog(conveyor.LogLine{ExecutionID: cs[0].Execution.ID, Time: time.Now().UTC(), Stream: "log", Line: text})
	}

	first := writeInBackground(w, progressEvent(cs[0], 2, "first"))
	g.waitEntered(t)
	good := writeInBackground(w, progressEvent(cs[0], 3, "good"))
	bad := writeInBackground(w, progressEvent(cs[1], 2, "bad\x00")) // a NUL: no store keeps it
	final := writeInBackground(w, completedEvent(cs[2], 2))
	line("a")
	line("b\x00")
	line("c")
	waitQueued(t, w, 6)
	g.open()
	for _, d := range []*durable{first, good, final} {
		if _, err := d.wait(t); err != nil {
			t.Errorf("a good event: %v", err)
		}
	}
	if _, err := bad.wait(t); conveyor.ErrorCode(err) != conveyor.EINVALID {
		t.Errorf("the bad event: %v, want EINVALID", err)
	}
	w.close()

	if got, want := sizes(s.appendCalls()), []int{1, 3, 1, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("Append batch sizes %v, want %v: the first, the refused batch, then each alone", got, want)
	}
	if got, want := sizes(s.appendLogsCalls()), []int{3, 1, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("AppendLogs batch sizes %v, want %v: the refused batch, then each alone", got, want)
	}
	for i, want := range []int{3, 1, 2} {
		if evs := storedEvents(t, s, cs[i].Execution.ID); len(evs) != want {
			t.Errorf("execution %d: %d events stored, want %d", i, len(evs), want)
		}
	}
	if ex, err := s.GetExecution(t.Context(), cs[2].Execution.ID); err != nil || ex.Status != conveyor.StatusCompleted {
		t.Errorf("the execution whose final event shared the refused batch: %+v, %v", ex, err)
	}
	lines, err := store.AllLogs(t.Context(), s, cs[0].Execution.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := lineTexts(lines); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("stored lines %q, want a and c", got)
	}
	if !strings.Contains(logs.String(), "log line dropped") {
		t.Errorf("the dropped line was not logged:\n%s", logs.String())
	}
}

// TestWriteDurableReturnsEventAsStored: a completed event written after a
// cancel was recorded comes back as the cancelled event the store kept
// (conveyor.Event.CancelInstead), also from inside a batch, where each
// waiter gets its own event back.
func TestWriteDurableReturnsEventAsStored(t *testing.T) {
	t.Parallel()
	g := newGate()
	s := &faultStore{Store: openStore(t), appendFunc: func([]conveyor.Event) error { g.pass(); return nil }}
	cs := runningExecutions(t, s, 4)
	for _, c := range []conveyor.Claim{cs[0], cs[3]} {
		ex, ev, err := s.Cancel(t.Context(), c.Execution.ID, time.Now())
		if err != nil || ev != nil || !ex.CancelRequested {
			t.Fatalf("cancel a running execution: %+v, %+v, %v", ex, ev, err)
		}
	}
	w := newWriter(s, slog.New(slog.DiscardHandler), nil, nil)
	defer w.close()

	first := writeInBackground(w, progressEvent(cs[2], 2, "first"))
	g.waitEntered(t)
	w.write(progressEvent(cs[1], 2, "no one waits")) // shifts the waiters' events in the batch
	cancelled := writeInBackground(w, completedEvent(cs[0], 2))
	waitQueued(t, w, 2)
	completed := writeInBackground(w, completedEvent(cs[1], 3))
	waitQueued(t, w, 3)
	g.open()
	if _, err := first.wait(t); err != nil {
		t.Fatal(err)
	}
	ev, err := completed.wait(t)
	if err != nil || ev.Type != conveyor.EventCompleted || ev.Status != conveyor.StatusCompleted ||
		string(ev.Result) != `{"answer":42}` || ev.Seq != 3 || ev.ExecutionID != cs[1].Execution.ID {
		t.Errorf("completed with no cancel: %+v, %v; want it as written", ev, err)
	}
	ev, err = cancelled.wait(t)
	checkCancelledInstead(t, s, cs[0], ev, err)

	// And alone.
	ev, err = w.writeDurable(completedEvent(cs[3], 2))
	checkCancelledInstead(t, s, cs[3], ev, err)
}

// checkCancelledInstead checks that ev, the completed event #2 of c as
// writeDurable returned it, and the store both say cancelled.
func checkCancelledInstead(t *testing.T, s conveyor.Store, c conveyor.Claim, ev conveyor.Event, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != conveyor.EventCancelled || ev.Status != conveyor.StatusCancelled || ev.Result != nil ||
		ev.ExecutionID != c.Execution.ID || ev.Seq != 2 || ev.Error != nil {
		t.Errorf("completed after a cancel came back as %+v, want cancelled without a result", ev)
	}
	if p := ev.Progress; p == nil || p.Percentage == nil || *p.Percentage != conveyor.MaxRunningPercentage || p.Message != "done" {
		t.Errorf("progress %+v, want the event's below 100%%", p)
	}
	ex, err := s.GetExecution(t.Context(), c.Execution.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != conveyor.StatusCancelled || ex.Result != nil {
		t.Errorf("stored %s with result %s, want cancelled without one", ex.Status, ex.Result)
	}
	evs := storedEvents(t, s, c.Execution.ID)
	if last := evs[len(evs)-1]; last.Type != conveyor.EventCancelled || last.Seq != 2 {
		t.Errorf("last stored event %s #%d, want cancelled #2", last.Type, last.Seq)
	}
}
