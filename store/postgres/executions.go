package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// CreateExecution implements conveyor.Store, as a batch of one.
func (db *DB) CreateExecution(ctx context.Context, e *conveyor.Execution) error {
	return db.CreateExecutions(ctx, []*conveyor.Execution{e})
}

// CreateExecutions implements conveyor.Store. The whole batch is one
// statement (see sqlInsertExecutions), so one round trip and one commit
// however many executions it carries; an id that exists, or that the batch
// holds twice, fails it on the unique index and nothing is inserted. Once
// the batch is committed, it sends one conveyor_submitted notification
// with the first id, a wake-up hint for the other nodes' claimers.
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
	args, err := insertArgs(es)
	if err != nil {
		return err
	}
	if keys := executionKeys(es); len(keys.keys) == 0 {
		_, err = db.pool.Exec(ctx, sqlInsertExecutions, args...)
	} else {
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if err := keys.take(ctx, tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sqlInsertExecutions, args...)
			return err
		})
	}
	if err := db.createError(ctx, "create executions", es, err); err != nil {
		return err
	}
	return nil
}

// createError is the error of inserting es: ECONFLICT naming the
// execution when the unique index on id refused one.
func (db *DB) createError(ctx context.Context, what string, es []*conveyor.Execution, err error) error {
	var pgErr *pgconn.PgError
	var taken *conveyor.KeyTaken
	switch {
	case errors.As(err, &taken):
		return taken
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		return db.conflict(ctx, es)
	}
	if err != nil {
		return storeError(what, err)
	}
	return nil
}

// insertArgs are the parameters of sqlInsertExecutions for es: parallel
// arrays, one element per execution, then three with one per tag.
func insertArgs(es []*conveyor.Execution) ([]any, error) {
	var (
		ids        = make([]string, len(es))
		pipelines  = make([]string, len(es))
		statuses   = make([]string, len(es))
		inputs     = make([]*string, len(es))
		progress   = make([]*string, len(es))
		results    = make([]*string, len(es))
		errs       = make([]*string, len(es))
		attempts   = make([]int32, len(es))
		created    = make([]time.Time, len(es))
		started    = make([]*time.Time, len(es))
		finished   = make([]*time.Time, len(es))
		lastSeqs   = make([]int64, len(es))
		cancelReqs = make([]bool, len(es))
		tags       = make([]*string, len(es))
		batchIDs   = make([]*string, len(es))
		webhooks   = make([]*string, len(es))
		retryOfs   = make([]*string, len(es))
		runAts     = make([]*time.Time, len(es))
		// One element per tag of any execution.
		tagIDs, tagKeys, tagValues []string
	)
	for i, e := range es {
		p, err := progressColumn(e.Progress)
		if err != nil {
			return nil, err
		}
		if tags[i], err = tagsColumn(e.Tags); err != nil {
			return nil, err
		}
		if webhooks[i], err = store.WebhookColumn(e.Webhook); err != nil {
			return nil, err
		}
		ids[i], pipelines[i], statuses[i] = e.ID, e.Pipeline, string(e.Status)
		inputs[i], progress[i], results[i], errs[i] = jsonColumn(e.Input), p, jsonColumn(e.Result), errorColumn(e.Error)
		attempts[i], created[i], started[i], finished[i] = int32(e.Attempt), e.CreatedAt, e.StartedAt, e.FinishedAt
		lastSeqs[i], cancelReqs[i], batchIDs[i], retryOfs[i] = e.LastSeq, e.CancelRequested, e.BatchID, e.RetryOf
		runAts[i] = e.RunAt
		for k, v := range e.Tags {
			tagIDs, tagKeys, tagValues = append(tagIDs, e.ID), append(tagKeys, k), append(tagValues, v)
		}
	}
	return []any{ids, pipelines, statuses, inputs, progress, results, errs,
		attempts, created, started, finished, lastSeqs, cancelReqs, tags, batchIDs, tagIDs, tagKeys, tagValues, webhooks, retryOfs,
		runAts}, nil
}

// placeholder is the param function of store.ListQuery and BatchQuery:
// it adds v to args and returns its "$N".
func placeholder(args *[]any) func(v any) string {
	return func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
}

// tagsColumn is tags as a jsonb parameter, NULL when none.
func tagsColumn(t conveyor.Tags) (*string, error) {
	if len(t) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EINVALID, "tags cannot be stored: %v", err)
	}
	return ptr(string(b)), nil
}

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// conflict is the ECONFLICT of a batch that the unique index on id
// refused, naming the first execution of es that the batch holds twice or
// the store has already, as the SQLite backend does. Finding it costs a
// query, but only on this path and only for batches of more than one.
func (db *DB) conflict(ctx context.Context, es []*conveyor.Execution) error {
	if len(es) == 1 {
		return conveyor.Errorf(conveyor.ECONFLICT, "execution %q already exists", es[0].ID)
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	rows, err := db.pool.Query(ctx, sqlExistingIDs, ids)
	if err != nil {
		return conveyor.Errorf(conveyor.ECONFLICT, "an execution of the batch already exists")
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return conveyor.Errorf(conveyor.ECONFLICT, "an execution of the batch already exists")
	}
	seen := make(map[string]bool, len(es))
	for _, e := range es {
		switch {
		case seen[e.ID]:
			return conveyor.Errorf(conveyor.ECONFLICT, "execution %q appears more than once in the batch", e.ID)
		case slices.Contains(existing, e.ID):
			return conveyor.Errorf(conveyor.ECONFLICT, "execution %q already exists", e.ID)
		}
		seen[e.ID] = true
	}
	return conveyor.Errorf(conveyor.ECONFLICT, "an execution of the batch already exists")
}

// GetExecution implements conveyor.Store.
func (db *DB) GetExecution(ctx context.Context, id string) (*conveyor.Execution, error) {
	if err := conveyor.Lookup(id); err != nil {
		return nil, err
	}
	ex, _, err := scanExecution(db.pool.QueryRow(ctx, sqlGetExecution, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	var args []any
	query, limit, err := store.ListQuery(executionColumns, f, placeholder(&args))
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, storeError("list executions", err)
	}
	defer rows.Close()
	items, next, err := store.CollectPage(rows, limit, func(r store.Rows) (*conveyor.Execution, int64, error) { return scanExecution(r) })
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	return &conveyor.ExecutionPage{Executions: items, NextCursor: next}, nil
}

// CountPending implements conveyor.Store.
func (db *DB) CountPending(ctx context.Context, upTo int) (int, error) {
	if upTo <= 0 {
		return 0, nil
	}
	var n int
	if err := db.pool.QueryRow(ctx, sqlCountPending, upTo).Scan(&n); err != nil {
		return 0, storeError("count pending", err)
	}
	return n, nil
}

// ClaimPending implements conveyor.Store. The claimed executions run
// under this node's lease, until now plus Options.Lease. Claimers on other
// nodes skip the rows this one is claiming (SKIP LOCKED) instead of
// waiting for them. After the commit, and outside the claim's transaction,
// it notifies conveyor_events of the started events.
func (db *DB) ClaimPending(ctx context.Context, limit int, now func() time.Time) ([]conveyor.Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	claims, err := db.claim(ctx, limit, now)
	if err != nil {
		return nil, fmt.Errorf("claim executions: %w", err)
	}
	if len(claims) > 0 {
		marks := make([]eventMark, len(claims))
		for i, c := range claims {
			marks[i] = eventMark{c.Execution.ID, c.Started.Seq}
		}
		db.notifyEvents(ctx, marks)
	}
	return claims, nil
}

// claim runs the claim on a connection of its own, reading the time
// once it has one: a busy pool can keep a claim waiting for longer than
// it takes to submit an execution.
func (db *DB) claim(ctx context.Context, limit int, now func() time.Time) ([]conveyor.Claim, error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	at := storedTime(now())
	rows, err := conn.Query(ctx, sqlClaimPending, limit, at, db.node, at.Add(db.lease), at.Format(time.RFC3339Nano),
		conveyor.SeqReservation)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var claims []conveyor.Claim
	for rows.Next() {
		ex, _, err := scanExecution(rows)
		if err != nil {
			return nil, err
		}
		claims = append(claims, conveyor.Claim{Execution: ex, Started: conveyor.StartedEvent(ex, *ex.StartedAt)})
	}
	return claims, rows.Err()
}

// NextDue implements conveyor.Store.
func (db *DB) NextDue(ctx context.Context, after time.Time) (time.Time, error) {
	var due time.Time
	err := db.pool.QueryRow(ctx, sqlNextDue, after).Scan(&due)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, storeError("next due execution", err)
	}
	return due.UTC(), nil
}

// Cancel implements conveyor.Store. After the commit it notifies
// conveyor_cancel with the id of a running execution, so that the node
// running it stops it, or conveyor_events with the cancelled event of a
// pending one.
func (db *DB) Cancel(ctx context.Context, id string, now time.Time) (*conveyor.Execution, *conveyor.Event, error) {
	if err := conveyor.Lookup(id); err != nil {
		return nil, nil, err
	}
	now = storedTime(now)
	var (
		ex *conveyor.Execution
		ev *conveyor.Event
	)
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		ex, _, err = scanExecution(tx.QueryRow(ctx, sqlLockExecution, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return conveyor.ExecutionNotFound(id)
		}
		if err != nil {
			return err
		}
		if ev, err = ex.Cancel(now); err != nil {
			return err
		}
		if ev != nil {
			return finish(ctx, tx, ev)
		}
		_, err = tx.Exec(ctx, sqlRequestCancel, id)
		return err
	})
	if err != nil {
		return nil, nil, errorf("cancel execution", err)
	}
	if ev != nil {
		db.notifyEvents(ctx, []eventMark{{id, ev.Seq}})
	} else {
		db.notify(ctx, channelCancel, []string{id})
	}
	return ex, ev, nil
}

// RecoverInterrupted implements conveyor.Store for a database this node
// has to itself: every running execution is taken as interrupted,
// whichever node claimed it. Nodes sharing a database use RescueExpired.
func (db *DB) RecoverInterrupted(ctx context.Context, now time.Time, policy func(pipeline string) conveyor.RetryPolicy) ([]conveyor.Event, error) {
	evs, err := db.interrupt(ctx, sqlRunning, []any{}, now, policy, conveyor.NodeStopped)
	if err != nil {
		return nil, errorf("recover executions", err)
	}
	return evs, nil
}

// RescueExpired does what RecoverInterrupted does, but only for the
// running executions whose lease expired before now, whichever node held
// them. Executions another transaction holds are skipped, so nodes
// rescuing at once never both act on one.
func (db *DB) RescueExpired(ctx context.Context, now time.Time, policy func(pipeline string) conveyor.RetryPolicy) ([]conveyor.Event, error) {
	evs, err := db.interrupt(ctx, sqlExpired, []any{storedTime(now)}, now, policy, conveyor.LeaseExpired)
	if err != nil {
		return nil, errorf("rescue expired executions", err)
	}
	return evs, nil
}

// interrupt ends the attempt of every execution that query locks, as
// conveyor.Execution.Interrupt says. It returns the events appended,
// oldest execution first, and notifies conveyor_events of them after the
// commit.
func (db *DB) interrupt(ctx context.Context, query string, args []any, now time.Time, policy func(string) conveyor.RetryPolicy,
	why conveyor.Interruption) ([]conveyor.Event, error) {
	now = storedTime(now)
	type interrupted struct {
		num int64
		ev  conveyor.Event
	}
	var done []interrupted
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		done = done[:0]
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		var (
			exs  []*conveyor.Execution
			nums []int64
		)
		for rows.Next() {
			ex, num, err := scanExecution(rows)
			if err != nil {
				rows.Close()
				return err
			}
			exs, nums = append(exs, ex), append(nums, num)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i, ex := range exs {
			ev := ex.Interrupt(now, store.PolicyOf(policy, ex.Pipeline), why)
			if err := finish(ctx, tx, &ev); err != nil {
				return fmt.Errorf("execution %s: %w", ex.ID, err)
			}
			done = append(done, interrupted{nums[i], ev})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(done, func(a, b interrupted) int { return cmp.Compare(a.num, b.num) })
	evs := make([]conveyor.Event, len(done))
	marks := make([]eventMark, len(done))
	for i, d := range done {
		evs[i], marks[i] = d.ev, eventMark{d.ev.ExecutionID, d.ev.Seq}
	}
	db.notifyEvents(ctx, marks)
	return evs, nil
}

// finish persists ev, which ends an attempt without its runner (a cancel
// or an interruption: see conveyor.Execution.Cancel and Interrupt), and
// appends it, in tx.
func finish(ctx context.Context, tx pgx.Tx, ev *conveyor.Event) error {
	var err error
	if ev.Type == conveyor.EventRetrying {
		var progress *string
		if progress, err = progressColumn(ev.Progress); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sqlRequeue, ev.Seq, errorColumn(ev.Error), ev.ExecutionID, progress, ev.RetryAt)
	} else {
		_, err = tx.Exec(ctx, sqlFinish, string(ev.Status), ev.Time, ev.Seq, errorColumn(ev.Error), ev.ExecutionID)
	}
	if err != nil {
		return err
	}
	return insertEvent(ctx, tx, ev)
}

// RenewLeases extends to now plus Options.Lease the leases of the
// executions that run under this node, and raises their reserved seqs.
// The others are reported Lost: finished, back to pending after a rescue,
// or claimed by another node. Of those renewed, the ones with a cancel
// requested are reported CancelRequested, so the runner stops them even
// if the conveyor_cancel notification never arrived.
func (db *DB) RenewLeases(ctx context.Context, leases []conveyor.Lease, now time.Time) (conveyor.Renewal, error) {
	var r conveyor.Renewal
	if len(leases) == 0 {
		return r, nil
	}
	// One row per execution, with the highest reservation asked for it.
	var ids []string
	reserved := make(map[string]int64, len(leases))
	for _, l := range leases {
		if seq, ok := reserved[l.ExecutionID]; !ok {
			ids = append(ids, l.ExecutionID)
			reserved[l.ExecutionID] = l.SeqReserved
		} else {
			reserved[l.ExecutionID] = max(seq, l.SeqReserved)
		}
	}
	seqs := make([]int64, len(ids))
	for i, id := range ids {
		seqs[i] = reserved[id]
	}
	rows, err := db.pool.Query(ctx, sqlRenewLeases, ids, seqs, db.node, storedTime(now).Add(db.lease))
	if err != nil {
		return r, fmt.Errorf("renew leases: %w", err)
	}
	defer rows.Close()
	held := make(map[string]bool, len(ids))
	for rows.Next() {
		var (
			id        string
			cancelled bool
		)
		if err := rows.Scan(&id, &cancelled); err != nil {
			return r, fmt.Errorf("renew leases: %w", err)
		}
		held[id] = cancelled
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("renew leases: %w", err)
	}
	for _, id := range ids {
		cancelled, ok := held[id]
		switch {
		case !ok:
			r.Lost = append(r.Lost, id)
		case cancelled:
			r.CancelRequested = append(r.CancelRequested, id)
		}
	}
	return r, nil
}

// Column encodings: JSON travels as text, absent values as NULL, and
// times come back in UTC.

type scanner interface{ Scan(dest ...any) error }

// scanExecution reads executionColumns.
func scanExecution(sc scanner) (*conveyor.Execution, int64, error) {
	var (
		ex                             conveyor.Execution
		num                            int64
		status                         string
		input, progress, result, errJS []byte
		started, finished              *time.Time
		node                           *string
		tags, data, webhook            []byte
		stalled                        *time.Time
		checkpoint                     []byte
		runAt, retryAt                 *time.Time
	)
	err := sc.Scan(&num, &ex.ID, &ex.Pipeline, &status, &input, &progress, &result, &errJS,
		&ex.Attempt, &ex.CreatedAt, &started, &finished, &ex.LastSeq, &ex.CancelRequested, &node, &tags, &ex.BatchID, &ex.SeqReserved,
		&data, &stalled, &webhook, &ex.RetryOf, &ex.ResumeStep, &checkpoint, &runAt, &retryAt)
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
	if stalled != nil {
		t := stalled.UTC()
		ex.StalledSince = &t
	}
	if progress != nil {
		ex.Progress = new(conveyor.Progress)
		if err := json.Unmarshal(progress, ex.Progress); err != nil {
			return nil, 0, fmt.Errorf("execution %s: decode progress: %w", ex.ID, err)
		}
	}
	if errJS != nil {
		ex.Error = new(conveyor.Error)
		if err := json.Unmarshal(errJS, ex.Error); err != nil {
			return nil, 0, fmt.Errorf("execution %s: decode error: %w", ex.ID, err)
		}
	}
	ex.CreatedAt = ex.CreatedAt.UTC()
	if started != nil {
		t := started.UTC()
		ex.StartedAt = &t
	}
	if finished != nil {
		t := finished.UTC()
		ex.FinishedAt = &t
	}
	if node != nil {
		ex.Node = *node
	}
	ex.RunAt, ex.RetryAt = utcTime(runAt), utcTime(retryAt)
	return &ex, num, nil
}

// utcTime is *t in UTC, nil when t is.
func utcTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// storedTime is t as PostgreSQL keeps it, in UTC and whole microseconds,
// so the times the store makes are the same in the events it returns as
// in the executions it stores.
func storedTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// jsonColumn is a JSON value as a json or jsonb parameter: text, or NULL
// when empty.
func jsonColumn(b json.RawMessage) *string {
	if len(b) == 0 {
		return nil
	}
	return ptr(string(b))
}

func progressColumn(p *conveyor.Progress) (*string, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EINVALID, "progress cannot be stored: %v", err)
	}
	return ptr(string(b)), nil
}

func errorColumn(e *conveyor.Error) *string {
	if e == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil { // two strings always marshal
		panic(err)
	}
	return ptr(string(b))
}
