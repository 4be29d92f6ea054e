package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// AppendLogs implements conveyor.Store. Lines of unknown executions are
// dropped. The insert, the trim of each execution in the batch to its
// newest conveyor.MaxLogLines lines and a conveyor_logs notification of
// the batch's executions (comma-separated ids, which log followers on
// other nodes wait for) go in one round trip and one implicit
// transaction: the notification costs no round trip of its own and is
// sent only if the lines are stored.
func (db *DB) AppendLogs(ctx context.Context, lines []conveyor.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	var (
		ids     = make([]string, len(lines))
		times   = make([]time.Time, len(lines))
		tries   = make([]int32, len(lines))
		steps   = make([]string, len(lines))
		streams = make([]string, len(lines))
		texts   = make([]string, len(lines))
		batch   []string // executions in the batch, each once
		seen    = map[string]bool{}
	)
	for i, l := range lines {
		if err := l.ValidateStored(); err != nil {
			return err
		}
		ids[i], times[i], tries[i], steps[i], streams[i], texts[i] = l.ExecutionID, l.Time, int32(l.Attempt), l.Step, l.Stream, l.Line
		if !seen[l.ExecutionID] {
			seen[l.ExecutionID] = true
			batch = append(batch, l.ExecutionID)
		}
	}
	b := &pgx.Batch{}
	b.Queue(sqlInsertLogs, ids, times, tries, steps, streams, texts)
	b.Queue(sqlTrimLogs, batch, conveyor.MaxLogLines)
	if payloads := joinPayloads(batch); len(payloads) > 0 && !db.unwatched.Load() {
		b.Queue(sqlNotify, channelLogs, payloads)
	}
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return storeError("append logs", err)
	}
	return nil
}

// Logs implements conveyor.Store.
func (db *DB) Logs(ctx context.Context, id string, after int64, maxBytes int) (*conveyor.LogPage, error) {
	if conveyor.Lookup(id) != nil {
		return &conveyor.LogPage{Lines: []conveyor.LogLine{}, Last: after}, nil
	}
	rows, err := db.pool.Query(ctx, sqlLogs, id, after)
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	defer rows.Close()
	page, err := store.CollectLogs(rows, after, maxBytes, func(r store.Rows) (conveyor.LogLine, int64, error) {
		l := conveyor.LogLine{ExecutionID: id}
		var num int64
		err := r.Scan(&num, &l.Time, &l.Attempt, &l.Step, &l.Stream, &l.Line)
		l.Time = l.Time.UTC()
		return l, num, err
	})
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	return page, nil
}
