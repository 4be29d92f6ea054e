package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
)

// Deleting an execution deletes its log lines and webhook deliveries by
// their foreign keys (ON DELETE CASCADE), each indexed by the execution;
// its tags and events, which have no foreign key (migrations
// 0014_tags_no_fk and 0015_lighter_writes), deleteExecutions deletes
// first.

// pruneLockKey is the pg_try_advisory_xact_lock key that each pruning
// transaction takes, so that one node prunes at a time: the others find
// it taken and leave the work to that node (PruneExecutions returns 0).
// A transaction-level lock goes with its transaction, so a node that dies
// holds it no longer than its connection.
const pruneLockKey int64 = 0x636f6e7670727565 // "convprue"

const (
	sqlTryPruneLock = `SELECT pg_try_advisory_xact_lock($1)`

	// The executions that finished before $1, oldest first, from the
	// index executions_finished, skipping any another transaction holds
	// (a DELETE of one); conveyor.Execution.Expired decides.
	sqlPrunable = `SELECT num, id, status, finished_at, batch_id FROM executions
		WHERE finished_at < $1 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED`

	// Locks an execution to delete it.
	sqlLockToDelete = `SELECT ` + executionColumns + ` FROM executions WHERE id = $1 FOR UPDATE`

	// Locks the batches of the executions to delete, in id order, before
	// their members go: two transactions that delete the last members of
	// one batch then take turns, and the second sees the batch empty.
	sqlLockBatches = `SELECT 1 FROM batches WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`

	sqlDeleteTags       = `DELETE FROM execution_tags WHERE num = ANY($1::bigint[])`
	sqlDeleteEvents     = `DELETE FROM events WHERE execution_id = ANY($1::text[])`
	sqlDeleteExecutions = `DELETE FROM executions WHERE num = ANY($1::bigint[])`

	// The batches of $1 that have no member left, found by the index
	// executions_batch_num.
	sqlDeleteEmptyBatches = `DELETE FROM batches b WHERE b.id = ANY($1::text[])
		AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.batch_id = b.id)`
)

// DeleteExecution implements conveyor.Store.
func (db *DB) DeleteExecution(ctx context.Context, id string) error {
	if err := conveyor.Lookup(id); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		ex, num, err := scanExecution(tx.QueryRow(ctx, sqlLockToDelete, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return conveyor.ExecutionNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := ex.CheckDelete(); err != nil {
			return err
		}
		return deleteExecutions(ctx, tx, []*conveyor.Execution{ex}, []int64{num})
	})
	if err != nil {
		return errorf("delete execution", err)
	}
	return nil
}

// PruneExecutions implements conveyor.Store. It prunes only while it
// holds the prune lock (pruneLockKey); without it, it returns 0.
func (db *DB) PruneExecutions(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var deleted int
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, sqlTryPruneLock, pruneLockKey).Scan(&locked); err != nil || !locked {
			return err
		}
		rows, err := tx.Query(ctx, sqlPrunable, storedTime(cutoff), limit)
		if err != nil {
			return err
		}
		var (
			exs  []*conveyor.Execution
			nums []int64
		)
		for rows.Next() {
			var (
				ex       conveyor.Execution
				num      int64
				finished time.Time
				status   string
			)
			if err := rows.Scan(&num, &ex.ID, &status, &finished, &ex.BatchID); err != nil {
				rows.Close()
				return err
			}
			ex.Status, ex.FinishedAt = conveyor.Status(status), &finished
			if ex.Expired(cutoff) {
				exs, nums = append(exs, &ex), append(nums, num)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(exs) == 0 {
			return nil
		}
		deleted = len(exs)
		return deleteExecutions(ctx, tx, exs, nums)
	})
	if err != nil {
		return 0, errorf("prune executions", err)
	}
	return deleted, nil
}

// deleteExecutions deletes exs, numbered nums and locked by tx, and the
// batches they leave empty.
func deleteExecutions(ctx context.Context, tx pgx.Tx, exs []*conveyor.Execution, nums []int64) error {
	var batches []string
	ids := make([]string, len(exs))
	for i, ex := range exs {
		ids[i] = ex.ID
		if ex.BatchID != nil {
			batches = append(batches, *ex.BatchID)
		}
	}
	if len(batches) > 0 {
		if _, err := tx.Exec(ctx, sqlLockBatches, batches); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, sqlDeleteTags, nums); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqlDeleteEvents, ids); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqlDeleteExecutions, nums); err != nil {
		return err
	}
	if len(batches) > 0 {
		if _, err := tx.Exec(ctx, sqlDeleteEmptyBatches, batches); err != nil {
			return err
		}
	}
	return nil
}
