package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// batchColumns are what scanBatch reads, in its order: the row and the
// sum of its running members' percentages (the partial index
// executions_batch_running finds them).
const batchColumns = `b.num, b.id, b.tags, b.total, b.pending, b.running, b.completed, b.failed, b.cancelled,
	b.created_at, b.finished_at,
	(SELECT coalesce(sum(json_extract(e.progress, '$.percentage')), 0) FROM executions e
	 WHERE e.batch_id = b.id AND e.status = 'running')`

const (
	sqlInsertBatch = `INSERT INTO batches (id, tags, total, pending, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	sqlInsertBatchTag = `INSERT INTO batch_tags (key, value, num) VALUES (?, ?, ?)`
	sqlGetBatch       = `SELECT ` + batchColumns + ` FROM batches b WHERE b.id = ?`
	sqlUnfinished     = `SELECT ` + executionColumns + ` FROM executions
		WHERE batch_id = ? AND status IN ('pending', 'running') ORDER BY num`
)

// CreateBatch implements conveyor.Store: the batch, then its members as
// CreateExecutions inserts them, in one transaction.
func (db *DB) CreateBatch(ctx context.Context, b *conveyor.Batch, es []*conveyor.Execution) error {
	if err := b.ValidateNew(es); err != nil {
		return err
	}
	tags, err := tagsColumn(b.Tags)
	if err != nil {
		return err
	}
	return db.create(ctx, "create batch", es, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlInsertBatch, b.ID, tags, len(es), len(es), b.CreatedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("create batch: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("create batch: %w", err)
		} else if n == 0 {
			return conveyor.Errorf(conveyor.ECONFLICT, "batch %q already exists", b.ID)
		}
		num, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("create batch: %w", err)
		}
		insert, err := tx.PrepareContext(ctx, sqlInsertBatchTag)
		if err != nil {
			return fmt.Errorf("create batch: %w", err)
		}
		defer insert.Close()
		if err := insertTags(ctx, insert, b.Tags, num); err != nil {
			return err
		}
		if b.Idempotency != nil {
			return takeKey(ctx, tx, b.Idempotency, nil, &b.ID, b.CreatedAt)
		}
		return nil
	})
}

// GetBatch implements conveyor.Store.
func (db *DB) GetBatch(ctx context.Context, id string) (*conveyor.Batch, error) {
	if !conveyor.StorableText(id) {
		return nil, conveyor.BatchNotFound(id)
	}
	b, _, err := scanBatch(db.r.QueryRowContext(ctx, sqlGetBatch, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, conveyor.BatchNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get batch: %w", err)
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
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	defer rows.Close()
	items, next, err := store.CollectPage(rows, limit, func(r store.Rows) (*conveyor.Batch, int64, error) { return scanBatch(r) })
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return &conveyor.BatchPage{Batches: items, NextCursor: next}, nil
}

// CancelBatch implements conveyor.Store.
func (db *DB) CancelBatch(ctx context.Context, id string, now time.Time) (*conveyor.BatchCancel, error) {
	if !conveyor.StorableText(id) {
		return nil, conveyor.BatchNotFound(id)
	}
	now = now.UTC()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cancel batch: %w", err)
	}
	defer tx.Rollback()
	b, _, err := scanBatch(tx.QueryRowContext(ctx, sqlGetBatch, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, conveyor.BatchNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("cancel batch: %w", err)
	}
	if b.Status.Final() {
		return nil, conveyor.Errorf(conveyor.ECONFLICT, "batch %q is already %s", id, b.Status)
	}
	rows, err := tx.QueryContext(ctx, sqlUnfinished, id)
	if err != nil {
		return nil, fmt.Errorf("cancel batch: %w", err)
	}
	var members []*conveyor.Execution
	for rows.Next() {
		ex, _, err := scanExecution(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("cancel batch: %w", err)
		}
		members = append(members, ex)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cancel batch: %w", err)
	}
	done := &conveyor.BatchCancel{}
	for _, ex := range members {
		ev, err := ex.Cancel(now)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			err = finish(ctx, tx, db.st.insertEvent, ev)
			done.Cancelled = append(done.Cancelled, *ev)
		} else {
			_, err = tx.ExecContext(ctx, sqlRequestCancel, ex.ID)
			done.Requested = append(done.Requested, ex.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("cancel batch: execution %s: %w", ex.ID, err)
		}
	}
	if done.Batch, _, err = scanBatch(tx.QueryRowContext(ctx, sqlGetBatch, id)); err != nil {
		return nil, fmt.Errorf("cancel batch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("cancel batch: %w", err)
	}
	return done, nil
}

// scanBatch reads batchColumns.
func scanBatch(sc scanner) (*conveyor.Batch, int64, error) {
	var (
		b        conveyor.Batch
		num      int64
		created  int64
		finished sql.NullInt64
		tags     []byte
		running  float64
	)
	err := sc.Scan(&num, &b.ID, &tags, &b.Total, &b.Counts.Pending, &b.Counts.Running, &b.Counts.Completed,
		&b.Counts.Failed, &b.Counts.Cancelled, &created, &finished, &running)
	if err != nil {
		return nil, 0, err
	}
	if tags != nil {
		if err := json.Unmarshal(tags, &b.Tags); err != nil {
			return nil, 0, fmt.Errorf("batch %s: decode tags: %w", b.ID, err)
		}
	}
	b.CreatedAt = fromUnixNano(created)
	if finished.Valid {
		t := fromUnixNano(finished.Int64)
		b.FinishedAt = &t
	}
	b.Settle(running)
	return &b, num, nil
}
