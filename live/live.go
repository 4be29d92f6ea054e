// Package live is the read model of executions as clients see them now:
// the stored execution with newer progress published on this node merged
// in. The engine publishes every progress update at once but stores it at
// most every ProgressStoreInterval (and on a shared store another node's
// progress arrives through the relay), so the store alone can be behind
// what a stream has already shown. REST reads and streams both read
// through a View, so they agree.
package live

import (
	"context"

	"github.com/conveyor-run/conveyor"
)

// Hub is the live feed a View reads: package hub. S is its subscription
// to one execution, F to every execution.
type Hub[S, F conveyor.Subscription] interface {
	Subscribe(id string) (S, conveyor.Event)
	SubscribeAll() F
	Last(id string) (conveyor.Event, bool)
}

// View reads executions from a store and merges newer live progress.
type View[S, F conveyor.Subscription] struct {
	store conveyor.Store
	hub   Hub[S, F]
}

// New returns a view over store and hub.
func New[S, F conveyor.Subscription](store conveyor.Store, hub Hub[S, F]) *View[S, F] {
	return &View[S, F]{store: store, hub: hub}
}

// WatchAll subscribes to the live events of every execution, for streams
// of many executions. The caller closes the subscription.
func (v *View[S, F]) WatchAll() conveyor.Subscription {
	return v.hub.SubscribeAll()
}

// Merge gives ex, as read from the store, the newer progress published
// on this node: what Execution does after its read, for executions read
// another way (a page of a list).
func (v *View[S, F]) Merge(ex *conveyor.Execution) {
	last, _ := v.hub.Last(ex.ID)
	merge(ex, last)
}

// Execution returns execution id as clients see it now.
func (v *View[S, F]) Execution(ctx context.Context, id string) (*conveyor.Execution, error) {
	ex, err := v.store.GetExecution(ctx, id)
	if err != nil {
		return nil, err
	}
	last, _ := v.hub.Last(id)
	merge(ex, last)
	return ex, nil
}

// Watch subscribes to execution id's live events, then reads the
// execution: in that order, so no event falls between the two. The
// caller closes the subscription.
func (v *View[S, F]) Watch(ctx context.Context, id string) (*conveyor.Watch, error) {
	sub, last := v.hub.Subscribe(id)
	ex, err := v.store.GetExecution(ctx, id)
	if err != nil {
		sub.Close()
		return nil, err
	}
	w := &conveyor.Watch{Subscription: sub, Execution: ex}
	if merge(ex, last) {
		w.Newer = &last
	}
	return w, nil
}

// merge gives a running ex the progress of last when last is a progress
// event newer than the store's, and reports whether it did.
func merge(ex *conveyor.Execution, last conveyor.Event) bool {
	if ex.Status != conveyor.StatusRunning || last.Type != conveyor.EventProgress || last.Seq <= ex.LastSeq {
		return false
	}
	ex.Progress, ex.LastSeq = last.Progress, last.Seq
	return true
}
