package server

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/hub"
)

// relayShards is how many executions the relay catches up at once. Each
// shard owns the executions whose id hashes to it, so one execution's
// events are still published in order.
const relayShards = 8

// relay brings events that other nodes wrote to this node's subscribers.
// A notice says an execution has new events; the relay reads them from the
// store, after the newest seq its subscribers have, and publishes them. It
// also polls watched executions once a pollInterval in case a notice was
// lost.
type relay struct {
	store        conveyor.Store
	hub          *hub.Hub
	logger       *slog.Logger
	pollInterval time.Duration
	// local reports whether an execution runs on this node, whose
	// subscribers get its events straight from the engine.
	local  func(id string) bool
	seed   maphash.Seed
	shards [relayShards]chan conveyor.Notice
}

func newRelay(store conveyor.Store, h *hub.Hub, local func(string) bool, logger *slog.Logger) *relay {
	r := &relay{store: store, hub: h, local: local, logger: logger, pollInterval: time.Second, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i] = make(chan conveyor.Notice, 1024)
	}
	return r
}

func (r *relay) shard(id string) int {
	return int(maphash.String(r.seed, id) % relayShards)
}

// notify queues a notice without blocking the listener; when a queue is
// full the poll catches up.
func (r *relay) notify(n conveyor.Notice) {
	switch n.Kind {
	case conveyor.NoticeEvents:
		select {
		case r.shards[r.shard(n.ExecutionID)] <- n:
		default:
		}
	case conveyor.NoticeResync:
		for _, c := range r.shards {
			select {
			case c <- n:
			default:
			}
		}
	}
}

// run serves every shard until ctx ends.
func (r *relay) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range r.shards {
		wg.Go(func() { r.runShard(ctx, i) })
	}
	wg.Wait()
}

func (r *relay) runShard(ctx context.Context, shard int) {
	tick := time.NewTicker(r.pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-r.shards[shard]:
			if n.Kind == conveyor.NoticeResync {
				r.catchUpAll(ctx, shard)
				continue
			}
			if seq, ok := r.hub.Watched(n.ExecutionID); ok && seq < n.Seq {
				r.catchUp(ctx, n.ExecutionID, seq)
			}
		case <-tick.C:
			r.catchUpAll(ctx, shard)
		}
	}
}

// catchUpAll catches up every watched execution of the shard.
func (r *relay) catchUpAll(ctx context.Context, shard int) {
	for _, id := range r.hub.WatchedIDs() {
		if r.shard(id) != shard || r.local(id) {
			continue
		}
		if seq, ok := r.hub.Watched(id); ok {
			r.catchUp(ctx, id, seq)
		}
	}
}

// catchUp publishes the stored events of id after seq.
func (r *relay) catchUp(ctx context.Context, id string, seq int64) {
	const page = 500
	for {
		evs, err := r.store.Events(ctx, id, seq, page)
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
		if len(evs) < page {
			return
		}
	}
}
