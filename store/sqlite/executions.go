package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// CreateExecution implements conveyor.Store, as a batch of one.
func (db *DB) CreateExecution(ctx context.Context, e *conveyor.Execution) error {
	return db.CreateExecutions(ctx, []*conveyor.Execution{e})
}

// insertArgs is the number of parameters of sqlInsertExecution.
const insertArgs = 19

// CreateExecutions implements conveyor.Store: one IMMEDIATE transaction on
// the writer, the prepared insert once per execution, in batch order, then
// one statement for all their tags (sqlInsertTagsSince). The first
// execution whose id exists, or came earlier in the batch, rolls it all
// back.
func (db *DB) CreateExecutions(ctx context.Context, es []*conveyor.Execution) error {
	if len(es) == 0 {
		return nil
	}
	for _, e := range es {
		if err := e.ValidateNew(); err != nil {
			return err
		}
	}
	if err := conveyor.RepeatedKey(es); err != nil {
		return err
	}
	return db.create(ctx, "create executions", es, nil)
}

// create inserts es, and first whatever before does, in one transaction.
func (db *DB) create(ctx context.Context, what string, es []*conveyor.Execution, before func(*sql.Tx) error) error {
	// Encode everything before taking the writer.
	args := make([]any, 0, len(es)*insertArgs)
	for _, e := range es {
		progress, err := progressJSON(e.Progress)
		if err != nil {
			return err
		}
		errCode, errMsg := errorColumns(e.Error)
		tags, err := tagsColumn(e.Tags)
		if err != nil {
			return err
		}
		webhook, err := store.WebhookColumn(e.Webhook)
		if err != nil {
			return err
		}
		args = append(args, e.ID, e.Pipeline, string(e.Status), jsonColumn(e.Input),
			progress, jsonColumn(e.Result), errCode, errMsg, e.Attempt, e.CreatedAt.UnixNano(),
			timeColumn(e.StartedAt), timeColumn(e.FinishedAt), e.LastSeq, e.CancelRequested, tags, e.BatchID, webhook, e.RetryOf,
			timeColumn(e.RunAt))
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if before != nil {
		if err := before(tx); err != nil {
			return err
		}
	}
	var first int64 // the num of es[0]
	tagged := false
	for start := 0; start < len(es); start += insertRows {
		chunk := es[start:min(start+insertRows, len(es))]
		res, err := db.insertExecutions(ctx, tx, len(chunk), args[start*insertArgs:(start+len(chunk))*insertArgs])
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		} else if n < int64(len(chunk)) {
			return db.conflict(ctx, tx, es)
		}
		if start == 0 {
			// One statement's rows take consecutive nums (AUTOINCREMENT,
			// and the transaction holds the write lock).
			last, err := res.LastInsertId()
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			first = last - int64(len(chunk)) + 1
		}
		for _, e := range chunk {
			tagged = tagged || len(e.Tags) > 0
		}
	}
	if tagged {
		if _, err := tx.StmtContext(ctx, db.st.insertTagsSince).ExecContext(ctx, first); err != nil {
			return fmt.Errorf("%s: tags: %w", what, err)
		}
	}
	if err := takeExecutionKeys(ctx, tx, es); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// insertRows is how many executions one INSERT statement takes: one
// statement per execution cost a bind and a step each.
const insertRows = 200

// insertExecutions inserts n executions of args in one statement, a
// prepared one for 1 or insertRows of them.
func (db *DB) insertExecutions(ctx context.Context, tx *sql.Tx, n int, args []any) (sql.Result, error) {
	switch n {
	case 1:
		return tx.StmtContext(ctx, db.st.insertExecution).ExecContext(ctx, args...)
	case insertRows:
		return tx.StmtContext(ctx, db.st.insertExecutions).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, insertExecutionsSQL(n), args...)
}

// insertExecutionsSQL is the INSERT of n executions.
func insertExecutionsSQL(n int) string {
	return sqlInsertExecution + strings.Repeat(", "+sqlInsertExecutionRow, n-1) + sqlInsertExecutionEnd
}

// conflict is the error of inserting es in tx when one of them was not
// inserted: its id is twice in es, or was taken before tx, which it rolls
// back to find out.
func (db *DB) conflict(ctx context.Context, tx *sql.Tx, es []*conveyor.Execution) error {
	seen := make(map[string]bool, len(es))
	for _, e := range es {
		if seen[e.ID] {
			return conveyor.Errorf(conveyor.ECONFLICT, "execution %q appears more than once in the batch", e.ID)
		}
		seen[e.ID] = true
	}
	if err := tx.Rollback(); err != nil {
		return err
	}
	for _, e := range es {
		var n int
		if err := db.r.QueryRowContext(ctx, sqlIDTaken, e.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return conveyor.Errorf(conveyor.ECONFLICT, "execution %q already exists", e.ID)
		}
	}
	return errors.New("an execution was not inserted, and none conflicts")
}

// insertTags inserts a tag row (key, value, num) per tag with insert.
func insertTags(ctx context.Context, insert *sql.Stmt, tags conveyor.Tags, num int64) error {
	for k, v := range tags {
		if _, err := insert.ExecContext(ctx, k, v, num); err != nil {
			return fmt.Errorf("tag %q: %w", k, err)
		}
	}
	return nil
}

// GetExecution implements conveyor.Store.
func (db *DB) GetExecution(ctx context.Context, id string) (*conveyor.Execution, error) {
	if err := conveyor.Lookup(id); err != nil {
		return nil, err
	}
	ex, _, err := scanExecution(db.st.getExecution.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, conveyor.ExecutionNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get execution: %w", err)
	}
	return ex, nil
}

// ListExecutions implements conveyor.Store. Executions go newest first by
// submission order; the cursor is the number of the last one returned.
func (db *DB) ListExecutions(ctx context.Context, f conveyor.ListFilter) (*conveyor.ExecutionPage, error) {
	if len(f.Tags) > 1 {
		tags, err := db.rarestFirst(ctx, f.Tags)
		if err != nil {
			return nil, fmt.Errorf("list executions: %w", err)
		}
		f.Tags = tags
	}
	var args []any
	query, limit, err := store.ListQuery(executionColumns, f, placeholder(&args))
	if err != nil {
		return nil, err
	}
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	items, next, err := store.CollectPage(rows, limit, func(r store.Rows) (*conveyor.Execution, int64, error) { return scanExecution(r) })
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	return &conveyor.ExecutionPage{Executions: items, NextCursor: next}, nil
}

// tagCountCap bounds how many rows of a tag rarestFirst counts.
const tagCountCap = 1000

// rarestFirst returns tags ordered by how many executions have each,
// counted up to tagCountCap, fewest first. SQLite drives a tag filter's
// scan from the first tag (store.ListQuery), whatever the tags' sizes: it
// keeps no statistics that could tell it otherwise. A common tag first
// costs a probe of the others for each of its rows (50 ms for a page of
// a rare tag behind one of 100,000 executions); a count of at most
// tagCountCap index entries per tag is far cheaper. PostgreSQL plans this
// itself.
func (db *DB) rarestFirst(ctx context.Context, tags []conveyor.Tag) ([]conveyor.Tag, error) {
	counts := make(map[conveyor.Tag]int, len(tags))
	for _, t := range tags {
		var n int
		if err := db.r.QueryRowContext(ctx, sqlCountTag, t.Key, t.Value, tagCountCap).Scan(&n); err != nil {
			return nil, fmt.Errorf("count tag %s:%s: %w", t.Key, t.Value, err)
		}
		counts[t] = n
	}
	sorted := slices.Clone(tags)
	slices.SortStableFunc(sorted, func(a, b conveyor.Tag) int { return cmp.Compare(counts[a], counts[b]) })
	return sorted, nil
}

// placeholder is the param function of store.ListQuery and BatchQuery:
// it adds v to args, a time as times are stored, and returns "?".
func placeholder(args *[]any) func(v any) string {
	return func(v any) string {
		if t, ok := v.(time.Time); ok {
			v = t.UnixNano()
		}
		*args = append(*args, v)
		return "?"
	}
}

// CountPending implements conveyor.Store.
func (db *DB) CountPending(ctx context.Context, upTo int) (int, error) {
	if upTo <= 0 {
		return 0, nil
	}
	var n int
	if err := db.r.QueryRowContext(ctx, sqlCountPending, upTo).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending: %w", err)
	}
	return n, nil
}

// ClaimPending implements conveyor.Store.
func (db *DB) ClaimPending(ctx context.Context, limit int, clock func() time.Time) ([]conveyor.Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim executions: %w", err)
	}
	defer tx.Rollback()
	now := clock().UTC() // the single writer is ours: no more waiting

	rows, err := tx.StmtContext(ctx, db.st.claimPending).QueryContext(ctx, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim executions: %w", err)
	}
	type claimed struct {
		ex  *conveyor.Execution
		num int64
	}
	var cs []claimed
	for rows.Next() {
		ex, num, err := scanExecution(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim executions: %w", err)
		}
		cs = append(cs, claimed{ex, num})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim executions: %w", err)
	}
	if len(cs) == 0 {
		return nil, nil
	}
	// RETURNING gives no order; claims go oldest first.
	slices.SortFunc(cs, func(a, b claimed) int { return cmp.Compare(a.num, b.num) })

	insert := tx.StmtContext(ctx, db.st.insertEvent)
	claims := make([]conveyor.Claim, len(cs))
	for i, c := range cs {
		ev := conveyor.StartedEvent(c.ex, *c.ex.StartedAt)
		if err := insertEvent(ctx, insert, &ev); err != nil {
			return nil, fmt.Errorf("claim executions: %w", err)
		}
		claims[i] = conveyor.Claim{Execution: c.ex, Started: ev}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim executions: %w", err)
	}
	return claims, nil
}

// NextDue implements conveyor.Store.
func (db *DB) NextDue(ctx context.Context, after time.Time) (time.Time, error) {
	var due int64
	err := db.r.QueryRowContext(ctx, sqlNextDue, after.UnixNano()).Scan(&due)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("next due execution: %w", err)
	}
	return fromUnixNano(due), nil
}

// Cancel implements conveyor.Store.
func (db *DB) Cancel(ctx context.Context, id string, now time.Time) (*conveyor.Execution, *conveyor.Event, error) {
	if err := conveyor.Lookup(id); err != nil {
		return nil, nil, err
	}
	now = now.UTC()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("cancel execution: %w", err)
	}
	defer tx.Rollback()
	ex, _, err := scanExecution(tx.QueryRowContext(ctx, sqlGetExecution, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, conveyor.ExecutionNotFound(id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cancel execution: %w", err)
	}

	ev, err := ex.Cancel(now)
	if err != nil {
		return nil, nil, err
	}
	if ev != nil {
		err = finish(ctx, tx, db.st.insertEvent, ev)
	} else {
		_, err = tx.ExecContext(ctx, sqlRequestCancel, id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cancel execution: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("cancel execution: %w", err)
	}
	return ex, ev, nil
}

// RecoverInterrupted implements conveyor.Store.
func (db *DB) RecoverInterrupted(ctx context.Context, now time.Time, policy func(pipeline string) conveyor.RetryPolicy) ([]conveyor.Event, error) {
	now = now.UTC()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("recover executions: %w", err)
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, sqlRunning)
	if err != nil {
		return nil, fmt.Errorf("recover executions: %w", err)
	}
	var running []*conveyor.Execution
	for rows.Next() {
		ex, _, err := scanExecution(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("recover executions: %w", err)
		}
		running = append(running, ex)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recover executions: %w", err)
	}

	var evs []conveyor.Event
	for _, ex := range running {
		ev := ex.Interrupt(now, store.PolicyOf(policy, ex.Pipeline), conveyor.NodeStopped)
		if err := finish(ctx, tx, db.st.insertEvent, &ev); err != nil {
			return nil, fmt.Errorf("recover execution %s: %w", ex.ID, err)
		}
		evs = append(evs, ev)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("recover executions: %w", err)
	}
	return evs, nil
}

// finish persists ev, which ends an attempt without its runner (a cancel
// or an interruption: see conveyor.Execution.Cancel and Interrupt), and
// appends it, in tx.
func finish(ctx context.Context, tx *sql.Tx, insert *sql.Stmt, ev *conveyor.Event) error {
	errCode, errMsg := errorColumns(ev.Error)
	var err error
	if ev.Type == conveyor.EventRetrying {
		var progress any
		if progress, err = progressJSON(ev.Progress); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, sqlRequeue, ev.Seq, errCode, errMsg, ev.ExecutionID, progress, timeColumn(ev.RetryAt))
	} else {
		_, err = tx.ExecContext(ctx, sqlFinish, string(ev.Status), ev.Time.UnixNano(), ev.Seq, errCode, errMsg, ev.ExecutionID)
	}
	if err != nil {
		return err
	}
	return insertEvent(ctx, tx.StmtContext(ctx, insert), ev)
}

// Column encodings: times are Unix nanoseconds, JSON is text, and absent
// values are NULL.

type scanner interface{ Scan(dest ...any) error }

// scanExecution reads executionColumns.
func scanExecution(sc scanner) (*conveyor.Execution, int64, error) {
	var (
		ex                      conveyor.Execution
		num, created            int64
		status                  string
		input, progress, result []byte
		errCode, errMsg         sql.NullString
		started, finished       sql.NullInt64
		stalled                 sql.NullInt64
		tags, data, webhook     []byte
		checkpoint              []byte
		runAt, retryAt          sql.NullInt64
	)
	err := sc.Scan(&num, &ex.ID, &ex.Pipeline, &status, &input, &progress, &result, &errCode, &errMsg,
		&ex.Attempt, &created, &started, &finished, &ex.LastSeq, &ex.CancelRequested, &tags, &ex.BatchID, &data, &stalled,
		&webhook, &ex.RetryOf, &ex.ResumeStep, &checkpoint, &runAt, &retryAt)
	if err != nil {
		return nil, 0, err
	}
	if ex.Webhook, err = store.ScanWebhookColumn(webhook); err != nil {
		return nil, 0, fmt.Errorf("execution %s: %w", ex.ID, err)
	}
	if tags != nil {
		if err := json.Unmarshal(tags, &ex.Tags); err != nil {
			return nil, 0, fmt.Errorf("execution %s: decode tags: %w", ex.ID, err)
		}
	}
	ex.Status = conveyor.Status(status)
	ex.Input, ex.Result, ex.Data, ex.Checkpoint = input, result, data, checkpoint
	if progress != nil {
		ex.Progress = new(conveyor.Progress)
		if err := json.Unmarshal(progress, ex.Progress); err != nil {
			return nil, 0, fmt.Errorf("execution %s: decode progress: %w", ex.ID, err)
		}
	}
	if stalled.Valid {
		t := fromUnixNano(stalled.Int64)
		ex.StalledSince = &t
	}
	if errCode.Valid {
		ex.Error = &conveyor.Error{Code: errCode.String, Message: errMsg.String}
	}
	ex.CreatedAt = fromUnixNano(created)
	if started.Valid {
		t := fromUnixNano(started.Int64)
		ex.StartedAt = &t
	}
	if finished.Valid {
		t := fromUnixNano(finished.Int64)
		ex.FinishedAt = &t
	}
	ex.RunAt, ex.RetryAt = nullTime(runAt), nullTime(retryAt)
	return &ex, num, nil
}

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }

// nullTime reads a time column that may be NULL.
func nullTime(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromUnixNano(n.Int64)
	return &t
}

func timeColumn(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func jsonColumn(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// tagsColumn is the tags as JSON text, NULL when none.
func tagsColumn(t conveyor.Tags) (any, error) {
	if len(t) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EINVALID, "tags cannot be stored: %v", err)
	}
	return string(b), nil
}

func progressJSON(p *conveyor.Progress) (any, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EINVALID, "progress cannot be stored: %v", err)
	}
	return string(b), nil
}

func errorColumns(e *conveyor.Error) (code, message any) {
	if e == nil {
		return nil, nil
	}
	return e.Code, e.Message
}
