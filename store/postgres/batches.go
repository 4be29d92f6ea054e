package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// batchColumns are what scanBatch reads, in its order: the row and the
// sum of its running members' percentages (the partial index
// executions_batch_running finds them).
const batchColumns = `b.num, b.id, b.tags, b.total, b.pending, b.running, b.completed, b.failed, b.cancelled,
	b.created_at, b.finished_at,
	(SELECT coalesce(sum((e.progress->>'percentage')::float8), 0) FROM executions e
	 WHERE e.batch_id = b.id AND e.status = 'running')`

const (
	// sqlInsertBatch inserts a batch and its tags ($5, $6: keys, values)
	// and returns its num; no row when the id exists.
	sqlInsertBatch = `WITH batch AS (
			INSERT INTO batches (id, tags, total, pending, created_at) VALUES ($1, $2::jsonb, $3, $3, $4)
			ON CONFLICT (id) DO NOTHING
			RETURNING num
		), tags AS (
			INSERT INTO batch_tags (key, value, num)
			SELECT t.key, t.value, batch.num FROM unnest($5::text[], $6::text[]) AS t(key, value), batch
		)
		SELECT num FROM batch`
	sqlGetBatch = `SELECT ` + batchColumns + ` FROM batches b WHERE b.id = $1`
	// Members are locked in id order, as every statement that locks
	// several executions does; the trigger locks the batch after them.
	sqlUnfinished = `SELECT ` + executionColumns + ` FROM executions
		WHERE batch_id = $1 AND status IN ('pending', 'running') ORDER BY id FOR NO KEY UPDATE`
)

// CreateBatch implements conveyor.Store: the batch, then its members in
// one statement as CreateExecutions inserts them, in one transaction.
func (db *DB) CreateBatch(ctx context.Context, b *conveyor.Batch, es []*conveyor.Execution) error {
	if err := b.ValidateNew(es); err != nil {
		return err
	}
	tags, err := tagsColumn(b.Tags)
	if err != nil {
		return err
	}
	var keys, values []string
	for k, v := range b.Tags {
		keys, values = append(keys, k), append(values, v)
	}
	args, err := insertArgs(es)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var num int64
		err := tx.QueryRow(ctx, sqlInsertBatch, b.ID, tags, len(es), b.CreatedAt, keys, values).Scan(&num)
		if errors.Is(err, pgx.ErrNoRows) {
			return conveyor.Errorf(conveyor.ECONFLICT, "batch %q already exists", b.ID)
		}
		if err != nil {
			return storeError("create batch", err)
		}
		keys := executionKeys(es)
		if b.Idempotency != nil {
			keys.add(b.Idempotency, nil, &b.ID, b.CreatedAt)
		}
		if len(keys.keys) > 0 {
			if err := keys.take(ctx, tx); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, sqlInsertExecutions, args...)
		return err
	})
	if err := db.createError(ctx, "create batch", es, err); err != nil {
		return err
	}
	return nil
}

// GetBatch implements conveyor.Store.
func (db *DB) GetBatch(ctx context.Context, id string) (*conveyor.Batch, error) {
	if !conveyor.StorableText(id) {
		return nil, conveyor.BatchNotFound(id)
	}
	b, _, err := scanBatch(db.pool.QueryRow(ctx, sqlGetBatch, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, conveyor.BatchNotFound(id)
	}
	if err != nil {
		return nil, storeError("get batch", err)
	}
	return b, nil
}

// ListBatches implements conveyor.Store.
func (db *DB) ListBatches(ctx context.Context, f conveyor.BatchFilter) (*conveyor.BatchPage, error) {
	var args []any
	query, limit, err := store.BatchQuery(batchColumns, f, placeholder(&args))
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, storeError("list batches", err)
	}
	defer rows.Close()
	items, next, err := store.CollectPage(rows, limit, func(r store.Rows) (*conveyor.Batch, int64, error) { return scanBatch(r) })
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return &conveyor.BatchPage{Batches: items, NextCursor: next}, nil
}

// CancelBatch implements conveyor.Store. After the commit it notifies
// conveyor_cancel of the running members and conveyor_events of the
// cancelled ones, as Cancel does.
func (db *DB) CancelBatch(ctx context.Context, id string, now time.Time) (*conveyor.BatchCancel, error) {
	if !conveyor.StorableText(id) {
		return nil, conveyor.BatchNotFound(id)
	}
	now = storedTime(now)
	var done *conveyor.BatchCancel
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		done = &conveyor.BatchCancel{}
		b, _, err := scanBatch(tx.QueryRow(ctx, sqlGetBatch, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return conveyor.BatchNotFound(id)
		}
		if err != nil {
			return err
		}
		if b.Status.Final() {
			return conveyor.Errorf(conveyor.ECONFLICT, "batch %q is already %s", id, b.Status)
		}
		rows, err := tx.Query(ctx, sqlUnfinished, id)
		if err != nil {
			return err
		}
		members, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*conveyor.Execution, error) {
			ex, _, err := scanExecution(row)
			return ex, err
		})
		if err != nil {
			return err
		}
		for _, ex := range members {
			ev, err := ex.Cancel(now)
			if err != nil {
				return err
			}
			if ev != nil {
				err = finish(ctx, tx, ev)
				done.Cancelled = append(done.Cancelled, *ev)
			} else {
				_, err = tx.Exec(ctx, sqlRequestCancel, ex.ID)
				done.Requested = append(done.Requested, ex.ID)
			}
			if err != nil {
				return fmt.Errorf("execution %s: %w", ex.ID, err)
			}
		}
		done.Batch, _, err = scanBatch(tx.QueryRow(ctx, sqlGetBatch, id))
		return err
	})
	if err != nil {
		return nil, errorf("cancel batch", err)
	}
	marks := make([]eventMark, len(done.Cancelled))
	for i, ev := range done.Cancelled {
		marks[i] = eventMark{ev.ExecutionID, ev.Seq}
	}
	db.notifyEvents(ctx, marks)
	db.notify(ctx, channelCancel, done.Requested)
	return done, nil
}

// scanBatch reads batchColumns.
func scanBatch(sc scanner) (*conveyor.Batch, int64, error) {
	var (
		b       conveyor.Batch
		num     int64
		tags    []byte
		running float64
	)
	err := sc.Scan(&num, &b.ID, &tags, &b.Total, &b.Counts.Pending, &b.Counts.Running, &b.Counts.Completed,
		&b.Counts.Failed, &b.Counts.Cancelled, &b.CreatedAt, &b.FinishedAt, &running)
	if err != nil {
		return nil, 0, err
	}
	if tags != nil {
		if err := json.Unmarshal(tags, &b.Tags); err != nil {
			return nil, 0, fmt.Errorf("batch %s: decode tags: %w", b.ID, err)
		}
	}
	b.CreatedAt = b.CreatedAt.UTC()
	if b.FinishedAt != nil {
		t := b.FinishedAt.UTC()
		b.FinishedAt = &t
	}
	b.Settle(running)
	return &b, num, nil
}
