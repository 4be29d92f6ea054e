package sqlite

import (
	"context"
	"fmt"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// Each status counted on its own walk of executions_status_num, no
// further than ?2 rows of it, so the cost is bounded however many
// executions are kept.
const sqlCountStatus = `SELECT count(*) FROM (SELECT 1 FROM executions WHERE status = ?1 LIMIT ?2)`

// Started and finished executions per bucket: each half reads its own
// partial index (executions_started, executions_finished) over the
// range. Times are Unix nanoseconds: ?1 the start, ?2 the end, ?3 the
// bucket width.
const sqlThroughput = `
	SELECT 0, (started_at - ?1) / ?3, count(*) FROM executions
	WHERE started_at >= ?1 AND started_at < ?2 GROUP BY 2
	UNION ALL
	SELECT 1, (finished_at - ?1) / ?3, count(*) FROM executions
	WHERE finished_at >= ?1 AND finished_at < ?2 GROUP BY 2`

// CountByStatus implements conveyor.Store.
func (db *DB) CountByStatus(ctx context.Context, upTo int) (conveyor.Counts, error) {
	var c conveyor.Counts
	if upTo <= 0 {
		return c, nil
	}
	for _, s := range conveyor.Statuses {
		if err := db.r.QueryRowContext(ctx, sqlCountStatus, string(s), upTo).Scan(c.Of(s)); err != nil {
			return conveyor.Counts{}, fmt.Errorf("count by status: %w", err)
		}
	}
	return c, nil
}

// Throughput implements conveyor.Store.
func (db *DB) Throughput(ctx context.Context, q conveyor.ThroughputQuery) ([]conveyor.ThroughputBucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	rows, err := db.r.QueryContext(ctx, sqlThroughput, q.Since.UnixNano(), q.Until().UnixNano(), q.Width.Nanoseconds())
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	defer rows.Close()
	bs, err := store.CollectThroughput(rows, q)
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	return bs, nil
}
