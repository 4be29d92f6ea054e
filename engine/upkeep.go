package engine

import (
	"context"
	"time"

	"github.com/conveyor-run/conveyor"
)

// DefaultUpkeepInterval is how often a node deletes expired idempotency
// keys when nothing else is configured.
const DefaultUpkeepInterval = 10 * time.Minute

// expireKeysBatch bounds one delete of expired keys: a short transaction
// that never holds up submissions for long.
const expireKeysBatch = 1000

// upkeepLoop deletes expired idempotency keys at start and then every
// UpkeepInterval. On a shared store every node does it; deleting a key
// twice is harmless, and each delete is small.
func (e *Engine) upkeepLoop(ctx context.Context) {
	defer close(e.upkeepDone)
	tick := time.NewTicker(e.cfg.UpkeepInterval)
	defer tick.Stop()
	for {
		e.expireKeys(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// expireKeys deletes every idempotency key first used more than
// conveyor.IdempotencyTTL ago, a batch at a time.
func (e *Engine) expireKeys(ctx context.Context) {
	before := e.now().Add(-conveyor.IdempotencyTTL)
	for ctx.Err() == nil {
		n, err := e.cfg.Store.DeleteExpiredKeys(ctx, before, expireKeysBatch)
		if err != nil {
			if ctx.Err() == nil {
				e.cfg.Logger.Error("delete expired idempotency keys", "err", err)
			}
			return
		}
		if n < expireKeysBatch {
			return
		}
	}
}
