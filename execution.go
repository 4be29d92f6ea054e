package conveyor

import (
	"encoding/json"
	"maps"
	"time"
)

// Status is where an execution is in its lifecycle:
// pending -> running -> completed | failed | cancelled. A running execution
// goes back to pending only to start a new attempt (a retry).
type Status string

// The statuses.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Final reports whether s is a final status, one there is no way out of.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool {
	return s == StatusPending || s == StatusRunning || s.Final()
}

// Execution is one run of a pipeline with a JSON input.
type Execution struct {
	ID       string          `json:"id"`
	Pipeline string          `json:"pipeline"`
	Status   Status          `json:"status"`
	Input    json.RawMessage `json:"input"`
	Progress *Progress       `json:"progress"`
	Result   json.RawMessage `json:"result"`
	Error    *Error          `json:"error"`
	Tags     Tags            `json:"tags"`
	BatchID  *string         `json:"batch_id"` // the batch it was submitted in, if any
	// RetryOf is the id of the final execution this one retries as new
	// (POST /executions/{id}/retry); nil otherwise.
	RetryOf    *string    `json:"retry_of"`
	Attempt    int        `json:"attempt"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// RunAt is the earliest it may start, as submitted to run later
	// (NewExecution.StartAt); nil when it was not delayed.
	RunAt *time.Time `json:"run_at"`
	// RetryAt, while it waits to retry (pending after a retrying event),
	// is the earliest its next attempt may start; nil otherwise.
	RetryAt *time.Time `json:"retry_at"`

	// Data is the free-form object its steps set (Exec.SetData, ::data),
	// merged across reports and attempts; nil until one sets it. Lists
	// leave it out unless asked for (ListFilter.WithData).
	Data json.RawMessage `json:"data"`
	// StalledSince, while the running step reports nothing for longer
	// than its stall_after, is when it last reported; nil otherwise.
	StalledSince *time.Time `json:"stalled_since"`
	// Webhook is the execution's own webhook, given at submission; nil
	// when none.
	Webhook *ExecutionWebhook `json:"webhook,omitempty"`

	// ResumeStep and Checkpoint are where the attempts of a pipeline
	// with Resume got to (see ResumeOf): the step that began last (0:
	// none, or a handler's) and the checkpoint it recorded last (nil:
	// none). The engine's, not shown to clients; lists leave Checkpoint
	// out.
	ResumeStep int             `json:"-"`
	Checkpoint json.RawMessage `json:"-"`

	// Node is the id of the node that runs or last ran it.
	Node string `json:"node,omitempty"`
	// LastSeq is the seq of the newest event of this execution.
	LastSeq int64 `json:"last_seq"`
	// CancelRequested is set when a cancel arrived while it was running.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// SeqReserved, on a shared store, is the highest seq the node running
	// the attempt may have published without storing it (see
	// SeqReservation); 0 elsewhere.
	SeqReserved int64 `json:"-"`
	// Idempotency, on a new execution, is the key its submission came
	// with: the store records it with the execution (Store.CreateExecutions).
	Idempotency *Idempotency `json:"-"`
}

// Progress is how far an execution has come. CurrentStep is 1-based (0
// before the first step starts). TotalSteps and Percentage are nil when the
// total is unknown (open-ended handlers). Percentage is 0-100, never goes
// backwards within one attempt and is 100 exactly when completed.
type Progress struct {
	CurrentStep     int                `json:"current_step"`
	TotalSteps      *int               `json:"total_steps"`
	Percentage      *float64           `json:"percentage"`
	CurrentStepName string             `json:"current_step_name"`
	Message         string             `json:"message,omitempty"`
	Metrics         map[string]float64 `json:"metrics,omitempty"`
	ETASeconds      *float64           `json:"eta_seconds,omitempty"`
}

// Changed reports whether p differs from since (nil: none yet) in
// anything but the ETA: a progress message is worth sending only then.
func (p *Progress) Changed(since *Progress) bool {
	if since == nil {
		return true
	}
	return p.CurrentStep != since.CurrentStep || !equalPtr(p.TotalSteps, since.TotalSteps) ||
		!equalPtr(p.Percentage, since.Percentage) || p.CurrentStepName != since.CurrentStepName ||
		p.Message != since.Message || !maps.Equal(p.Metrics, since.Metrics)
}

func equalPtr[T comparable](a, b *T) bool {
	return a == b || a != nil && b != nil && *a == *b
}

// EventType says what an Event records. Clients ignore types they do not
// know, so new ones may be added.
type EventType string

// The event types. StatusEvent is never stored: it is the first message of
// every stream, a snapshot of the execution when the stream opened.
const (
	EventStatus    EventType = "status"
	EventStarted   EventType = "started"
	EventProgress  EventType = "progress"
	EventData      EventType = "data"     // the execution's data changed: Data holds all of it
	EventStalled   EventType = "stalled"  // the running step reported nothing since Since
	EventRetrying  EventType = "retrying" // the attempt failed and a new one is pending
	EventCompleted EventType = "completed"
	EventFailed    EventType = "failed"
	EventCancelled EventType = "cancelled"
	EventError     EventType = "error" // stream-level error, e.g. unknown execution; never stored
)

// Conflates reports whether an event of type t may replace one of the
// same type waiting for a slow reader: progress and data events each
// carry the whole state they report, so the newest says it all.
func (t EventType) Conflates() bool {
	return t == EventProgress || t == EventData
}

// Final reports whether t ends an execution.
func (t EventType) Final() bool {
	return t == EventCompleted || t == EventFailed || t == EventCancelled
}

// Event is one entry of an execution's append-only event log. Seq starts
// at 1 and rises by one per event of the execution. The same value is the
// stored record and the message streamed to clients.
type Event struct {
	Type        EventType       `json:"type"`
	ExecutionID string          `json:"execution_id"`
	Seq         int64           `json:"seq"`
	Time        time.Time       `json:"timestamp"`
	Attempt     int             `json:"attempt,omitempty"`
	Status      Status          `json:"status,omitempty"`
	Progress    *Progress       `json:"progress,omitempty"`
	Error       *Error          `json:"error,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	// Data is the whole data of the execution after a data event (or at
	// a status message).
	Data json.RawMessage `json:"data,omitempty"`
	// Step and Since say which step stalled and when it last reported
	// (stalled events).
	Step  string     `json:"step,omitempty"`
	Since *time.Time `json:"since,omitempty"`
	// RetryAt is when the next attempt may start (retrying events, and
	// the status message of an execution waiting to retry).
	RetryAt *time.Time `json:"retry_at,omitempty"`

	// Dropped is set by Store.Append on a write it did not keep (fenced
	// off: its attempt no longer runs there), so that the writer does not
	// publish an outcome the store does not hold. Never sent or stored.
	Dropped bool `json:"-"`
}

// StatusOf is the status an execution has right after event t, or "" when
// t does not change the status.
func StatusOf(t EventType) Status {
	switch t {
	case EventStarted:
		return StatusRunning
	case EventRetrying:
		return StatusPending
	case EventCompleted:
		return StatusCompleted
	case EventFailed:
		return StatusFailed
	case EventCancelled:
		return StatusCancelled
	}
	return ""
}

// MaxRunningPercentage is the highest percentage of an execution that has
// not completed: 100 is reserved for completed.
const MaxRunningPercentage = 99.9

// CancelInstead turns a completed event into the cancelled event a store
// keeps when a cancel was recorded while the execution ran and its runner
// completed it before it noticed: once a cancel is accepted for a running
// execution, it ends cancelled unless it had finished first. The result
// goes; the progress stays, below 100.
func (ev *Event) CancelInstead() {
	ev.Type, ev.Status, ev.Result = EventCancelled, StatusCancelled, nil
	if p := ev.Progress; p != nil && p.Percentage != nil && *p.Percentage > MaxRunningPercentage {
		c := *p
		pct := MaxRunningPercentage
		c.Percentage = &pct
		ev.Progress = &c
	}
}
