package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/conveyor-run/conveyor"
)

const (
	// sqlTakeKey records an idempotency key, or takes over one first used
	// at or before ?6 (expired); a live key is left alone and changes no
	// row.
	sqlTakeKey = `INSERT INTO idempotency_keys (key, digest, execution_id, batch_id, created_at)
		VALUES (?1, ?2, ?3, ?4, ?5)
		ON CONFLICT (key) DO UPDATE SET digest = excluded.digest, execution_id = excluded.execution_id,
			batch_id = excluded.batch_id, created_at = excluded.created_at
		WHERE idempotency_keys.created_at <= ?6`

	sqlGetKey = `SELECT digest, coalesce(execution_id, ''), coalesce(batch_id, ''), created_at
		FROM idempotency_keys WHERE key = ?`

	sqlDeleteExpiredKeys = `DELETE FROM idempotency_keys WHERE key IN
		(SELECT key FROM idempotency_keys WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)`
)

// takeKey records id in tx as naming the execution or the batch created
// at at: a *conveyor.KeyTaken when the key is live.
func takeKey(ctx context.Context, tx *sql.Tx, id *conveyor.Idempotency, executionID, batchID *string, at time.Time) error {
	res, err := tx.ExecContext(ctx, sqlTakeKey, id.Key, id.Digest, executionID, batchID,
		at.UnixNano(), at.Add(-conveyor.IdempotencyTTL).UnixNano())
	if err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	} else if n > 0 {
		return nil
	}
	taken := &conveyor.KeyTaken{Key: id.Key}
	var created int64
	if err := tx.QueryRowContext(ctx, sqlGetKey, id.Key).Scan(&taken.Digest, &taken.ExecutionID, &taken.BatchID, &created); err != nil {
		return fmt.Errorf("read idempotency key: %w", err)
	}
	taken.CreatedAt = fromUnixNano(created)
	return taken
}

// takeExecutionKeys records the keys of es in tx, as takeKey.
func takeExecutionKeys(ctx context.Context, tx *sql.Tx, es []*conveyor.Execution) error {
	for _, e := range es {
		if e.Idempotency != nil {
			if err := takeKey(ctx, tx, e.Idempotency, &e.ID, nil, e.CreatedAt); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteExpiredKeys implements conveyor.Store.
func (db *DB) DeleteExpiredKeys(ctx context.Context, before time.Time, limit int) (int, error) {
	res, err := db.w.ExecContext(ctx, sqlDeleteExpiredKeys, before.UnixNano(), limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
