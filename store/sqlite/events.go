package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/conveyor-run/conveyor"
)

// Append implements conveyor.Store. The whole batch is one transaction:
// this is where the engine's group commit lands, so the cost of a commit
// is shared by every event queued while the previous one ran. Each write
// updates its execution only if it is the current attempt of a running
// execution and its seq is after LastSeq, and is stored only if it did. A
// completed write to an execution with a cancel requested is stored, and
// left in writes, as cancelled (conveyor.Event.CancelInstead).
func (db *DB) Append(ctx context.Context, writes []conveyor.Event) error {
	if len(writes) == 0 {
		return nil
	}
	// Validate and encode everything before taking the write lock.
	enc := make([]encoded, len(writes))
	for i := range writes {
		if err := writes[i].ValidateStored(); err != nil {
			return err
		}
		var err error
		if enc[i], err = encode(&writes[i]); err != nil {
			return err
		}
	}

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	defer tx.Rollback()
	var (
		progress  = tx.StmtContext(ctx, db.st.appendProgress)
		final     = tx.StmtContext(ctx, db.st.appendFinal)
		completed = tx.StmtContext(ctx, db.st.appendCompleted)
		retrying  = tx.StmtContext(ctx, db.st.appendRetrying)
		insert    = tx.StmtContext(ctx, db.st.insertEvent)
	)
	applied := func(res sql.Result, err error) (bool, error) {
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n > 0, err
	}
	appendFinal := func(stmt *sql.Stmt, ev *conveyor.Event, progress any) (bool, error) {
		errCode, errMsg := errorColumns(ev.Error)
		return applied(stmt.ExecContext(ctx, ev.Seq, string(conveyor.StatusOf(ev.Type)), ev.Time.UnixNano(),
			progress, errCode, errMsg, jsonColumn(ev.Result), ev.ExecutionID, ev.Attempt))
	}
	for i := range writes {
		ev := &writes[i]
		var ok bool
		switch {
		case ev.Type == conveyor.EventRetrying:
			errCode, errMsg := errorColumns(ev.Error)
			ok, err = applied(retrying.ExecContext(ctx, ev.Seq, errCode, errMsg, ev.ExecutionID, ev.Attempt, enc[i].progress, timeColumn(ev.RetryAt)))
		case ev.Type == conveyor.EventCompleted:
			if ok, err = appendFinal(completed, ev, enc[i].progress); err == nil && !ok {
				// Fenced off, or a cancel is requested: then it ends cancelled.
				alt := *ev
				alt.CancelInstead()
				if enc[i], err = encode(&alt); err != nil {
					return err
				}
				if ok, err = appendFinal(final, &alt, enc[i].progress); ok {
					*ev = alt
				}
			}
		case ev.Type.Final():
			ok, err = appendFinal(final, ev, enc[i].progress)
		default:
			ok, err = applied(progress.ExecContext(ctx, ev.Seq, enc[i].progress, ev.ExecutionID, ev.Attempt,
				jsonColumn(ev.Data), timeColumn(ev.StalledSince())))
		}
		if err != nil {
			return fmt.Errorf("append %s event: %w", ev.Type, err)
		}
		ev.Dropped = !ok // fenced off
		if !ok {
			continue
		}
		if _, err := insert.ExecContext(ctx, ev.ExecutionID, ev.Seq, string(ev.Type), enc[i].data); err != nil {
			return fmt.Errorf("append %s event: %w", ev.Type, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// encoded is an event as Append writes it.
type encoded struct {
	data     string
	progress any
}

func encode(ev *conveyor.Event) (encoded, error) {
	data, err := conveyor.EncodeEvent(ev)
	if err != nil {
		return encoded{}, err
	}
	progress, err := progressJSON(ev.Progress)
	if err != nil {
		return encoded{}, err
	}
	return encoded{string(data), progress}, nil
}

// Events implements conveyor.Store.
func (db *DB) Events(ctx context.Context, id string, after int64, limit int) ([]conveyor.Event, error) {
	if limit <= 0 {
		return nil, conveyor.Errorf(conveyor.EINVALID, "limit %d is not positive", limit)
	}
	if conveyor.Lookup(id) != nil {
		return nil, nil
	}
	rows, err := db.st.events.QueryContext(ctx, id, after, limit)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return evs, nil
}

// insertEvent stores ev with the insert statement of a transaction.
func insertEvent(ctx context.Context, insert *sql.Stmt, ev *conveyor.Event) error {
	data, err := conveyor.EncodeEvent(ev)
	if err != nil {
		return err
	}
	if _, err := insert.ExecContext(ctx, ev.ExecutionID, ev.Seq, string(ev.Type), string(data)); err != nil {
		return fmt.Errorf("insert %s event: %w", ev.Type, err)
	}
	return nil
}
