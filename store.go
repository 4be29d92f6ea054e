package conveyor

import (
	"context"
	"time"
)

// Store is durable storage for executions and their event logs. Every
// backend passes the same conformance suite, store/storetest. Methods
// return *Error with ENOTFOUND, ECONFLICT or EINVALID for the caller's
// mistakes; anything else is a backend failure.
type Store interface {
	// CreateExecution durably inserts e, which must be pending with attempt 0,
	// no events and an ID and CreatedAt set by the caller. ECONFLICT if the
	// ID exists.
	CreateExecution(ctx context.Context, e *Execution) error

	// CreateExecutions durably inserts several executions in one
	// transaction, each as CreateExecution would; all or nothing. ECONFLICT
	// if any ID exists (then none is inserted), EINVALID as CreateExecution.
	// An ID twice in es is ECONFLICT too; an empty es is a no-op. The
	// executions are submitted in the order of es: lists show the last one
	// first, claims take the first one first.
	CreateExecutions(ctx context.Context, es []*Execution) error

	// A new execution (or batch, in CreateBatch) with an Idempotency key
	// records the key in the same transaction. When the key was first
	// used less than IdempotencyTTL before the execution's CreatedAt, the
	// create fails with a *KeyTaken saying what the key names, and nothing
	// is inserted; an older key is taken over.

	// DeleteExpiredKeys deletes up to limit idempotency keys first used
	// before before, returning how many it deleted.
	DeleteExpiredKeys(ctx context.Context, before time.Time, limit int) (int, error)

	// GetExecution returns the execution with the given id, ENOTFOUND if none.
	GetExecution(ctx context.Context, id string) (*Execution, error)

	// ListExecutions returns executions newest first, filtered by f.
	// EINVALID for a malformed cursor.
	ListExecutions(ctx context.Context, f ListFilter) (*ExecutionPage, error)

	// ClaimPending moves up to limit pending executions to running:
	// attempt+1, started_at = now(), RetryAt cleared, and a started event
	// appended. The store reads now() once it holds what the claim waits
	// for (a connection, the write lock), so that time spent waiting does
	// not date a start long before it happened; and as the statement can
	// still see an execution committed after that read, an execution
	// created later than now() starts at its created_at, never before.
	// It returns each claimed execution (as it is after the claim) with
	// that event, oldest first. An execution that waits (its
	// RetryAt, else its RunAt, is set) is not claimed before that time;
	// once due, it goes first, the earliest due first, before the
	// others, oldest first. Neither kind costs a claim a scan of the
	// executions still waiting.
	ClaimPending(ctx context.Context, limit int, now func() time.Time) ([]Claim, error)

	// NextDue returns the earliest time after after at which a waiting
	// pending execution becomes due (see ClaimPending); the zero time
	// when none waits past after. Its cost does not grow with the
	// number waiting.
	NextDue(ctx context.Context, after time.Time) (time.Time, error)

	// CountPending returns how many executions are pending, counting no
	// further than upTo: the cost grows with the count, so a caller that
	// only needs to know whether a limit is reached says so.
	CountPending(ctx context.Context, upTo int) (int, error)

	// CountByStatus returns how many executions are in each status,
	// counting each no further than upTo (a count of upTo means "at
	// least"), for the same reason as CountPending. A pending execution
	// waiting to retry counts as pending.
	CountByStatus(ctx context.Context, upTo int) (Counts, error)

	// Throughput counts the executions that started and that finished in
	// each of q.Buckets consecutive spans of q.Width from q.Since, oldest
	// first. Started is by StartedAt, the start of an execution's latest
	// attempt, so a retried execution counts once, when its last attempt
	// began. EINVALID as ThroughputQuery.Validate says.
	Throughput(ctx context.Context, q ThroughputQuery) ([]ThroughputBucket, error)

	// Append writes events of running attempts in one transaction and
	// applies each to its execution: LastSeq = Seq; Progress when set; for
	// final events also the status, FinishedAt, Error, Result; for retrying,
	// status pending, the error and RetryAt recorded and the progress
	// the event carries (cleared when it carries none). A write whose
	// attempt is not the execution's current running attempt is dropped
	// (fencing): a stale writer never overwrites newer state. Append marks
	// each write Dropped or not.
	Append(ctx context.Context, writes []Event) error

	// SaveCheckpoints records where running attempts are, for resume
	// (Pipeline.ResumeOf), in one transaction: each write, in order,
	// sets its execution's ResumeStep to Step and Checkpoint to Data
	// (nil clears it). A write whose attempt is not the execution's
	// current running attempt is dropped (fencing, as Append's); it
	// marks each write Dropped or not. EINVALID as Checkpoint.Validate
	// says, and then it writes nothing.
	SaveCheckpoints(ctx context.Context, writes []Checkpoint) error

	// Events returns up to limit events of an execution with seq > after,
	// in seq order.
	Events(ctx context.Context, id string, after int64, limit int) ([]Event, error)

	// Cancel cancels a pending execution at once, appending and returning
	// its cancelled event; for a running one it sets CancelRequested and
	// returns a nil event (the runner writes the final event). ECONFLICT if
	// already final, ENOTFOUND if unknown.
	Cancel(ctx context.Context, id string, now time.Time) (*Execution, *Event, error)

	// DeleteExecution deletes a final execution with its events, log
	// lines, tags and webhook deliveries, and its batch if it was the
	// batch's last member, in one transaction (see
	// Execution.CheckDelete). ECONFLICT if not final, ENOTFOUND if
	// unknown.
	DeleteExecution(ctx context.Context, id string) error

	// PruneExecutions deletes, as DeleteExecution does and in one short
	// transaction, up to limit of the executions that Execution.Expired
	// says have expired by cutoff, those that finished first first. It
	// returns how many it deleted: fewer than limit when no more have
	// expired. On a shared store one node prunes at a time: a call while
	// another node's is under way deletes nothing and returns 0.
	PruneExecutions(ctx context.Context, cutoff time.Time, limit int) (int, error)

	// RecoverInterrupted handles every execution left running by a dead
	// node, as Execution.Interrupt says with policy(pipeline): with
	// retries left it goes back to pending with a retrying event and
	// waits until its RetryAt, otherwise it fails with EINTERRUPTED. A
	// nil policy is no retries. It returns the events appended.
	RecoverInterrupted(ctx context.Context, now time.Time, policy func(pipeline string) RetryPolicy) ([]Event, error)

	// AppendLogs appends log lines; each execution keeps its newest
	// MaxLogLines lines.
	AppendLogs(ctx context.Context, lines []LogLine) error

	// Logs returns a page of the kept log lines of an execution, oldest
	// first: those after line number after (0: from the oldest kept), as
	// many as fit in about maxBytes, and at least one if there is one.
	Logs(ctx context.Context, id string, after int64, maxBytes int) (*LogPage, error)

	// CreateBatch durably inserts batch b (its ID, CreatedAt and Tags
	// set by the caller) and its members es in one transaction, all or
	// nothing. Each member is a new execution as CreateExecution takes,
	// with BatchID set to b.ID and its tags already merged (MemberTags).
	// EINVALID as Batch.ValidateNew says, ECONFLICT if the batch or an
	// execution id exists.
	CreateBatch(ctx context.Context, b *Batch, es []*Execution) error

	// GetBatch returns a batch with its counts and progress, ENOTFOUND if
	// none. Its cost does not grow with the number of members: counts
	// change in the transaction of each member's status change.
	GetBatch(ctx context.Context, id string) (*Batch, error)

	// ListBatches returns batches newest first, filtered by f.
	ListBatches(ctx context.Context, f BatchFilter) (*BatchPage, error)

	// CancelBatch cancels every member that is not final, each as Cancel
	// would, in one transaction. ECONFLICT if the batch is final,
	// ENOTFOUND if unknown.
	CancelBatch(ctx context.Context, id string, now time.Time) (*BatchCancel, error)

	// WebhookStore keeps webhook subscriptions and the outbox of their
	// deliveries.
	WebhookStore

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error

	Close() error
}

// SeqReservation is how far past its newest seq the node running an
// attempt on a shared store may publish progress it has not stored
// (progress is stored only now and then, see engine.Config). The lease
// records the reservation, and an event written for the attempt without
// its runner (a rescue) takes a seq above it: a subscriber on the node
// that lost the lease has seen no seq as high, so it misses nothing.
// A million is more progress than a runner publishes between two lease
// renewals; a rescued execution's seqs jump by about that much.
const SeqReservation = 1_000_000

// Lease is one execution's lease as its runner renews it: the highest
// seq it may publish until the next renewal.
type Lease struct {
	ExecutionID string
	SeqReserved int64
}

// Renewal is what RenewLeases found.
type Renewal struct {
	Lost            []string // no longer running under this node's lease
	CancelRequested []string // a cancel arrived, perhaps on another node
}

// MaxLogLines is how many log lines an execution keeps, newest first.
const MaxLogLines = 1000

// MaxLogPageBytes bounds a page of log lines (Store.Logs) as the API
// reads it: an execution may keep a thousand lines of 64 KiB each.
const MaxLogPageBytes = 1 << 20

// LogPage is a page of an execution's log lines.
type LogPage struct {
	Lines []LogLine `json:"lines"`
	// Last is the number of the last line of the page (the after given
	// when there is none): the after of the next page. Numbers rise
	// with every line an execution writes.
	Last int64 `json:"last"`
	// More says that lines after Last are kept already.
	More bool `json:"more"`
}

// Bytes is about how many bytes l takes in a page: its text and what
// goes with it.
func (l LogLine) Bytes() int { return len(l.Line) + len(l.Step) + len(l.Stream) + 96 }

// LogLine is one line of output of an execution's step.
type LogLine struct {
	ExecutionID string    `json:"-"`
	Time        time.Time `json:"timestamp"`
	// Attempt is the attempt that wrote the line, so the output of a
	// retried execution never interleaves unlabelled; 0 for lines kept
	// from before Conveyor recorded it.
	Attempt int    `json:"attempt"`
	Step    string `json:"step"`
	Stream  string `json:"stream"` // "stdout" or "stderr" of an exec step, "log" from Exec.Log
	Line    string `json:"line"`
	// Number is the line's number, set by Store.Logs (0 on a line not yet
	// stored): it rises with every line an execution writes, and a page
	// after it continues past this line.
	Number int64 `json:"number"`
}

// Claim is an execution just claimed for running, with its started event.
type Claim struct {
	Execution *Execution
	Started   Event
}

// ListFilter selects executions. Zero fields select all.
type ListFilter struct {
	Status   Status
	Pipeline string
	Batch    string // members of this batch
	Tags     []Tag  // every one must match
	// IDPrefix selects the executions whose id starts with it: the
	// beginning of a UUID, lowercase (see ValidIDPrefix).
	IDPrefix string
	// FinishedSince, when set, selects final executions that finished at
	// or after it (a resumed stream of many executions catches up with it).
	FinishedSince time.Time
	// A list leaves out each execution's Input, Result and Data, which
	// can be large, unless these ask for them; then a page holds at most
	// MaxPayloadListLimit executions, which bounds its size.
	WithInput, WithResult, WithData bool
	Limit                           int    // 1..MaxListLimit; 0 means DefaultListLimit
	Cursor                          string // NextCursor of the previous page
}

// List limits.
const (
	DefaultListLimit    = 50
	MaxListLimit        = 500
	MaxPayloadListLimit = 50
)

// ExecutionPage is one page of ListExecutions.
type ExecutionPage struct {
	Executions []*Execution `json:"executions"`
	NextCursor *string      `json:"next_cursor"`
}

// DefaultLease is how long a claim on a SharedStore holds an execution
// without renewal when nothing else is configured. The store takes leases
// of that length and the engine renews them every third of it, so both
// fall back to this one value.
const DefaultLease = 30 * time.Second

// SharedStore is a Store that several nodes use at once (PostgreSQL). Its
// claims take leases that the running node renews; an execution whose
// lease expired is rescued by any node. It also tells each node what the
// others did (Notifier).
type SharedStore interface {
	Store
	Notifier

	// RenewLeases extends the leases of this node's running executions
	// and raises each one's SeqReserved to its lease's. Executions no
	// longer running under this node's lease are reported Lost; those with
	// a cancel requested, CancelRequested. A claim reserves
	// SeqReservation seqs past the started event.
	RenewLeases(ctx context.Context, leases []Lease, now time.Time) (Renewal, error)

	// RescueExpired does what RecoverInterrupted does, but only for
	// executions whose lease expired before now, whichever node had them.
	RescueExpired(ctx context.Context, now time.Time, policy func(pipeline string) RetryPolicy) ([]Event, error)
}

// Subscription is a live feed of one execution's events, as package hub
// delivers them: Ready is signalled when events wait, Take returns them
// (appended to buf) in seq order, progress conflated for a slow reader.
type Subscription interface {
	Ready() <-chan struct{}
	Take(buf []Event) []Event
	Close()
}

// Watch is a live feed of one execution's events with the state it starts
// from.
type Watch struct {
	Subscription
	// Execution is the execution as it was when the feed began, with Newer
	// merged in.
	Execution *Execution
	// Newer is the newest progress published live that the store did not
	// have yet, if there was one.
	Newer *Event
}
