// Package retention deletes, in the background, what a node keeps no
// longer: final executions older than the node's retention, and whatever
// else expires (each a Task). It deletes in small batches, each its own
// short transaction, and pauses between them, so that the writes of
// running executions never wait long behind it: on SQLite every write
// shares one connection with it.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Config.
const (
	DefaultInterval  = time.Minute
	DefaultBatchTime = 20 * time.Millisecond
)

// Batch sizes: a task's batches start at firstBatch records and adapt to
// Config.BatchTime between minBatch and maxBatch.
const (
	minBatch   = 10
	firstBatch = 100
	maxBatch   = 1000
)

// Task is one kind of record that expires.
type Task struct {
	// Name names the task in logs and metrics: a fixed word, such as
	// "executions".
	Name string
	// PruneFunc deletes up to limit of the records that expired by now,
	// in one transaction, and returns how many it deleted: fewer than
	// limit when no more have expired, or when another node prunes them.
	PruneFunc func(ctx context.Context, now time.Time, limit int) (int, error)
}

// Config configures a Pruner.
type Config struct {
	Tasks []Task
	// Interval is how often a round of pruning starts; default
	// DefaultInterval. A round deletes batch after batch while they come
	// back full, so a backlog goes in one round.
	Interval time.Duration
	// BatchTime is about how long each batch should take: a task's batch
	// size halves after a slower batch and doubles after one under half
	// of it. Default DefaultBatchTime.
	BatchTime time.Duration
	// DeletedFunc, if set, is told how many records each batch of a task
	// deleted.
	DeletedFunc func(task string, n int)
	Logger      *slog.Logger
	NowFunc     func() time.Time
}

func (c *Config) validate() error {
	for _, t := range c.Tasks {
		if t.Name == "" || t.PruneFunc == nil {
			return errors.New("retention: every task needs a name and a PruneFunc")
		}
	}
	if c.Interval < 0 || c.BatchTime < 0 {
		return fmt.Errorf("retention: negative interval %s or batch time %s", c.Interval, c.BatchTime)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.BatchTime == 0 {
		c.BatchTime = DefaultBatchTime
	}
	if c.DeletedFunc == nil {
		c.DeletedFunc = func(string, int) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	return nil
}

// Pruner runs its tasks' rounds every Config.Interval.
type Pruner struct {
	cfg   Config
	sizes []int // the next batch size of each task

	stop func()
	done chan struct{}
}

// New returns a pruner; Start runs it.
func New(cfg Config) (*Pruner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Pruner{cfg: cfg, sizes: make([]int, len(cfg.Tasks))}
	for i := range p.sizes {
		p.sizes[i] = firstBatch
	}
	return p, nil
}

// Start runs a round now and then one every Interval, until Stop.
func (p *Pruner) Start(ctx context.Context) {
	ctx, p.stop = context.WithCancel(context.WithoutCancel(ctx))
	p.done = make(chan struct{})
	go p.loop(ctx)
}

// Stop ends the round under way, cancelling the batch in flight (its
// transaction rolls back: it goes again at the next start), and waits.
func (p *Pruner) Stop() {
	if p.stop == nil {
		return
	}
	p.stop()
	<-p.done
}

func (p *Pruner) loop(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for {
		if err := p.Round(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Logger.Error("prune expired records; retrying at the next round", "err", err, "next", p.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Round prunes every task until a batch comes back short: everything
// that expired by the start of the round goes. After each batch it
// pauses as long as the batch took, so the store's other writers get
// at least half of its time.
func (p *Pruner) Round(ctx context.Context) error {
	now := p.cfg.NowFunc()
	var errs []error
	for i, task := range p.cfg.Tasks {
		start, total := time.Now(), 0
		for {
			limit := p.sizes[i]
			began := time.Now()
			n, err := task.PruneFunc(ctx, now, limit)
			took := time.Since(began)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", task.Name, err))
				break
			}
			if n > 0 {
				total += n
				p.cfg.DeletedFunc(task.Name, n)
			}
			p.sizes[i] = nextSize(limit, n == limit, took, p.cfg.BatchTime)
			if n < limit {
				break
			}
			select {
			case <-ctx.Done():
				return errors.Join(append(errs, ctx.Err())...)
			case <-time.After(took):
			}
		}
		if total > 0 {
			p.cfg.Logger.Info("pruned expired "+task.Name, "deleted", total, "took", time.Since(start).Round(time.Millisecond))
		}
	}
	return errors.Join(errs...)
}

// nextSize is the batch size after a batch of size that took took, for
// batches of about target. Only a full batch tells how long one of size
// takes.
func nextSize(size int, full bool, took, target time.Duration) int {
	switch {
	case took > target:
		return max(size/2, minBatch)
	case full && took < target/2:
		return min(size*2, maxBatch)
	}
	return size
}
