package sqlite

import (
	"context"
	"fmt"

	"github.com/conveyor-run/conveyor"
)

// SaveCheckpoints implements conveyor.Store: one transaction on the
// writer, a fenced UPDATE per write, in order, so the last write of an
// execution is the one it keeps.
func (db *DB) SaveCheckpoints(ctx context.Context, writes []conveyor.Checkpoint) error {
	if len(writes) == 0 {
		return nil
	}
	for i := range writes {
		if err := writes[i].Validate(); err != nil {
			return err
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save checkpoints: %w", err)
	}
	defer tx.Rollback()
	save := tx.StmtContext(ctx, db.st.saveCheckpoint)
	for i := range writes {
		c := &writes[i]
		res, err := save.ExecContext(ctx, c.Step, jsonColumn(c.Data), c.ExecutionID, c.Attempt)
		if err != nil {
			return fmt.Errorf("save checkpoint: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("save checkpoint: %w", err)
		}
		c.Dropped = n == 0
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save checkpoints: %w", err)
	}
	return nil
}
