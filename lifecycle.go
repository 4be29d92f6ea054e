package conveyor

import (
	"encoding/json"
	"fmt"
	"time"
)

// The execution lifecycle: what each change of state does to an execution
// and which event records it. Every store applies these rules in the
// transaction that holds the execution and keeps only the SQL that
// persists the outcome; the engine applies the same ones when a run ends.

// Retryable reports whether an attempt that failed may be followed by
// another: a pipeline with retries r runs at most 1 + r attempts.
func Retryable(attempt, retries int) bool {
	return attempt <= retries
}

// EndsAttempt reports whether t ends the running attempt: a final event,
// or retrying.
func (t EventType) EndsAttempt() bool {
	return t.Final() || t == EventRetrying
}

// StartedEvent is the event of a claim: ex as it is after it, running its
// new attempt from now.
func StartedEvent(ex *Execution, now time.Time) Event {
	return Event{
		Type:        EventStarted,
		ExecutionID: ex.ID,
		Seq:         ex.LastSeq,
		Time:        now,
		Attempt:     ex.Attempt,
		Status:      StatusRunning,
	}
}

// Cancel applies a cancel to ex at now. A pending execution is cancelled
// at once: Cancel applies and returns its cancelled event, for the store
// to persist. A running one only gets CancelRequested (nil event): its
// runner stops and writes the final event, which a store turns into a
// cancelled one if the runner completed first (Event.CancelInstead). A
// final execution cannot be cancelled: ECONFLICT.
func (ex *Execution) Cancel(now time.Time) (*Event, error) {
	switch ex.Status {
	case StatusRunning:
		ex.CancelRequested = true
		return nil, nil
	case StatusPending:
		ev := &Event{
			Type:        EventCancelled,
			ExecutionID: ex.ID,
			Seq:         ex.LastSeq + 1,
			Time:        now,
			Attempt:     ex.Attempt,
			Status:      StatusCancelled,
		}
		ex.Apply(ev)
		return ev, nil
	default:
		return nil, Errorf(ECONFLICT, "execution %q is already %s", ex.ID, ex.Status)
	}
}

// interruptSeq is the seq of the event that ends ex's attempt without its
// runner: above every seq the runner may have published to watchers
// without storing it, so that one who resumes after it misses nothing.
// A shared store's lease records how far that may go (SeqReserved); a
// store without leases (SQLite) stores progress at least every
// half-second, and no runner publishes SeqReservation progress events
// in that time.
func (ex *Execution) interruptSeq() int64 {
	if ex.SeqReserved == 0 {
		return ex.LastSeq + SeqReservation + 1
	}
	return max(ex.LastSeq, ex.SeqReserved) + 1
}

// Interruption says why a running attempt ended without its runner.
type Interruption int

const (
	// NodeStopped says the node running it stopped (found at start-up on
	// a store that one node has to itself).
	NodeStopped Interruption = iota
	// LeaseExpired says its node stopped renewing the lease (another node
	// of a shared store found it).
	LeaseExpired
)

func (why Interruption) message(ex *Execution) string {
	if why == LeaseExpired {
		return fmt.Sprintf("node %s stopped renewing the lease of attempt %d before it finished", ex.Node, ex.Attempt)
	}
	return fmt.Sprintf("the node running attempt %d stopped before it finished", ex.Attempt)
}

// Interrupt ends ex's running attempt, which lost its runner, at now:
// back to pending with a retrying event while policy (the pipeline's)
// allows another attempt, which then waits as after any failure
// (RetryPolicy.RetryAt) and keeps its last progress if it is Resumable;
// otherwise failed with EINTERRUPTED, keeping its last progress. It
// applies the event to ex and returns it.
func (ex *Execution) Interrupt(now time.Time, policy RetryPolicy, why Interruption) Event {
	ev := Event{ExecutionID: ex.ID, Seq: ex.interruptSeq(), Time: now, Attempt: ex.Attempt}
	if Retryable(ex.Attempt, policy.Retries) {
		ev.Type, ev.Status = EventRetrying, StatusPending
		ev.Error = Errorf(EINTERRUPTED, "%s; retrying", why.message(ex))
		if ex.Resumable() {
			ev.Progress = ex.Progress
		}
		at := policy.RetryAt(now, ex.Attempt)
		ev.RetryAt = &at
	} else {
		ev.Type, ev.Status, ev.Progress = EventFailed, StatusFailed, ex.Progress
		ev.Error = Errorf(EINTERRUPTED, "%s and no retries were left", why.message(ex))
	}
	ex.Apply(&ev)
	return ev
}

// Apply changes ex as ev records: every event moves LastSeq and may bring
// progress or data; a stalled event sets StalledSince and any other clears
// it; one that ends the attempt sets the status, the error, the result
// and RetryAt (nil but after retrying), and a final one the finish time;
// retrying sets the progress the event carries (none, unless the next
// attempt resumes: see Resumable).
func (ex *Execution) Apply(ev *Event) {
	ex.LastSeq = ev.Seq
	if ev.Progress != nil {
		ex.Progress = ev.Progress
	}
	if ev.Data != nil {
		ex.Data = ev.Data
	}
	ex.StalledSince = ev.StalledSince()
	if !ev.Type.EndsAttempt() {
		return
	}
	ex.Status, ex.Error, ex.Result, ex.RetryAt = StatusOf(ev.Type), ev.Error, ev.Result, ev.RetryAt
	if ev.Type == EventRetrying {
		ex.Progress = ev.Progress
		return
	}
	t := ev.Time
	ex.FinishedAt = &t
}

// StalledSince is the StalledSince of an execution right after ev: its
// Since for a stalled event, nil after any other (a report ends a stall,
// and so does the end of the attempt).
func (ev *Event) StalledSince() *time.Time {
	if ev.Type != EventStalled || ev.Since == nil {
		return nil
	}
	t := ev.Since.UTC()
	return &t
}

// EncodeEvent is ev as every store keeps it: JSON, its time in UTC.
// EINVALID if it cannot be encoded.
func EncodeEvent(ev *Event) ([]byte, error) {
	e := *ev
	e.Time = e.Time.UTC()
	if e.RetryAt != nil {
		t := e.RetryAt.UTC()
		e.RetryAt = &t
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return nil, Errorf(EINVALID, "event %s #%d of %s cannot be stored: %v", ev.Type, ev.Seq, ev.ExecutionID, err)
	}
	return b, nil
}

// DecodeEvent reads an event EncodeEvent wrote.
func DecodeEvent(data []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	ev.Time = ev.Time.UTC()
	return ev, nil
}
