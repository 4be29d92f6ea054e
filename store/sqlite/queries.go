package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// All of the backend's SQL, except the schema (migrations/) and the
// list query built from these parts in listExecutions.

// executionColumns are what scanExecution reads, in its order.
const executionColumns = `num, id, pipeline, status, input, progress, result, error_code, error_message,
	attempt, created_at, started_at, finished_at, last_seq, cancel_requested, tags, batch_id, data, stalled_since, webhook,
	retry_of, resume_step, checkpoint, run_at, retry_at`

const (
	// An INSERT of executions: sqlInsertExecution, then a
	// sqlInsertExecutionRow for each row after the first, then
	// sqlInsertExecutionEnd (insertExecutionsSQL).
	sqlInsertExecution = `INSERT INTO executions
		(id, pipeline, status, input, progress, result, error_code, error_message,
		 attempt, created_at, started_at, finished_at, last_seq, cancel_requested, tags, batch_id, webhook, retry_of, run_at)
		VALUES ` + sqlInsertExecutionRow
	sqlInsertExecutionRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlInsertExecutionEnd = ` ON CONFLICT (id) DO NOTHING`

	sqlIDTaken = `SELECT count(*) FROM executions WHERE id = ?`

	// sqlInsertTagsSince makes the execution_tags rows of every execution
	// numbered ?1 or later from its tags column. CreateExecutions runs it
	// once, after its inserts, with the num of its first execution: the
	// writer's transaction holds the write lock, so those are exactly the
	// executions it inserted, and one statement costs far less than one per
	// tag (a batch of 10,000 executions with two tags each was 30,000
	// statements, now 10,001).
	sqlInsertTagsSince = `INSERT INTO execution_tags (key, value, num)
		SELECT t.key, t.value, e.num FROM executions e, json_each(e.tags) t
		WHERE e.num >= ?1 AND e.tags IS NOT NULL`

	sqlGetExecution = `SELECT ` + executionColumns + ` FROM executions WHERE id = ?`

	// The subqueries walk executions_waiting, by due time, up to ?1 (now),
	// and executions_ready, oldest first: at most ?2 entries of each.
	// The due ones go first (waited = 0). INDEXED BY, because without
	// statistics SQLite prefers executions_status_num, whose pending
	// entries include every waiting execution.
	sqlClaimPending = `UPDATE executions
		SET status = 'running', attempt = attempt + 1, started_at = max(?1, created_at), last_seq = last_seq + 1, retry_at = NULL
		WHERE num IN (SELECT num FROM (
				SELECT num, 0 AS waited FROM (SELECT num FROM executions INDEXED BY executions_waiting
					WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NOT NULL AND coalesce(retry_at, run_at) <= ?1
					ORDER BY coalesce(retry_at, run_at) LIMIT ?2)
				UNION ALL
				SELECT num, 1 FROM (SELECT num FROM executions INDEXED BY executions_ready
					WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NULL
					ORDER BY num LIMIT ?2))
			ORDER BY waited, num LIMIT ?2)
		RETURNING ` + executionColumns

	// Walks executions_waiting from ?1 to its first entry after it.
	sqlNextDue = `SELECT coalesce(retry_at, run_at) FROM executions INDEXED BY executions_waiting
		WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NOT NULL AND coalesce(retry_at, run_at) > ?1
		ORDER BY coalesce(retry_at, run_at) LIMIT 1`

	// Walks executions_status_num, and no further than ?1 rows of it.
	sqlCountPending = `SELECT count(*) FROM (SELECT 1 FROM executions WHERE status = 'pending' LIMIT ?1)`

	// Walks execution_tags' primary key, and no further than ?3 rows of
	// the tag.
	sqlCountTag = `SELECT count(*) FROM (SELECT 1 FROM execution_tags WHERE key = ?1 AND value = ?2 LIMIT ?3)`

	sqlRunning = `SELECT ` + executionColumns + ` FROM executions WHERE status = 'running' ORDER BY num`

	// The fenced writes of Append. Each applies only to the current
	// attempt of a running execution, and only to a seq after the last one
	// (a replayed write is dropped rather than failing the batch on the
	// events primary key); a write that matches no row is dropped.
	// Progress, data and stalled events: each sets stalled_since (?6),
	// NULL but for a stalled event (conveyor.Event.StalledSince).
	sqlAppendProgress = `UPDATE executions SET last_seq = ?1, progress = coalesce(?2, progress),
		data = coalesce(?5, data), stalled_since = ?6` + fenceProgress
	fenceProgress = ` WHERE id = ?3 AND attempt = ?4 AND status = 'running' AND last_seq < ?1`

	sqlAppendFinal = `UPDATE executions SET last_seq = ?1, status = ?2, finished_at = ?3,
		progress = coalesce(?4, progress), error_code = ?5, error_message = ?6, result = ?7,
		stalled_since = NULL` + fenceFinal
	fenceFinal = ` WHERE id = ?8 AND attempt = ?9 AND status = 'running' AND last_seq < ?1`

	// A completed write is refused while a cancel is requested: Append
	// then writes it as cancelled (conveyor.Event.CancelInstead).
	sqlAppendCompleted = sqlAppendFinal + ` AND NOT cancel_requested`

	// The retrying event's progress (?6) is the next attempt's, NULL
	// unless it resumes (conveyor.Execution.Resumable).
	sqlAppendRetrying = `UPDATE executions SET last_seq = ?1, status = 'pending', progress = ?6,
		error_code = ?2, error_message = ?3, stalled_since = NULL, retry_at = ?7` + fenceRetrying
	fenceRetrying = ` WHERE id = ?4 AND attempt = ?5 AND status = 'running' AND last_seq < ?1`

	// The fenced write of SaveCheckpoints, as Append's.
	sqlSaveCheckpoint = `UPDATE executions SET resume_step = ?1, checkpoint = ?2
		WHERE id = ?3 AND attempt = ?4 AND status = 'running'`

	sqlInsertEvent = `INSERT INTO events (execution_id, seq, type, data) VALUES (?, ?, ?, ?)`

	sqlEvents = `SELECT data FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?`

	// Cancel and RecoverInterrupted set the status unfenced: they run in
	// the transaction that read the row.
	sqlRequestCancel = `UPDATE executions SET cancel_requested = 1 WHERE id = ?`

	sqlFinish = `UPDATE executions SET status = ?1, finished_at = ?2, last_seq = ?3,
		error_code = ?4, error_message = ?5, result = NULL, stalled_since = NULL, retry_at = NULL WHERE id = ?6`

	sqlRequeue = `UPDATE executions SET status = 'pending', last_seq = ?1, progress = ?5,
		error_code = ?2, error_message = ?3, stalled_since = NULL, retry_at = ?6 WHERE id = ?4`

	// Lines of unknown executions are dropped, like writes of Append.
	sqlInsertLog = `INSERT INTO logs (execution_id, time, attempt, step, stream, line)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM executions WHERE id = ?1)`

	// Deletes all but the newest ?2 lines; the subquery is NULL, and
	// nothing goes, while there are no more than that.
	sqlTrimLogs = `DELETE FROM logs WHERE execution_id = ?1 AND id <=
		(SELECT id FROM logs WHERE execution_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`

	sqlLogs = `SELECT id, time, attempt, step, stream, line FROM logs WHERE execution_id = ? AND id > ? ORDER BY id`
)

// statements are prepared once. Those on the writer are reused by every
// transaction (Tx.StmtContext finds them prepared on its one connection).
type statements struct {
	list []*sql.Stmt // everything prepared, for close

	insertTagsSince  *sql.Stmt
	insertExecution  *sql.Stmt // one row
	insertExecutions *sql.Stmt // insertRows rows
	claimPending     *sql.Stmt
	appendProgress   *sql.Stmt
	appendFinal      *sql.Stmt
	appendCompleted  *sql.Stmt
	appendRetrying   *sql.Stmt
	saveCheckpoint   *sql.Stmt
	insertEvent      *sql.Stmt
	insertLog        *sql.Stmt
	trimLogs         *sql.Stmt

	getExecution *sql.Stmt // readers
	events       *sql.Stmt // readers
}

func (st *statements) prepare(ctx context.Context, w, r *sql.DB) error {
	for _, s := range []struct {
		db    *sql.DB
		dst   **sql.Stmt
		query string
	}{
		{w, &st.insertExecution, insertExecutionsSQL(1)},
		{w, &st.insertExecutions, insertExecutionsSQL(insertRows)},
		{w, &st.insertTagsSince, sqlInsertTagsSince},
		{w, &st.claimPending, sqlClaimPending},
		{w, &st.appendProgress, sqlAppendProgress},
		{w, &st.appendFinal, sqlAppendFinal},
		{w, &st.appendCompleted, sqlAppendCompleted},
		{w, &st.appendRetrying, sqlAppendRetrying},
		{w, &st.saveCheckpoint, sqlSaveCheckpoint},
		{w, &st.insertEvent, sqlInsertEvent},
		{w, &st.insertLog, sqlInsertLog},
		{w, &st.trimLogs, sqlTrimLogs},
		{r, &st.getExecution, sqlGetExecution},
		{r, &st.events, sqlEvents},
	} {
		stmt, err := s.db.PrepareContext(ctx, s.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", s.query, err)
		}
		*s.dst = stmt
		st.list = append(st.list, stmt)
	}
	return nil
}

func (st *statements) close() error {
	var errs []error
	for _, s := range st.list {
		errs = append(errs, s.Close())
	}
	st.list = nil
	return errors.Join(errs...)
}
