package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Deleting an execution deletes its events, log lines, tags and webhook
// deliveries by their foreign keys (ON DELETE CASCADE), each indexed by
// the execution.

const (
	// The executions that finished before ?1, oldest first, from the
	// index executions_finished; conveyor.Execution.Expired decides.
	sqlPrunable = `SELECT num, id, status, finished_at, batch_id FROM executions
		WHERE finished_at < ?1 ORDER BY finished_at LIMIT ?2`

	sqlDeleteExecutions = `DELETE FROM executions WHERE num IN (SELECT value FROM json_each(?))`

	// A checkpoint that waits for no one: what the WAL holds that no
	// reader still needs goes into the database file.
	sqlCheckpoint = `PRAGMA wal_checkpoint(PASSIVE)`

	// The batches of ?1 that have no member left, found by the index
	// executions_batch_num.
	sqlDeleteEmptyBatches = `DELETE FROM batches WHERE id IN (SELECT value FROM json_each(?1))
		AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.batch_id = batches.id)`
)

// DeleteExecution implements conveyor.Store.
func (db *DB) DeleteExecution(ctx context.Context, id string) error {
	if err := conveyor.Lookup(id); err != nil {
		return err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete execution: %w", err)
	}
	defer tx.Rollback()
	ex, num, err := scanExecution(tx.QueryRowContext(ctx, sqlGetExecution, id))
	if errors.Is(err, sql.ErrNoRows) {
		return conveyor.ExecutionNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("delete execution: %w", err)
	}
	if err := ex.CheckDelete(); err != nil {
		return err
	}
	if err := deleteExecutions(ctx, tx, []*conveyor.Execution{ex}, []int64{num}); err != nil {
		return fmt.Errorf("delete execution: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete execution: %w", err)
	}
	return nil
}

// PruneExecutions implements conveyor.Store. Its transaction holds the
// one writer connection, which every other write waits for: limit keeps
// it short.
func (db *DB) PruneExecutions(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune executions: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, sqlPrunable, cutoff.UnixNano(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune executions: %w", err)
	}
	var (
		exs  []*conveyor.Execution
		nums []int64
	)
	for rows.Next() {
		var (
			ex       conveyor.Execution
			num      int64
			finished int64
			status   string
		)
		if err := rows.Scan(&num, &ex.ID, &status, &finished, &ex.BatchID); err != nil {
			rows.Close()
			return 0, fmt.Errorf("prune executions: %w", err)
		}
		t := fromUnixNano(finished)
		ex.Status, ex.FinishedAt = conveyor.Status(status), &t
		if ex.Expired(cutoff) {
			exs, nums = append(exs, &ex), append(nums, num)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("prune executions: %w", err)
	}
	if len(exs) == 0 {
		return 0, nil
	}
	if err := deleteExecutions(ctx, tx, exs, nums); err != nil {
		return 0, fmt.Errorf("prune executions: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune executions: %w", err)
	}
	// Deleting writes much to the WAL, which SQLite copies back into the
	// database in a checkpoint once it passes 1000 pages: by default in
	// the connection whose commit passed them, the writer, where every
	// other write waits for it. Checkpointing on a reader connection
	// instead leaves the writer free meanwhile (while 200,000 executions
	// were pruned, a progress write's p99 went from 82-86 ms to 32-35 ms,
	// docs/benchmarks.md).
	if _, err := db.r.ExecContext(ctx, sqlCheckpoint); err != nil {
		return 0, fmt.Errorf("prune executions: checkpoint: %w", err)
	}
	return len(exs), nil
}

// deleteExecutions deletes exs, numbered nums, and the batches they
// leave empty, in tx.
func deleteExecutions(ctx context.Context, tx *sql.Tx, exs []*conveyor.Execution, nums []int64) error {
	list, err := json.Marshal(nums)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, sqlDeleteExecutions, string(list)); err != nil {
		return err
	}
	var batches []string
	for _, ex := range exs {
		if ex.BatchID != nil {
			batches = append(batches, *ex.BatchID)
		}
	}
	if len(batches) == 0 {
		return nil
	}
	if list, err = json.Marshal(batches); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, sqlDeleteEmptyBatches, string(list))
	return err
}
