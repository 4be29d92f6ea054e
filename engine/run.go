package engine

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-run/conveyor"
)

// run is one attempt of one execution on this node.
type run struct {
	e      *Engine
	ex     *conveyor.Execution
	p      *conveyor.Pipeline // nil if the pipeline no longer exists
	resume conveyor.Resume    // where the attempt starts (conveyor.Pipeline.ResumeOf)
	ctx    context.Context
	cancel context.CancelCauseFunc
	kick   chan struct{} // wakes the emitter: progress is waiting

	// emitMu orders events: it is held while an event gets its seq, is
	// published and is queued for the store.
	emitMu sync.Mutex
	seq    int64
	// reserved is the highest seq progress may be published with: on a
	// shared store, what the store holds in the lease (see
	// conveyor.SeqReservation), so that a rescue's event comes after every
	// seq a subscriber here has seen.
	reserved int64
	ended    bool // the final event was emitted; nothing may follow
	// Progress reaches subscribers at once but the store at most once per
	// ProgressStoreInterval: storedAt is when it last went to the store,
	// unstored the newest progress published since.
	storedAt time.Time
	unstored *conveyor.Event
	// published is the progress last published: one that differs only in
	// its ETA is not published again.
	published *conveyor.Progress

	// stalled is set by a stalled event and cleared by the next event:
	// while it is set, any report (a log line too) makes the emitter
	// publish and store progress at once, which ends the stall.
	stalled atomic.Bool

	// recorded says the store holds where this execution's attempts got
	// to (conveyor.Execution.Resumable): then a retry keeps the progress.
	// checkpointMu orders the writes of resume points, so that a late
	// checkpoint of a step that ended cannot land after the next step's
	// begin.
	recorded     atomic.Bool
	checkpointMu sync.Mutex

	mu     sync.Mutex // guards the fields below, written by Exec reports
	state  progressState
	dirty  bool // state changed since the last progress event
	result json.RawMessage
	// data is the execution's data, merged from every report (replaced,
	// never changed in place: events share it); dataDirty says the newest
	// merge has no data event yet.
	data      json.RawMessage
	dataDirty bool
	// lastReport is when the running step last reported progress (as the
	// emitter took the report), data or a log line, or began; stall is
	// its stall rule.
	lastReport time.Time
	stall      conveyor.Stall
}

func (e *Engine) newRun(c conveyor.Claim) *run {
	ctx, cancel := context.WithCancelCause(e.runCtx)
	r := &run{
		e:      e,
		ex:     c.Execution,
		p:      e.cfg.Pipelines[c.Execution.Pipeline],
		ctx:    ctx,
		cancel: cancel,
		kick:   make(chan struct{}, 1),
		seq:    c.Started.Seq,
	}
	r.reserved = math.MaxInt64
	if _, shared := e.cfg.Store.(conveyor.SharedStore); shared {
		r.reserved = c.Execution.SeqReserved
	}
	r.state.total = -1
	r.state.started = c.Started.Time
	r.data = c.Execution.Data
	r.lastReport = c.Started.Time
	if r.p != nil {
		r.stall = r.p.StallOf(-1) // a handler's; each step sets its own
		r.resume = r.p.ResumeOf(c.Execution)
	}
	r.recorded.Store(c.Execution.Resumable())
	r.state.timing.history = e.history[c.Execution.Pipeline]
	// The started event was just stored: the first progress sample is due
	// an interval after it, so an execution shorter than that stores none.
	r.storedAt = c.Started.Time
	if r.p != nil && r.p.Handler == nil {
		r.state.total = len(r.p.Steps)
	}
	if p := r.resume.Progress; p != nil {
		r.state.resume(p, r.p.Handler != nil)
	}
	e.cfg.PublishFunc(c.Started)
	if c.Execution.CancelRequested {
		cancel(errCancelled)
	}
	return r
}

func (r *run) run() {
	defer r.e.finished(r)
	defer r.cancel(nil)

	emitterDone := make(chan struct{})
	go r.emitProgressLoop(emitterDone)

	err := r.execute()
	r.e.ended()
	r.finish(err)
	close(emitterDone)
}

// execute runs the pipeline and returns why it stopped early, if it did.
func (r *run) execute() (err error) {
	if r.p == nil {
		return conveyor.Errorf(conveyor.EUNKNOWNPIPELINE, "pipeline %q does not exist on this node", r.ex.Pipeline)
	}
	ctx := r.ctx
	if r.p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.p.Timeout,
			conveyor.Errorf(conveyor.ETIMEOUT, "execution timed out after %s", r.p.Timeout))
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			r.e.cfg.Logger.Error("handler panicked", "execution", r.ex.ID, "panic", v, "stack", string(debug.Stack()))
			err = conveyor.Errorf(conveyor.ESTEPFAILED, "panic: %v", v)
		}
	}()

	if r.p.Handler != nil {
		x := r.newExec("", 0)
		x.ResumeCheckpoint = r.resume.Checkpoint
		if r.resume.Progress != nil {
			r.mu.Lock()
			r.dirty = true // the first progress is where the last attempt got to
			r.mu.Unlock()
			r.kickEmitter()
		}
		return stepError(ctx, r.p.Handler(ctx, x))
	}
	for i := r.resume.Step - 1; i < len(r.p.Steps); i++ {
		step := r.p.Steps[i]
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		now := r.e.now()
		r.mu.Lock()
		r.state.beginStep(i+1, len(r.p.Steps), step.Name, now)
		r.dirty = true
		r.lastReport, r.stall = now, r.p.StallOf(i)
		r.mu.Unlock()
		r.kickEmitter() // the emitter publishes it and times its store write
		// The step the attempt resumes at is recorded already, with the
		// checkpoint it resumes from.
		if r.p.Resume && i+1 != r.ex.ResumeStep {
			r.recordStep(i + 1)
		}

		sctx, cancel := ctx, context.CancelFunc(func() {})
		if step.Timeout > 0 {
			sctx, cancel = context.WithTimeoutCause(ctx, step.Timeout,
				conveyor.Errorf(conveyor.ETIMEOUT, "step %q timed out after %s", step.Name, step.Timeout))
		}
		x := r.newExec(step.Name, i+1)
		if i+1 == r.resume.Step {
			x.ResumeCheckpoint = r.resume.Checkpoint
		}
		err := stepError(sctx, step.Run(sctx, x))
		cancel()
		if err != nil {
			var ce *conveyor.Error
			if errors.As(err, &ce) && ce.Code == conveyor.ESTEPFAILED {
				return conveyor.Errorf(ce.Code, "step %q: %s", step.Name, ce.Message)
			}
			return err
		}
	}
	return nil
}

// stepError prefers why ctx ended (cancel, timeout, shutdown) over what
// the step returned: the error that ending it caused, or nil from a
// program that exits 0 on SIGTERM. A step that ran out of time or was
// cancelled did not succeed, whatever it says.
func stepError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// newExec builds what a step or handler sees. step is the 1-based index of
// a declarative step (its reports count only while it runs), 0 for a
// handler, which owns its steps.
func (r *run) newExec(stepName string, step int) *conveyor.Exec {
	return &conveyor.Exec{
		ID:       r.ex.ID,
		Pipeline: r.ex.Pipeline,
		Attempt:  r.ex.Attempt,
		Input:    r.ex.Input,
		Step:     stepName,
		ProgressFunc: func(u conveyor.Update) {
			r.report(u, step)
		},
		LogFunc: func(stream, line string) {
			now := r.e.now()
			r.e.writer.writeLog(conveyor.LogLine{ExecutionID: r.ex.ID, Time: now, Attempt: r.ex.Attempt, Step: stepName, Stream: stream, Line: line})
			r.mu.Lock()
			r.lastReport = now
			stalled := r.stalled.Load()
			r.dirty = r.dirty || stalled
			r.mu.Unlock()
			if stalled {
				r.kickEmitter()
			}
		},
		DataFunc: func(patch json.RawMessage) error {
			r.mu.Lock()
			data, err := conveyor.MergeData(r.data, patch)
			if err == nil {
				r.data, r.dataDirty, r.lastReport = data, true, r.e.now()
			}
			r.mu.Unlock()
			r.kickEmitter()
			return err
		},
		ResultFunc: func(b json.RawMessage) {
			r.mu.Lock()
			r.result = b
			r.mu.Unlock()
		},
		CheckpointFunc: func(checkpoint json.RawMessage) error {
			return r.checkpoint(step, checkpoint)
		},
	}
}

// recordStep records durably, before declarative step n runs, that it
// began, so that a retry after a crash resumes there. If the store
// cannot keep it, the step runs all the same: a retry then resumes at an
// earlier step, which runs again.
func (r *run) recordStep(n int) {
	r.checkpointMu.Lock()
	defer r.checkpointMu.Unlock()
	if err := r.saveCheckpoint(conveyor.Checkpoint{Step: n}); err != nil {
		r.e.cfg.Logger.Error("record the step that began", "execution", r.ex.ID, "step", n, "err", err)
	}
}

// checkpoint is Exec.Checkpoint of declarative step n (0: the handler):
// it returns once the checkpoint is stored. A pipeline without Resume
// keeps none; a step that has ended may no longer record one.
func (r *run) checkpoint(n int, data json.RawMessage) error {
	if !r.p.Resume {
		return nil
	}
	r.checkpointMu.Lock()
	defer r.checkpointMu.Unlock()
	r.mu.Lock()
	current := r.state.step
	r.mu.Unlock()
	if n > 0 && n != current {
		return conveyor.Errorf(conveyor.ECONFLICT, "step %d has ended: its checkpoint is not stored", n)
	}
	return r.saveCheckpoint(conveyor.Checkpoint{Step: n, Data: data})
}

// saveCheckpoint stores c, a resume point of this attempt, and waits
// for the commit. The progress goes with it, not sampled away: a retry
// continues from at least where the resume point was. ECONFLICT when
// the attempt no longer runs here.
func (r *run) saveCheckpoint(c conveyor.Checkpoint) error {
	c.ExecutionID, c.Attempt = r.ex.ID, r.ex.Attempt
	r.emitMu.Lock()
	r.emitProgressLocked()
	r.storeUnstoredLocked() // queued ahead of c: committed when c is
	r.emitMu.Unlock()
	stored, err := r.e.writer.writeCheckpoint(c)
	if err != nil {
		return err
	}
	if stored.Dropped {
		return conveyor.Errorf(conveyor.ECONFLICT, "attempt %d of execution %s no longer runs here: the checkpoint is not stored", r.ex.Attempt, r.ex.ID)
	}
	r.recorded.Store(true)
	return nil
}

// report is Exec.Progress: update the state and wake the emitter. It
// never waits for the store or subscribers.
func (r *run) report(u conveyor.Update, step int) {
	r.mu.Lock()
	if step == 0 || step == r.state.step {
		r.state.apply(u, step == 0)
		r.dirty = true // the emitter times it (lastReport): no clock read here
	}
	r.mu.Unlock()
	r.kickEmitter()
}

// kickEmitter wakes the emitter without blocking.
func (r *run) kickEmitter() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *run) emitProgressLoop(done <-chan struct{}) {
	store := time.NewTimer(time.Hour)
	store.Stop()
	defer store.Stop()
	// The stall timer is armed for the time the step would stall if it
	// reported nothing more; when it fires, checkStall looks again, so a
	// report does not need to touch it.
	stall := time.NewTimer(time.Hour)
	stall.Stop()
	defer stall.Stop()
	var stallAt time.Time // when it is armed for; zero: not armed
	for {
		if at := r.stallDeadline(); !at.IsZero() && (stallAt.IsZero() || at.Before(stallAt)) {
			stall.Reset(at.Sub(r.e.now()))
			stallAt = at
		}
		select {
		case <-done:
			return
		case <-r.kick:
			if wait := r.flush(); wait > 0 {
				store.Reset(wait)
			}
		case <-store.C:
			r.emitMu.Lock()
			r.storeUnstoredLocked()
			r.emitMu.Unlock()
		case <-stall.C:
			stallAt = time.Time{}
			r.checkStall()
		}
	}
}

// flush emits the newest progress as one event if it changed, and the
// data if a report changed it. It returns how long until that progress
// event is due for the store, 0 if stored.
func (r *run) flush() time.Duration {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	wait := r.emitProgressLocked()
	r.emitDataLocked()
	return wait
}

func (r *run) emitProgressLocked() time.Duration {
	if r.ended || r.seq >= r.reserved {
		return 0 // once the next renewal reserves more seqs, reserve kicks the emitter
	}
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return 0
	}
	r.dirty = false
	now := r.e.now()
	r.lastReport = now
	r.state.observe(now)
	p := r.state.snapshot(now)
	r.mu.Unlock()
	// A report that ends a stall is published and stored even if it
	// changes nothing, so that watchers and the store learn it ended.
	unstall := r.stalled.Load()
	if !p.Changed(r.published) && !unstall {
		return 0
	}
	r.published = p
	r.stalled.Store(false)

	r.seq++
	ev := conveyor.Event{Type: conveyor.EventProgress, ExecutionID: r.ex.ID, Seq: r.seq, Time: now, Attempt: r.ex.Attempt, Progress: p}
	r.e.cfg.PublishFunc(ev)
	r.e.cfg.Metrics.ProgressPublished()
	if wait := r.storedAt.Add(r.e.cfg.ProgressStoreInterval).Sub(now); wait > 0 && !unstall {
		r.unstored = &ev
		return wait
	}
	r.e.writer.write(ev)
	r.storedAt, r.unstored = now, nil
	return 0
}

// emitDataLocked emits a data event with the whole data if a report
// changed it since the last one. Data is never sampled away: the event
// is stored before it is published, like a status event (progress
// published before it is stored with it, so the store's order holds).
func (r *run) emitDataLocked() {
	if r.ended {
		return
	}
	r.mu.Lock()
	if !r.dataDirty {
		r.mu.Unlock()
		return
	}
	r.dataDirty = false
	data := r.data
	r.mu.Unlock()

	r.storeUnstoredLocked()
	r.seq++
	r.stalled.Store(false)
	r.emitStored(conveyor.Event{Type: conveyor.EventData, ExecutionID: r.ex.ID, Seq: r.seq, Time: r.e.now(), Attempt: r.ex.Attempt, Data: data})
}

// emitStored stores ev, then publishes it, unless the store did not keep
// it (then its attempt no longer runs here, or the store is down: the
// run goes on either way, and its end settles the execution).
func (r *run) emitStored(ev conveyor.Event) {
	stored, err := r.e.writer.writeDurable(ev)
	if err != nil {
		r.e.cfg.Logger.Error("write event", "execution", r.ex.ID, "event", ev.Type, "err", err)
		return
	}
	if !stored.Dropped {
		r.e.cfg.PublishFunc(stored)
	}
}

// stallDeadline is when the running step stalls if it reports nothing
// more; zero when it cannot (no stall rule, or stalled already).
func (r *run) stallDeadline() time.Time {
	if r.stalled.Load() {
		return time.Time{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stall.After <= 0 {
		return time.Time{}
	}
	return r.lastReport.Add(r.stall.After)
}

// checkStall raises a stall if the running step has reported nothing for
// its stall_after: a stalled event, stored then published, once per stall;
// with on_stall: fail, the run then stops with ESTALLED as a cancel
// would stop it.
func (r *run) checkStall() {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.mu.Lock()
	// A report the emitter has not taken yet (dirty) is no stall.
	rule, since, step, pending := r.stall, r.lastReport, r.state.name, r.dirty
	r.mu.Unlock()
	now := r.e.now()
	if pending || r.ended || r.stalled.Load() || rule.After <= 0 || now.Sub(since) < rule.After {
		return
	}
	r.stalled.Store(true)
	since = since.Truncate(time.Microsecond) // as every store keeps stalled_since: the event says the same
	r.storeUnstoredLocked()
	r.seq++
	r.emitStored(conveyor.Event{Type: conveyor.EventStalled, ExecutionID: r.ex.ID, Seq: r.seq, Time: now, Attempt: r.ex.Attempt, Step: step, Since: &since})
	r.e.cfg.Logger.Warn("execution stalled", "execution", r.ex.ID, "step", step, "since", since, "action", rule.Action)
	if rule.Action == conveyor.StallFail {
		r.cancel(conveyor.Errorf(conveyor.ESTALLED, "step %q reported no progress, data or log line for %s", step, rule.After))
	}
}

// nextLease is the lease to renew: seqs reserved past the newest one.
func (r *run) nextLease() conveyor.Lease {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	return conveyor.Lease{ExecutionID: r.ex.ID, SeqReserved: r.seq + conveyor.SeqReservation}
}

// reserve raises the seqs progress may use to seq, once the store holds
// that reservation, and publishes progress that was waiting for it.
func (r *run) reserve(seq int64) {
	r.emitMu.Lock()
	r.reserved = max(r.reserved, seq)
	r.emitMu.Unlock()
	r.kickEmitter()
}

// storeUnstoredLocked queues the newest progress not yet stored.
func (r *run) storeUnstoredLocked() {
	if r.unstored != nil && !r.ended {
		r.e.writer.write(*r.unstored)
		r.storedAt, r.unstored = r.e.now(), nil
	}
}

// finish turns how the run ended into its final event: committed first,
// then published.
func (r *run) finish(err error) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.emitProgressLocked()
	r.emitDataLocked()
	// Progress not yet stored stays so: the final event carries the
	// latest progress, and one write fewer per execution is throughput.

	now := r.e.now()
	ev := conveyor.Event{ExecutionID: r.ex.ID, Time: now, Attempt: r.ex.Attempt}
	var durations []float64 // the steps' durations, for the ETAs of later runs
	r.mu.Lock()
	if err == nil {
		ev.Type, ev.Progress, ev.Result = conveyor.EventCompleted, r.state.completed(), r.result
		durations = r.state.timing.completed(now)
	} else {
		ev.Progress = r.state.snapshot(now)
		ev.Progress.ETASeconds = nil
	}
	r.mu.Unlock()

	if errors.Is(err, errLeaseLost) {
		r.ended = true
		return
	}
	if err != nil {
		var ce *conveyor.Error
		switch {
		case errors.Is(err, errCancelled):
			ev.Type = conveyor.EventCancelled
		case errors.Is(err, errShutdown):
			ev.Error = conveyor.Errorf(conveyor.EINTERRUPTED, "the node shut down before the execution finished")
		case errors.As(err, &ce):
			ev.Error = &conveyor.Error{Code: ce.Code, Message: conveyor.CleanText(ce.Message)}
		default:
			ev.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "%s", conveyor.CleanText(err.Error()))
		}
		if ev.Type == "" {
			r.failOrRetry(&ev)
		}
	}

	r.seq++
	ev.Seq, ev.Status = r.seq, conveyor.StatusOf(ev.Type)
	r.ended = true
	// A final status must not be lost to a short outage: keep trying
	// until it is stored or the node stops (then the store still says
	// running, and recovery or a lease rescue settles it).
	replaced := false
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		stored, werr := r.e.writer.writeDurable(ev)
		if werr == nil && stored.Dropped {
			// Fenced off: another node rescued the execution while this
			// one could not renew its lease, and the rescue's event (with
			// a higher seq) is the outcome subscribers get.
			r.e.cfg.Logger.Warn("lease lost: the execution's end was not stored", "execution", r.ex.ID, "event", ev.Type)
			return
		}
		if werr == nil {
			ev = stored // a completed event becomes cancelled if a cancel came first
			break
		}
		r.e.cfg.Logger.Error("write final event", "execution", r.ex.ID, "event", ev.Type, "err", werr)
		if conveyor.ErrorCode(werr) == conveyor.EINVALID && !replaced {
			// The store refuses what the event holds: end the execution
			// with one it can keep rather than leave it running forever.
			ev, replaced = unstorable(ev, werr), true
			continue
		}
		select {
		case <-r.e.runCtx.Done():
			return
		case <-time.After(backoff):
		}
	}
	if ev.Type == conveyor.EventCompleted {
		// Before it is published, so that whoever sees the completion
		// and submits again gets an ETA that knows this run.
		r.state.timing.history.record(durations)
	}
	// Counted before it is published: whoever sees the final message
	// and then scrapes finds it counted.
	r.e.cfg.Metrics.Finished(r.ex.Pipeline, conveyor.StatusOf(ev.Type), now.Sub(r.state.started))
	r.e.wakeAt(ev.RetryAt) // the claim loop, nudged as the run ends, claims the retry then
	r.e.cfg.PublishFunc(ev)
	attrs := []any{"execution", r.ex.ID, "pipeline", r.ex.Pipeline,
		"attempt", r.ex.Attempt, "duration", now.Sub(r.state.started).Round(time.Millisecond)}
	if ev.Error != nil { // error="" on every success would read as a blank error
		attrs = append(attrs, "error", ev.Error.Error())
	}
	r.e.cfg.Logger.Info("execution "+string(ev.Type), attrs...)
}

// failOrRetry makes ev, the end of an attempt that failed, a failed
// event or, with retries left, a retrying one, which keeps the progress
// only when the next attempt resumes from it (conveyor.Execution.Resumable).
func (r *run) failOrRetry(ev *conveyor.Event) {
	ev.Type = conveyor.EventFailed
	policy := r.e.retryPolicy(r.ex.Pipeline) // none for a pipeline this node lacks
	if !conveyor.Retryable(r.ex.Attempt, policy.Retries) {
		return
	}
	ev.Type = conveyor.EventRetrying
	if !r.recorded.Load() {
		ev.Progress = nil // the next attempt starts over
	}
	at := policy.RetryAt(ev.Time, r.ex.Attempt)
	ev.RetryAt = &at
}

// unstorable is the failed event that replaces a final event the store
// refused: no progress, no result, an error saying why.
func unstorable(ev conveyor.Event, err error) conveyor.Event {
	return conveyor.Event{
		Type: conveyor.EventFailed, Status: conveyor.StatusFailed,
		ExecutionID: ev.ExecutionID, Seq: ev.Seq, Time: ev.Time, Attempt: ev.Attempt,
		Error: conveyor.Errorf(conveyor.ESTEPFAILED, "the %s event could not be stored: %s", ev.Type, conveyor.CleanText(conveyor.ErrorMessage(err))),
	}
}
