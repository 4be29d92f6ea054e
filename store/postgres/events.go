package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
)

// Append implements conveyor.Store. The whole batch is one statement (see
// sqlAppend), so one round trip and one commit however many writes it
// carries: this is where the engine's group commit lands. Each write is
// fenced by the attempt and the running status of its execution and by
// LastSeq; writes that fail the fence, or whose execution is unknown, are
// dropped. A completed write to an execution with a cancel requested is
// stored, and left in writes, as cancelled (conveyor.Event.CancelInstead).
// After the commit it sends the executions' new LastSeq on
// conveyor_events.
func (db *DB) Append(ctx context.Context, writes []conveyor.Event) error {
	if len(writes) == 0 {
		return nil
	}
	// Validate and encode everything before touching the database.
	args, err := appendArgs(writes)
	if err != nil {
		return err
	}
	rows, err := db.pool.Query(ctx, sqlAppend, args...)
	if err != nil {
		return storeError("append events", err)
	}
	defer rows.Close()
	var (
		marks     []eventMark
		cancelled map[eventMark]bool
		accepted  = make([]bool, len(writes)) // by position in writes
	)
	for rows.Next() {
		var (
			m      eventMark
			status string
			ords   []int64
		)
		if err := rows.Scan(&m.id, &m.seq, &status, &ords); err != nil {
			return storeError("append events", err)
		}
		marks = append(marks, m)
		for _, ord := range ords {
			accepted[ord-1] = true
		}
		if status == string(conveyor.StatusCancelled) {
			if cancelled == nil {
				cancelled = map[eventMark]bool{}
			}
			cancelled[m] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return storeError("append events", err)
	}
	for i := range writes {
		ev := &writes[i]
		ev.Dropped = !accepted[i]
		if ev.Type == conveyor.EventCompleted && cancelled[eventMark{ev.ExecutionID, ev.Seq}] {
			ev.CancelInstead()
		}
	}
	db.notifyEvents(ctx, marks)
	return nil
}

// appendArgs are the parameters of sqlAppend for writes: parallel arrays,
// one element per write.
func appendArgs(writes []conveyor.Event) ([]any, error) {
	var (
		ids      = make([]string, len(writes))
		seqs     = make([]int64, len(writes))
		attempts = make([]int32, len(writes))
		types    = make([]string, len(writes))
		data     = make([]string, len(writes))
		progress = make([]*string, len(writes))
		errs     = make([]*string, len(writes))
		results  = make([]*string, len(writes))
		times    = make([]time.Time, len(writes)) // only final writes need theirs
		// What a completed write becomes when a cancel was requested.
		cancelledData     = make([]*string, len(writes))
		cancelledProgress = make([]*string, len(writes))
		// The status after a write that ends the attempt, NULL for others:
		// the lifecycle decides it (conveyor.StatusOf), the SQL applies it.
		statuses = make([]*string, len(writes))
		// The execution's data after a data event, and StalledSince after
		// every write (conveyor.Event.StalledSince): NULL mostly.
		execData     = make([]*string, len(writes))
		stalledSince = make([]*time.Time, len(writes))
		// When a retrying write's next attempt may start: NULL for others.
		retryAt = make([]*time.Time, len(writes))
	)
	for i := range writes {
		ev := &writes[i]
		if err := ev.ValidateStored(); err != nil {
			return nil, err
		}
		ids[i], seqs[i], attempts[i], types[i] = ev.ExecutionID, ev.Seq, int32(ev.Attempt), string(ev.Type)
		var err error
		if data[i], progress[i], err = encode(ev); err != nil {
			return nil, err
		}
		if ev.Data != nil {
			execData[i] = ptr(string(ev.Data))
		}
		stalledSince[i], retryAt[i] = ev.StalledSince(), ev.RetryAt
		if ev.Type == conveyor.EventCompleted {
			alt := *ev
			alt.CancelInstead()
			var d string
			if d, cancelledProgress[i], err = encode(&alt); err != nil {
				return nil, err
			}
			cancelledData[i] = &d
		}
		if ev.Type.EndsAttempt() {
			statuses[i], errs[i], times[i] = ptr(string(conveyor.StatusOf(ev.Type))), errorColumn(ev.Error), ev.Time
			if len(ev.Result) > 0 {
				results[i] = ptr(string(ev.Result)) // valid: ValidateStored checked it
			}
		}
	}
	return []any{ids, seqs, attempts, types, data, progress, errs, results, times,
		cancelledData, cancelledProgress, statuses, execData, stalledSince, retryAt}, nil
}

// encode is ev as stored, and its progress column.
func encode(ev *conveyor.Event) (data string, progress *string, err error) {
	d, err := conveyor.EncodeEvent(ev)
	if err != nil {
		return "", nil, err
	}
	progress, err = progressColumn(ev.Progress)
	return string(d), progress, err
}

func ptr[T any](v T) *T { return &v }

// Events implements conveyor.Store.
func (db *DB) Events(ctx context.Context, id string, after int64, limit int) ([]conveyor.Event, error) {
	if limit <= 0 {
		return nil, conveyor.Errorf(conveyor.EINVALID, "limit %d is not positive", limit)
	}
	if conveyor.Lookup(id) != nil {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, sqlEvents, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var evs []conveyor.Event
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		ev, err := conveyor.DecodeEvent(data)
		if err != nil {
			return nil, fmt.Errorf("read events of %s: %w", id, err)
		}
		evs = append(evs, ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return evs, nil
}

// insertEvent stores ev in tx.
func insertEvent(ctx context.Context, tx pgx.Tx, ev *conveyor.Event) error {
	data, err := conveyor.EncodeEvent(ev)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqlInsertEvent, ev.ExecutionID, ev.Seq, string(ev.Type), string(data)); err != nil {
		return fmt.Errorf("insert %s event: %w", ev.Type, err)
	}
	return nil
}
