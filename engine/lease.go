package engine

import (
	"context"
	"errors"
	"time"

	"github.com/conveyor-run/conveyor"
)

// errLeaseLost ends a run whose execution another node rescued; its final
// write would be fenced off, so none is made.
var errLeaseLost = errors.New("lease lost to another node")

// leaseLoop renews the leases of this node's runs and rescues executions
// whose node stopped renewing, on a store shared by several nodes.
func (e *Engine) leaseLoop(ctx context.Context, shared conveyor.SharedStore) {
	defer close(e.leaseDone)
	renew := time.NewTicker(e.cfg.Lease / 3)
	defer renew.Stop()
	rescue := time.NewTicker(e.cfg.RescueInterval)
	defer rescue.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			e.renewLeases(ctx, shared)
		case <-rescue.C:
			e.rescueExpired(ctx, shared)
		}
	}
}

func (e *Engine) renewLeases(ctx context.Context, shared conveyor.SharedStore) {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	if len(runs) == 0 {
		return
	}
	leases := make([]conveyor.Lease, len(runs))
	for i, r := range runs {
		leases[i] = r.nextLease()
	}
	r, err := shared.RenewLeases(ctx, leases, e.now())
	if err != nil {
		if ctx.Err() == nil {
			e.cfg.Logger.Error("renew leases", "executions", len(leases), "err", err)
		}
		return
	}
	lost := make(map[string]bool, len(r.Lost))
	for _, id := range r.Lost {
		lost[id] = true
		e.cfg.Logger.Warn("lease lost: stopping the run", "execution", id)
		e.cancelRun(id, errLeaseLost)
	}
	for i, run := range runs {
		if !lost[run.ex.ID] {
			run.reserve(leases[i].SeqReserved)
		}
	}
	for _, id := range r.CancelRequested {
		e.cancelRun(id, errCancelled)
	}
}

func (e *Engine) rescueExpired(ctx context.Context, shared conveyor.SharedStore) {
	evs, err := shared.RescueExpired(ctx, e.now(), e.retryPolicy)
	if err != nil {
		if ctx.Err() == nil {
			e.cfg.Logger.Error("rescue expired executions", "err", err)
		}
		return
	}
	for _, ev := range evs {
		e.cfg.Logger.Warn("rescued execution whose node stopped renewing its lease", "execution", ev.ExecutionID, "event", ev.Type, "attempt", ev.Attempt)
		e.cfg.PublishFunc(ev)
		e.wakeAt(ev.RetryAt)
	}
	if len(evs) > 0 {
		e.nudge()
	}
}

// HandleNotice acts on what another node did: new work, or a cancel for
// an execution running here. Other notices are for the relay (package relay).
func (e *Engine) HandleNotice(n conveyor.Notice) {
	switch n.Kind {
	case conveyor.NoticeSubmitted, conveyor.NoticeResync:
		e.nudge()
	case conveyor.NoticeCancel:
		e.cancelRun(n.ExecutionID, errCancelled)
	}
}

// cancelRun cancels the run of execution id on this node, if there is one.
func (e *Engine) cancelRun(id string, cause error) {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r != nil {
		r.cancel(cause)
	}
}
