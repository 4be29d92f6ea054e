package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
)

const (
	// sqlTakeKeys records idempotency keys (parallel arrays), taking over
	// those first used at or before their new use less the TTL ($6). A
	// live key is left alone and not returned. A key another transaction
	// is recording waits for it: two requests with one key create one
	// thing.
	sqlTakeKeys = `INSERT INTO idempotency_keys AS k (key, digest, execution_id, batch_id, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
		ON CONFLICT (key) DO UPDATE SET digest = excluded.digest, execution_id = excluded.execution_id,
			batch_id = excluded.batch_id, created_at = excluded.created_at
		WHERE k.created_at <= excluded.created_at - $6::interval
		RETURNING key`

	sqlGetKey = `SELECT digest, coalesce(execution_id, ''), coalesce(batch_id, ''), created_at
		FROM idempotency_keys WHERE key = $1`

	sqlDeleteExpiredKeys = `DELETE FROM idempotency_keys WHERE key IN
		(SELECT key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)`
)

// keyRows are the parameters of sqlTakeKeys.
type keyRows struct {
	keys, digests       []string
	executions, batches []*string
	created             []time.Time
}

func (k *keyRows) add(id *conveyor.Idempotency, executionID, batchID *string, at time.Time) {
	k.keys, k.digests = append(k.keys, id.Key), append(k.digests, id.Digest)
	k.executions, k.batches = append(k.executions, executionID), append(k.batches, batchID)
	k.created = append(k.created, at)
}

// executionKeys are the keys es carry, none when none does.
func executionKeys(es []*conveyor.Execution) keyRows {
	var k keyRows
	for _, e := range es {
		if e.Idempotency != nil {
			k.add(e.Idempotency, &e.ID, nil, e.CreatedAt)
		}
	}
	return k
}

// take records the keys in tx: a *conveyor.KeyTaken for the first that
// is live.
func (k *keyRows) take(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, sqlTakeKeys, k.keys, k.digests, k.executions, k.batches, k.created, conveyor.IdempotencyTTL)
	if err != nil {
		return fmt.Errorf("record idempotency keys: %w", err)
	}
	taken, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("record idempotency keys: %w", err)
	}
	for _, key := range k.keys {
		if slices.Contains(taken, key) {
			continue
		}
		kt := &conveyor.KeyTaken{Key: key}
		if err := tx.QueryRow(ctx, sqlGetKey, key).Scan(&kt.Digest, &kt.ExecutionID, &kt.BatchID, &kt.CreatedAt); err != nil {
			return fmt.Errorf("read idempotency key: %w", err)
		}
		kt.CreatedAt = kt.CreatedAt.UTC()
		return kt
	}
	return nil
}

// DeleteExpiredKeys implements conveyor.Store.
func (db *DB) DeleteExpiredKeys(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := db.pool.Exec(ctx, sqlDeleteExpiredKeys, before, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
