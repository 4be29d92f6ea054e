package engine

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// creator commits concurrent submissions together (group commit) without
// a goroutine of its own: the first submitter to find no commit running
// leads, committing what is queued, oldest first, until its own
// submission is stored, while the others wait for their result. Then it
// hands the lead to the oldest submission still queued, so that under
// sustained load no request keeps committing others' batches while its
// own answer waits.
type creator struct {
	store   conveyor.Store
	metrics Metrics     // nil: none
	stored  func(n int) // nil: none; told of every commit of n executions

	mu      sync.Mutex
	queue   []*createReq
	leading bool
}

type createReq struct {
	ex   *conveyor.Execution
	done chan error
	lead chan struct{} // its turn to lead, while it is still queued
}

// createTimeout bounds one batch commit; the leader's own request context
// must not cut short the others' submissions.
const createTimeout = 30 * time.Second

// maxCreateBatch bounds how many executions go into one transaction.
const maxCreateBatch = 500

// create durably stores ex, sharing a transaction with concurrent calls.
func (c *creator) create(ex *conveyor.Execution) error {
	// Checked before it joins a batch: one bad execution must not fail a
	// transaction others share.
	if err := ex.ValidateNew(); err != nil {
		return err
	}
	req := &createReq{ex: ex, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if c.leading {
		c.mu.Unlock()
		select {
		case err := <-req.done:
			return err
		case <-req.lead:
		}
		c.mu.Lock()
	}
	c.leading = true
	for stored := false; !stored; {
		n := min(len(c.queue), maxCreateBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		stored = slices.Contains(batch, req)
		c.mu.Unlock()
		c.commit(batch)
		c.mu.Lock()
	}
	if len(c.queue) > 0 {
		c.queue[0].lead <- struct{}{} // still leading: handed on
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	return <-req.done
}

func (c *creator) commit(batch []*createReq) {
	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	exs := make([]*conveyor.Execution, len(batch))
	for i, r := range batch {
		exs[i] = r.ex
	}
	began := time.Now()
	err := c.store.CreateExecutions(ctx, exs)
	if c.metrics != nil {
		c.metrics.StoreCommitted(commitSubmit, time.Since(began))
	}
	if err != nil && len(batch) > 1 && conveyor.ErrorCode(err) != conveyor.EINTERNAL {
		// One bad execution must not fail the others: find it.
		for _, r := range batch {
			err := c.store.CreateExecutions(ctx, []*conveyor.Execution{r.ex})
			if err == nil && c.stored != nil {
				c.stored(1)
			}
			r.done <- err
		}
		return
	}
	if err == nil && c.stored != nil {
		c.stored(len(batch))
	}
	for _, r := range batch {
		r.done <- err
	}
}
