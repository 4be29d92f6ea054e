package sqlite

import (
	"context"
	"fmt"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// AppendLogs implements conveyor.Store. Lines of unknown executions are
// dropped. After the inserts, each execution in the batch is trimmed to
// its newest conveyor.MaxLogLines lines, in the same transaction.
func (db *DB) AppendLogs(ctx context.Context, lines []conveyor.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	for i := range lines {
		if err := lines[i].ValidateStored(); err != nil {
			return err
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append logs: %w", err)
	}
	defer tx.Rollback()
	insert := tx.StmtContext(ctx, db.st.insertLog)
	var ids []string // executions in the batch, in order
	seen := map[string]bool{}
	for _, l := range lines {
		if _, err := insert.ExecContext(ctx, l.ExecutionID, l.Time.UnixNano(), l.Attempt, l.Step, l.Stream, l.Line); err != nil {
			return fmt.Errorf("append logs: %w", err)
		}
		if !seen[l.ExecutionID] {
			seen[l.ExecutionID] = true
			ids = append(ids, l.ExecutionID)
		}
	}
	trim := tx.StmtContext(ctx, db.st.trimLogs)
	for _, id := range ids {
		if _, err := trim.ExecContext(ctx, id, conveyor.MaxLogLines); err != nil {
			return fmt.Errorf("trim logs: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append logs: %w", err)
	}
	return nil
}

// Logs implements conveyor.Store.
func (db *DB) Logs(ctx context.Context, id string, after int64, maxBytes int) (*conveyor.LogPage, error) {
	if conveyor.Lookup(id) != nil {
		return &conveyor.LogPage{Lines: []conveyor.LogLine{}, Last: after}, nil
	}
	rows, err := db.r.QueryContext(ctx, sqlLogs, id, after)
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	defer rows.Close()
	page, err := store.CollectLogs(rows, after, maxBytes, func(r store.Rows) (conveyor.LogLine, int64, error) {
		l := conveyor.LogLine{ExecutionID: id}
		var num, t int64
		err := r.Scan(&num, &t, &l.Attempt, &l.Step, &l.Stream, &l.Line)
		l.Time = fromUnixNano(t)
		return l, num, err
	})
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	return page, nil
}
