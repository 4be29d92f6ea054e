package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-run/conveyor"
)

// Defaults of Config.
const (
	DefaultConcurrency    = 8
	DefaultPollInterval   = time.Second
	DefaultRescueInterval = 5 * time.Second
)

// Config configures an Engine.
type Config struct {
	Store     conveyor.Store
	Pipelines map[string]*conveyor.Pipeline
	// PublishFunc delivers events to live subscribers. It must not block.
	PublishFunc func(conveyor.Event)
	// LogsStoredFunc is told, after each write of log lines, the
	// executions that have new lines stored, so that log followers read
	// them (a line is numbered only once stored). It must not block; an
	// execution may be told more than once per write.
	LogsStoredFunc func(id string)
	// Concurrency is how many executions run at once; default
	// DefaultConcurrency. A run whose work is done gives up its place
	// while its end is being stored, and up to Concurrency such runs may
	// wait for the store besides those running.
	Concurrency int
	// PollInterval is how often the claim loop looks for pending work when
	// nothing woke it; default DefaultPollInterval.
	PollInterval time.Duration
	// Lease is how long a claim holds on a shared store without renewal
	// (renewed every third of it); default conveyor.DefaultLease, as the
	// store's. RescueInterval is how often expired leases are looked for;
	// default DefaultRescueInterval.
	Lease          time.Duration
	RescueInterval time.Duration
	// ProgressStoreInterval is how often, at most, an execution's progress
	// is written to the store; subscribers get every update at once (on
	// other nodes of a shared store through PublishFunc's announcements).
	// Zero writes every update.
	ProgressStoreInterval time.Duration
	Logger                *slog.Logger
	NowFunc               func() time.Time
	// RetryJitterFunc spreads the wait before each retry; default
	// conveyor.Jitter, ±10 % at random. Tests make it exact.
	RetryJitterFunc func(time.Duration) time.Duration

	// Metrics is told what the engine does; default none.
	Metrics Metrics
}

func (c *Config) validate() error {
	if c.Store == nil {
		return errors.New("engine: Store is required")
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("engine: concurrency %d is negative", c.Concurrency)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Lease <= 0 {
		c.Lease = conveyor.DefaultLease
	}
	if c.RescueInterval <= 0 {
		c.RescueInterval = DefaultRescueInterval
	}
	if c.ProgressStoreInterval < 0 {
		return fmt.Errorf("engine: progress store interval %s is negative", c.ProgressStoreInterval)
	}
	if c.PublishFunc == nil {
		c.PublishFunc = func(conveyor.Event) {}
	}
	if c.LogsStoredFunc == nil {
		c.LogsStoredFunc = func(string) {}
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	if c.Pipelines == nil {
		c.Pipelines = map[string]*conveyor.Pipeline{}
	}
	return nil
}

// Causes that end a run's context, told apart when the run ends.
var (
	errCancelled = errors.New("cancelled")
	errShutdown  = errors.New("node shutting down")
)

// Engine claims pending executions and runs them.
type Engine struct {
	cfg     Config
	writer  *writer
	creator creator
	wake    chan struct{}

	runCtx     context.Context
	cancelRuns context.CancelCauseFunc
	stopClaims context.CancelFunc
	claimsDone chan struct{}
	leaseDone  chan struct{}
	runsWG     sync.WaitGroup

	// mu guards runs and ending. The claim loop holds it from claiming to
	// registering, so Cancel finds every execution that is running here.
	mu   sync.Mutex
	runs map[string]*run
	// ending counts the runs whose work is done and whose end is being
	// stored: they hold no place of Concurrency (see ended).
	ending int
	// backlog is set while the last claim took all it had room for:
	// more may be pending than this node can start.
	backlog atomic.Bool
	// others is the store's way to ask the other nodes to claim what
	// this one cannot start (nil on a store of its own).
	others pendingNotifier

	// history is each pipeline's recent step durations, for ETAs. Its
	// keys are fixed at New, so runs read it without a lock.
	history map[string]*stepHistory

	// dueMu guards due: the earliest time at which an execution this
	// node submitted or retried becomes due, that the claim loop has
	// not yet taken into its timer (zero: none).
	dueMu sync.Mutex
	due   time.Time
}

// New returns an engine; Start makes it run work.
func New(cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, wake: make(chan struct{}, 1), runs: make(map[string]*run), history: newHistories(cfg.Pipelines)}
	e.others, _ = cfg.Store.(pendingNotifier)
	e.creator = creator{store: cfg.Store, metrics: cfg.Metrics, stored: e.submitted}
	return e, nil
}

// pendingNotifier is the part of conveyor.Notifier the engine uses to
// share work.
type pendingNotifier interface {
	NotifyPending(ctx context.Context)
}

// Start makes the engine claim and run work. On a store of its own it
// first recovers every execution a crash left running; on a shared store it
// renews its leases and rescues executions whose node stopped renewing.
// Call it once; Stop ends what it started.
func (e *Engine) Start(ctx context.Context) error {
	shared, isShared := e.cfg.Store.(conveyor.SharedStore)
	if !isShared {
		evs, err := e.cfg.Store.RecoverInterrupted(ctx, e.now(), e.retryPolicy)
		if err != nil {
			return fmt.Errorf("recover interrupted executions: %w", err)
		}
		for _, ev := range evs {
			e.cfg.Logger.Warn("recovered interrupted execution", "execution", ev.ExecutionID, "event", ev.Type, "attempt", ev.Attempt)
			e.cfg.PublishFunc(ev)
		}
		// The claim loop asks the store when these retries are due.
	}

	e.writer = newWriter(e.cfg.Store, e.cfg.Logger, e.cfg.LogsStoredFunc, e.cfg.Metrics)
	e.runCtx, e.cancelRuns = context.WithCancelCause(context.WithoutCancel(ctx))
	claimCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopClaims, e.claimsDone, e.leaseDone = stop, make(chan struct{}), make(chan struct{})
	go e.claimLoop(claimCtx)
	if isShared {
		go e.leaseLoop(e.runCtx, shared)
	} else {
		close(e.leaseDone)
	}
	return nil
}

// retryPolicy is the retry policy of the named pipeline: none for a
// pipeline this node does not have.
func (e *Engine) retryPolicy(pipeline string) conveyor.RetryPolicy {
	p := e.cfg.Pipelines[pipeline]
	if p == nil {
		return conveyor.RetryPolicy{}
	}
	rp := p.RetryPolicy()
	rp.JitterFunc = e.cfg.RetryJitterFunc
	return rp
}

// Stop stops claiming, waits for running executions until ctx is done,
// then cancels them (they are retried or fail as interrupted) and waits
// for their final writes.
func (e *Engine) Stop(ctx context.Context) {
	e.stopClaims()
	<-e.claimsDone
	idle := make(chan struct{})
	go func() { e.runsWG.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-ctx.Done():
		e.cfg.Logger.Warn("shutdown timeout: cancelling running executions", "running", e.Running())
		e.cancelRuns(errShutdown)
		select {
		case <-idle:
		case <-time.After(abandonAfter):
			// A handler that ignores its context cannot hold the node
			// forever; its execution stays running in the store and is
			// recovered like a crash's.
			e.cfg.Logger.Error("abandoning runs that ignore cancellation", "running", e.Running())
			<-e.leaseDone
			return
		}
	}
	e.cancelRuns(errShutdown) // also ends the lease loop
	<-e.leaseDone
	e.writer.close()
}

// abandonAfter is how long Stop waits for cancelled runs: longer than an
// exec step's default SIGTERM-to-SIGKILL grace.
const abandonAfter = 10 * time.Second

// Running returns how many executions run on this engine now.
func (e *Engine) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.runs)
}

// RunsHere reports whether execution id is running on this engine.
func (e *Engine) RunsHere(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id] != nil
}

// Pipeline returns the pipeline with the given name.
func (e *Engine) Pipeline(name string) (*conveyor.Pipeline, bool) {
	p, ok := e.cfg.Pipelines[name]
	return p, ok
}

// Pipelines returns every pipeline, sorted by name.
func (e *Engine) Pipelines() []*conveyor.Pipeline {
	ps := make([]*conveyor.Pipeline, 0, len(e.cfg.Pipelines))
	for _, p := range e.cfg.Pipelines {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *conveyor.Pipeline) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

// Submit durably records a pending execution of the named pipeline and
// wakes the claim loop. input must be a JSON object, or empty for {}.
// A caller that already gave up (ctx done) submits nothing. Once queued,
// the write shares a transaction with concurrent submissions and is not
// cut short by ctx: a caller that gave up must not leave others half done,
// nor learn "failed" of an execution that was stored.
func (e *Engine) Submit(ctx context.Context, pipeline string, input json.RawMessage, tags conveyor.Tags) (*conveyor.Execution, error) {
	ex, _, err := e.SubmitExecution(ctx, conveyor.NewExecution{Pipeline: pipeline, Input: input, Tags: tags})
	return ex, err
}

// SubmitExecution is Submit with everything a new execution may carry:
// its own webhook and an idempotency key too. created is false when the
// key named an execution already, which it returns as it is now: a
// repeat of the request that created it. The same key with another
// request is EIDEMPOTENCYMISMATCH.
func (e *Engine) SubmitExecution(ctx context.Context, n conveyor.NewExecution) (ex *conveyor.Execution, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if ex, err = e.newExecution(n, e.now()); err != nil {
		return nil, false, err
	}
	if err := e.creator.create(ex); err != nil {
		var taken *conveyor.KeyTaken
		if errors.As(err, &taken) {
			ex, err = e.replayExecution(ctx, taken, ex.Idempotency)
		}
		return ex, false, err
	}
	e.cfg.Metrics.Submitted(ex.Pipeline)
	e.wakeAt(ex.RunAt)
	return ex, true, nil
}

// replayExecution answers a submission whose key names an execution.
func (e *Engine) replayExecution(ctx context.Context, taken *conveyor.KeyTaken, id *conveyor.Idempotency) (*conveyor.Execution, error) {
	if err := taken.Replay(id); err != nil {
		return nil, err
	}
	ex, err := e.cfg.Store.GetExecution(ctx, taken.ExecutionID)
	if conveyor.ErrorCode(err) == conveyor.ENOTFOUND {
		return nil, conveyor.Errorf(conveyor.ECONFLICT, "Idempotency-Key %q created execution %s, which has been deleted", id.Key, taken.ExecutionID)
	}
	return ex, err
}

// newExecution is a new pending execution, checked: the pipeline exists
// here, the input is a JSON object, run_at or delay are well-formed
// (NewExecution.StartAt), and ValidateNew holds.
func (e *Engine) newExecution(n conveyor.NewExecution, now time.Time) (*conveyor.Execution, error) {
	pipeline := n.Pipeline
	if pipeline == "" {
		return nil, conveyor.Errorf(conveyor.EINVALID, "pipeline is required")
	}
	if _, ok := e.cfg.Pipelines[pipeline]; !ok {
		return nil, conveyor.Errorf(conveyor.EUNKNOWNPIPELINE, "pipeline %q does not exist", pipeline)
	}
	input, err := normalizeInput(n.Input)
	if err != nil {
		return nil, err
	}
	runAt, err := n.StartAt(now)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new execution id: %w", err)
	}
	ex := &conveyor.Execution{
		ID:          id.String(),
		Pipeline:    pipeline,
		Status:      conveyor.StatusPending,
		Input:       input,
		Tags:        n.Tags,
		Webhook:     n.Webhook,
		RetryOf:     n.RetryOf,
		CreatedAt:   now,
		RunAt:       runAt,
		Idempotency: n.Idempotency,
	}
	return ex, ex.ValidateNew()
}

// SubmitBatch durably records a batch of pending executions, all or
// nothing, and wakes the claim loop. Each item is checked as Submit
// checks one; a bad item fails the batch with its code and a message that
// names it, executions[i]. The batch's tags go to every member, an item's
// own tag winning on the same key. An idempotency key works as in
// SubmitExecution: created is false when it named a batch already.
func (e *Engine) SubmitBatch(ctx context.Context, nb conveyor.NewBatch) (b *conveyor.Batch, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, fmt.Errorf("new batch id: %w", err)
	}
	now := e.now()
	b = &conveyor.Batch{ID: id.String(), CreatedAt: now, Tags: nb.Tags, Idempotency: nb.Idempotency}
	es := make([]*conveyor.Execution, len(nb.Executions))
	for i, it := range nb.Executions {
		it.Tags = conveyor.MemberTags(nb.Tags, it.Tags)
		if es[i], err = e.newExecution(it, now); err != nil {
			return nil, false, &conveyor.Error{Code: conveyor.ErrorCode(err), Message: fmt.Sprintf("executions[%d]: %s", i, conveyor.ErrorMessage(err))}
		}
		es[i].BatchID = &b.ID
	}
	began := time.Now()
	err = e.cfg.Store.CreateBatch(ctx, b, es)
	e.cfg.Metrics.StoreCommitted(commitSubmit, time.Since(began))
	var taken *conveyor.KeyTaken
	if errors.As(err, &taken) {
		b, err = e.replayBatch(ctx, taken, nb.Idempotency)
		return b, false, err
	}
	if err != nil {
		return nil, false, err
	}
	for _, ex := range es {
		e.cfg.Metrics.Submitted(ex.Pipeline)
		e.wakeAt(ex.RunAt)
	}
	e.submitted(len(es))
	b.Total, b.Counts.Pending = len(es), len(es)
	b.Settle(0)
	return b, true, nil
}

// replayBatch answers a batch submission whose key names a batch.
func (e *Engine) replayBatch(ctx context.Context, taken *conveyor.KeyTaken, id *conveyor.Idempotency) (*conveyor.Batch, error) {
	if err := taken.Replay(id); err != nil {
		return nil, err
	}
	b, err := e.cfg.Store.GetBatch(ctx, taken.BatchID)
	if conveyor.ErrorCode(err) == conveyor.ENOTFOUND {
		return nil, conveyor.Errorf(conveyor.ECONFLICT, "Idempotency-Key %q created batch %s, which has been deleted", id.Key, taken.BatchID)
	}
	return b, err
}

// CancelBatch cancels every member of a batch that is not final, each as
// Cancel would.
func (e *Engine) CancelBatch(ctx context.Context, id string) (*conveyor.Batch, error) {
	done, err := e.cfg.Store.CancelBatch(ctx, id, e.now())
	if err != nil {
		return nil, err
	}
	for _, ev := range done.Cancelled {
		e.cfg.PublishFunc(ev)
	}
	for _, id := range done.Requested {
		e.cancelRun(id, errCancelled)
	}
	return done.Batch, nil
}

func normalizeInput(input json.RawMessage) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if len(input) == 0 || string(input) == "null" {
		return json.RawMessage("{}"), nil
	}
	if err := json.Unmarshal(input, &obj); err != nil {
		return nil, conveyor.Errorf(conveyor.EINVALID, "input must be a JSON object")
	}
	return input, nil
}

// Cancel cancels an execution: a pending one at once, a running one by
// cancelling its context (an exec step's process group gets SIGTERM, then
// SIGKILL), which makes the run write its cancelled event.
func (e *Engine) Cancel(ctx context.Context, id string) (*conveyor.Execution, error) {
	ex, ev, err := e.cfg.Store.Cancel(ctx, id, e.now())
	if err != nil {
		return nil, err
	}
	if ev != nil {
		e.cfg.PublishFunc(*ev)
		return ex, nil
	}
	e.cancelRun(id, errCancelled)
	return ex, nil
}

func (e *Engine) now() time.Time { return e.cfg.NowFunc().UTC() }

// submitted has the claim loop start n executions just stored, and asks
// the other nodes to claim too when this one may not start them all at
// once: n is more than it runs at a time, or its last claim left work
// pending. Otherwise it keeps them to itself, so that nodes with room do
// not all race to claim every submission; should its claim fill it, the
// claim asks the others then.
func (e *Engine) submitted(n int) {
	e.nudge()
	if e.others != nil && (e.backlog.Load() || n > e.cfg.Concurrency) {
		e.others.NotifyPending(context.Background())
	}
}

// nudge wakes the claim loop without blocking.
func (e *Engine) nudge() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// wakeAt tells the claim loop that an execution becomes due at *t (nil:
// at once, nothing to tell), for it to claim then; the caller nudges it.
func (e *Engine) wakeAt(t *time.Time) {
	if t == nil {
		return
	}
	e.dueMu.Lock()
	if e.due.IsZero() || t.Before(e.due) {
		e.due = *t
	}
	e.dueMu.Unlock()
}

// takeDue returns what wakeAt was told since the last call.
func (e *Engine) takeDue() time.Time {
	e.dueMu.Lock()
	defer e.dueMu.Unlock()
	t := e.due
	e.due = time.Time{}
	return t
}

// claimLoop claims work when woken (a submission, a run that ended, a
// notice), when a waiting execution becomes due, and every PollInterval.
// It learns when the next one is due from this node's submissions and
// retries (wakeAt), and from the store (NextDue) at start, at every poll
// and after each due time: the poll covers executions that other nodes
// submitted to run later, within PollInterval.
func (e *Engine) claimLoop(ctx context.Context) {
	defer close(e.claimsDone)
	tick := time.NewTicker(e.cfg.PollInterval)
	defer tick.Stop()
	due := newDueTimer()
	defer due.stop()
	lookAhead := true
	for {
		if full := e.claim(ctx); full {
			continue // there may be more pending work and room for it
		}
		if lookAhead {
			lookAhead = false
			next, err := e.cfg.Store.NextDue(ctx, e.now())
			if err != nil && ctx.Err() == nil {
				e.cfg.Logger.Error("look for executions due later", "err", err)
			}
			due.arm(next, e.now())
		}
		due.arm(e.takeDue(), e.now())
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-due.C():
			due.fired()
			lookAhead = true
		case <-tick.C:
			lookAhead = true
		}
	}
}

// dueTimer fires at the earliest due time it was armed for.
type dueTimer struct {
	t  *time.Timer
	at time.Time // what it is armed for; zero: not armed
}

func newDueTimer() *dueTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &dueTimer{t: t}
}

// arm makes the timer fire at at (now: the engine's clock), unless it is
// armed for earlier already or at is zero.
func (d *dueTimer) arm(at, now time.Time) {
	if at.IsZero() || !d.at.IsZero() && !at.Before(d.at) {
		return
	}
	d.at = at
	d.t.Reset(at.Sub(now))
}

func (d *dueTimer) C() <-chan time.Time { return d.t.C }
func (d *dueTimer) fired()              { d.at = time.Time{} }
func (d *dueTimer) stop()               { d.t.Stop() }

// claim claims as many executions as there is room for and starts them. It
// reports whether it got all it asked for.
func (e *Engine) claim(ctx context.Context) bool {
	var share bool
	defer func() { // after the unlock below
		if share {
			e.others.NotifyPending(ctx)
		}
	}()
	e.mu.Lock()
	defer e.mu.Unlock()
	free := min(e.cfg.Concurrency-(len(e.runs)-e.ending), 2*e.cfg.Concurrency-len(e.runs))
	if free <= 0 || ctx.Err() != nil {
		return false
	}
	claims, err := e.cfg.Store.ClaimPending(ctx, free, e.now)
	if err != nil {
		if ctx.Err() == nil {
			e.cfg.Logger.Error("claim pending executions", "err", err)
		}
		return false
	}
	for _, c := range claims {
		queued := c.Execution.CreatedAt // or, for a delayed run, when it became due
		if at := c.Execution.RunAt; at != nil && at.After(queued) {
			queued = *at
		}
		e.cfg.Metrics.Started(c.Execution.Pipeline, c.Execution.Attempt, c.Started.Time.Sub(queued))
		r := e.newRun(c)
		e.runs[c.Execution.ID] = r
		e.runsWG.Add(1)
		go r.run()
	}
	full := len(claims) == free
	// Full for the first time: what is left may wait for a worker here
	// while another node has room.
	was := e.backlog.Swap(full)
	share = full && !was && e.others != nil
	return full
}

// ended gives up a run's place once its handler or steps returned, before
// its end is stored: the next claim need not wait for that commit, as a
// worker of River need not wait for its completer. A run that is ending
// still counts for its lease and for Cancel until finished; at most
// Concurrency of them wait for the store, so that a slow store does not
// let runs pile up. Every run calls it once, before finished.
func (e *Engine) ended() {
	e.mu.Lock()
	e.ending++
	e.mu.Unlock()
	e.nudge()
}

// finished unregisters a run that ended and makes room for more work.
func (e *Engine) finished(r *run) {
	e.mu.Lock()
	delete(e.runs, r.ex.ID)
	e.ending--
	e.mu.Unlock()
	e.cfg.Metrics.Ended(r.ex.Pipeline)
	e.runsWG.Done()
	e.nudge()
}
