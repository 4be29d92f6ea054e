package conveyor

import (
	"encoding/json"
	"time"
)

// Batch is a set of executions submitted together (Store.CreateBatch):
// they are watched, counted and cancelled as one.
type Batch struct {
	ID         string        `json:"id"`
	Status     Status        `json:"status"`
	Tags       Tags          `json:"tags"`
	Total      int           `json:"total"`
	Counts     Counts        `json:"counts"`
	Progress   BatchProgress `json:"progress"`
	CreatedAt  time.Time     `json:"created_at"`
	FinishedAt *time.Time    `json:"finished_at"` // when the last member became final
	// Idempotency, on a new batch, is the key its submission came with:
	// the store records it with the batch (Store.CreateBatch).
	Idempotency *Idempotency `json:"-"`
}

// Counts are how many members of a batch are in each status. A member
// waiting to retry is pending.
type Counts struct {
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// Final is how many members are final.
func (c Counts) Final() int { return c.Completed + c.Failed + c.Cancelled }

// Statuses are every status, in lifecycle order.
var Statuses = []Status{StatusPending, StatusRunning, StatusCompleted, StatusFailed, StatusCancelled}

// Of is the count of status s, nil for a status that does not exist.
func (c *Counts) Of(s Status) *int {
	switch s {
	case StatusPending:
		return &c.Pending
	case StatusRunning:
		return &c.Running
	case StatusCompleted:
		return &c.Completed
	case StatusFailed:
		return &c.Failed
	case StatusCancelled:
		return &c.Cancelled
	}
	return nil
}

// BatchProgress is how far a batch has come: the mean of its members'
// percentages, a final member counting 100, a pending one and one whose
// total is unknown 0.
type BatchProgress struct {
	Percentage float64 `json:"percentage"`
}

// Batch limits.
const (
	MaxBatchSize = 10_000
)

// BatchStatus is the status of a batch with counts c of total members:
// pending while every member is, then running until every member is
// final; then failed if any failed, else cancelled if any was cancelled,
// else completed.
func BatchStatus(c Counts, total int) Status {
	switch {
	case c.Final() < total && c.Pending == total:
		return StatusPending
	case c.Final() < total:
		return StatusRunning
	case c.Failed > 0:
		return StatusFailed
	case c.Cancelled > 0:
		return StatusCancelled
	default:
		return StatusCompleted
	}
}

// Settle fills in what a batch derives from its counts: Status, and
// Progress from runningPercent, the sum of the percentages of its running
// members (a store adds them up; they are at most as many as the nodes
// run at once).
func (b *Batch) Settle(runningPercent float64) {
	b.Status = BatchStatus(b.Counts, b.Total)
	if b.Total > 0 {
		p := (100*float64(b.Counts.Final()) + runningPercent) / float64(b.Total)
		b.Progress.Percentage = min(max(p, 0), 100)
	}
}

// ValidateNew returns EINVALID unless b and its members es may be created
// by Store.CreateBatch: an ID, a storable CreatedAt, valid tags, 1 to
// MaxBatchSize members, each a valid new execution of this batch. A bad
// member is named by its index, executions[i].
func (b *Batch) ValidateNew(es []*Execution) error {
	switch {
	case b.ID == "" || !StorableText(b.ID):
		return Errorf(EINVALID, "batch has no id")
	case !StorableTime(b.CreatedAt):
		return Errorf(EINVALID, "batch has no valid creation time")
	case len(es) == 0:
		return Errorf(EINVALID, "a batch needs at least one execution")
	case len(es) > MaxBatchSize:
		return Errorf(EINVALID, "a batch holds at most %d executions, not %d", MaxBatchSize, len(es))
	}
	if err := b.Tags.Validate(); err != nil {
		return err
	}
	for i, e := range es {
		if err := e.ValidateNew(); err != nil {
			return Errorf(EINVALID, "executions[%d]: %s", i, ErrorMessage(err))
		}
		if e.BatchID == nil || *e.BatchID != b.ID {
			return Errorf(EINVALID, "executions[%d]: not a member of batch %s", i, b.ID)
		}
	}
	return nil
}

// MemberTags are the tags of a batch member: the batch's, with the
// member's own winning on the same key.
func MemberTags(batch, own Tags) Tags {
	if len(batch) == 0 {
		return own
	}
	t := make(Tags, len(batch)+len(own))
	for k, v := range batch {
		t[k] = v
	}
	for k, v := range own {
		t[k] = v
	}
	return t
}

// BatchFilter selects batches, newest first. Zero fields select all.
type BatchFilter struct {
	Status Status
	Tags   []Tag  // every one must match
	Limit  int    // 1..MaxListLimit; 0 means DefaultListLimit
	Cursor string // NextCursor of the previous page
}

// BatchPage is one page of ListBatches.
type BatchPage struct {
	Batches    []*Batch `json:"batches"`
	NextCursor *string  `json:"next_cursor"`
}

// BatchCancel is what cancelling a batch did: each pending member was
// cancelled at once (its event in Cancelled) and each running one got a
// cancel request (its id in Requested), as Execution.Cancel says.
type BatchCancel struct {
	Batch     *Batch
	Cancelled []Event
	Requested []string
}

// BatchNotFound is the ENOTFOUND of a batch id that no batch has.
func BatchNotFound(id string) error {
	return Errorf(ENOTFOUND, "batch %q not found", id)
}

// NewExecution is one execution to submit: of a batch (the engine's
// SubmitBatch) or alone.
type NewExecution struct {
	Pipeline string          `json:"pipeline"`
	Input    json.RawMessage `json:"input"`
	Tags     Tags            `json:"tags"`
	// Webhook is the execution's own webhook (Execution.Webhook).
	Webhook *ExecutionWebhook `json:"webhook,omitempty"`
	// RunAt, an RFC 3339 time, or Delay, a Go duration ("90s") from
	// submission, is the earliest it may start (Execution.RunAt); at
	// most one of the two. Text as the API takes it, so that a bad one
	// is EINVALID naming its field (StartAt): time.Format(time.RFC3339)
	// and Duration.String make them.
	RunAt string `json:"run_at,omitempty"`
	Delay string `json:"delay,omitempty"`
	// RetryOf is the final execution this one retries as new
	// (Execution.RetryOf). Only the server sets it, so it is no field of
	// a request body.
	RetryOf *string `json:"-"`
	// Idempotency is the Idempotency-Key of its submission (Execution.Idempotency).
	// The server sets it from the request's header.
	Idempotency *Idempotency `json:"-"`
}

// NewBatch is a batch a client submits: its members, and tags for all
// of them.
type NewBatch struct {
	Executions []NewExecution `json:"executions"`
	Tags       Tags           `json:"tags"`
	// Idempotency is the Idempotency-Key of its submission (Batch.Idempotency).
	Idempotency *Idempotency `json:"-"`
}
