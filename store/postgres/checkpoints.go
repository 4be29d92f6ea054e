package postgres

import (
	"context"

	"github.com/conveyor-run/conveyor"
)

// SaveCheckpoints implements conveyor.Store. The whole batch is one
// statement (see sqlSaveCheckpoints), so one round trip however many
// writes it carries; nothing is notified, as checkpoints are not events.
func (db *DB) SaveCheckpoints(ctx context.Context, writes []conveyor.Checkpoint) error {
	if len(writes) == 0 {
		return nil
	}
	var (
		ids         = make([]string, len(writes))
		attempts    = make([]int32, len(writes))
		steps       = make([]int32, len(writes))
		checkpoints = make([]*string, len(writes))
	)
	for i := range writes {
		c := &writes[i]
		if err := c.Validate(); err != nil {
			return err
		}
		ids[i], attempts[i], steps[i], checkpoints[i] = c.ExecutionID, int32(c.Attempt), int32(c.Step), jsonColumn(c.Data)
	}
	rows, err := db.pool.Query(ctx, sqlSaveCheckpoints, ids, attempts, steps, checkpoints)
	if err != nil {
		return storeError("save checkpoints", err)
	}
	defer rows.Close()
	type attempt struct {
		id string
		n  int32
	}
	saved := map[attempt]bool{}
	for rows.Next() {
		var a attempt
		if err := rows.Scan(&a.id, &a.n); err != nil {
			return storeError("save checkpoints", err)
		}
		saved[a] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return storeError("save checkpoints", err)
	}
	for i := range writes {
		writes[i].Dropped = !saved[attempt{ids[i], attempts[i]}]
	}
	return nil
}
