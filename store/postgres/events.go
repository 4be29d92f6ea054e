package postgres

import (
	"context"
	"encoding/json"
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
// dropped. After the commit it sends the executions' new LastSeq on
// conveyor_events.
func (db *DB) Append(ctx context.Context, writes []conveyor.Event) error {
	if len(writes) == 0 {
		return nil
	}
	// Validate and encode everything before touching the database.
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
	)
	for i := range writes {
		ev := &writes[i]
		if err := ev.ValidateStored(); err != nil {
			return err
		}
		d, err := marshalEvent(ev)
		if err != nil {
			return err
		}
		ids[i], seqs[i], attempts[i], types[i], data[i] = ev.ExecutionID, ev.Seq, int32(ev.Attempt), string(ev.Type), d
		if ev.Progress != nil {
			p, err := json.Marshal(ev.Progress)
			if err != nil {
				return conveyor.Errorf(conveyor.EINVALID, "progress cannot be stored: %v", err)
			}
			progress[i] = ptr(string(p))
		}
		if ev.Type.Final() || ev.Type == conveyor.EventRetrying {
			if ev.Error != nil {
				e, _ := json.Marshal(ev.Error)
				errs[i] = ptr(string(e))
			}
			if len(ev.Result) > 0 {
				results[i] = ptr(string(ev.Result)) // valid: marshalEvent checked it
			}
			times[i] = ev.Time
		}
	}
	rows, err := db.pool.Query(ctx, sqlAppend, ids, seqs, attempts, types, data, progress, errs, results, times)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	defer rows.Close()
	var marks []eventMark
	for rows.Next() {
		var m eventMark
		if err := rows.Scan(&m.id, &m.seq); err != nil {
			return fmt.Errorf("append events: %w", err)
		}
		marks = append(marks, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	db.notifyEvents(ctx, marks)
	return nil
}

func ptr[T any](v T) *T { return &v }

// Events implements conveyor.Store.
func (db *DB) Events(ctx context.Context, id string, after int64, limit int) ([]conveyor.Event, error) {
	if limit <= 0 {
		return nil, conveyor.Errorf(conveyor.EINVALID, "limit %d is not positive", limit)
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
		var ev conveyor.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return nil, fmt.Errorf("read events of %s: decode: %w", id, err)
		}
		ev.Time = ev.Time.UTC()
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
	data, err := marshalEvent(ev)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqlInsertEvent, ev.ExecutionID, ev.Seq, string(ev.Type), data); err != nil {
		return fmt.Errorf("insert %s event: %w", ev.Type, err)
	}
	return nil
}

// marshalEvent encodes ev as stored, its time in UTC.
func marshalEvent(ev *conveyor.Event) (string, error) {
	e := *ev
	e.Time = e.Time.UTC()
	b, err := json.Marshal(&e)
	if err != nil {
		return "", conveyor.Errorf(conveyor.EINVALID, "event %s #%d of %s cannot be stored: %v", ev.Type, ev.Seq, ev.ExecutionID, err)
	}
	return string(b), nil
}
