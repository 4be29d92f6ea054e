package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/hub"
)

// relay brings events that other nodes wrote to this node's subscribers.
// A notice says an execution has new events; the relay reads them from the
// store, after the newest seq its subscribers have, and publishes them. It
// also polls watched executions once a PollInterval in case a notice was
// lost.
type relay struct {
	store        conveyor.Store
	hub          *hub.Hub
	logger       *slog.Logger
	pollInterval time.Duration
	notices      chan conveyor.Notice
}

func newRelay(store conveyor.Store, h *hub.Hub, logger *slog.Logger) *relay {
	return &relay{store: store, hub: h, logger: logger, pollInterval: time.Second, notices: make(chan conveyor.Notice, 4096)}
}

// notify queues a notice without blocking the listener; when the queue is
// full the poll catches up.
func (r *relay) notify(n conveyor.Notice) {
	if n.Kind != conveyor.NoticeEvents && n.Kind != conveyor.NoticeResync {
		return
	}
	select {
	case r.notices <- n:
	default:
	}
}

func (r *relay) run(ctx context.Context) {
	tick := time.NewTicker(r.pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-r.notices:
			if n.Kind == conveyor.NoticeResync {
				r.catchUpAll(ctx)
				continue
			}
			if seq, ok := r.hub.Watched(n.ExecutionID); ok && seq < n.Seq {
				r.catchUp(ctx, n.ExecutionID, seq)
			}
		case <-tick.C:
			r.catchUpAll(ctx)
		}
	}
}

func (r *relay) catchUpAll(ctx context.Context) {
	for _, id := range r.hub.WatchedIDs() {
		if seq, ok := r.hub.Watched(id); ok {
			r.catchUp(ctx, id, seq)
		}
	}
}

// catchUp publishes the stored events of id after seq.
func (r *relay) catchUp(ctx context.Context, id string, seq int64) {
	for {
		evs, err := r.store.Events(ctx, id, seq, 500)
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("relay events", "execution", id, "err", err)
			}
			return
		}
		for _, ev := range evs {
			r.hub.Publish(ev)
			seq = ev.Seq
		}
		if len(evs) < 500 {
			return
		}
	}
}
