package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// Each status counted on its own walk of executions_status_num, no
// further than $2 rows of it, so the cost is bounded however many
// executions are kept.
const sqlCountStatus = `SELECT count(*) FROM (SELECT 1 FROM executions WHERE status = $1 LIMIT $2) s`

// Started and finished executions per bucket: each half reads its own
// partial index (executions_started, executions_finished) over the
// range. Buckets are numbered in whole microseconds since the epoch
// (extract gives an exact numeric), the precision of timestamptz, so
// they split exactly where SQLite's do: $3 is the width in
// microseconds.
const sqlThroughput = `
	SELECT 0, ((extract(epoch FROM started_at) - extract(epoch FROM $1::timestamptz)) * 1000000)::bigint / $3, count(*)
	FROM executions WHERE started_at >= $1 AND started_at < $2 GROUP BY 2
	UNION ALL
	SELECT 1, ((extract(epoch FROM finished_at) - extract(epoch FROM $1::timestamptz)) * 1000000)::bigint / $3, count(*)
	FROM executions WHERE finished_at >= $1 AND finished_at < $2 GROUP BY 2`

// CountByStatus implements conveyor.Store.
func (db *DB) CountByStatus(ctx context.Context, upTo int) (conveyor.Counts, error) {
	var c conveyor.Counts
	if upTo <= 0 {
		return c, nil
	}
	// One round trip for the five counts.
	b := &pgx.Batch{}
	for _, s := range conveyor.Statuses {
		b.Queue(sqlCountStatus, string(s), upTo).QueryRow(func(r pgx.Row) error { return r.Scan(c.Of(s)) })
	}
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return conveyor.Counts{}, storeError("count by status", err)
	}
	return c, nil
}

// Throughput implements conveyor.Store.
func (db *DB) Throughput(ctx context.Context, q conveyor.ThroughputQuery) ([]conveyor.ThroughputBucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, sqlThroughput, q.Since, q.Until(), q.Width.Microseconds())
	if err != nil {
		return nil, storeError("throughput", err)
	}
	defer rows.Close()
	bs, err := store.CollectThroughput(rows, q)
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	return bs, nil
}
