package postgres

// All of the backend's SQL, except the schema (migrations/) and the list
// query built from these parts in ListExecutions.
//
// Row locks: every statement that locks several executions takes them in
// id order (or skips locked ones), so two transactions never wait on each
// other in a cycle. FOR NO KEY UPDATE, not FOR UPDATE, so the foreign key
// checks of concurrent event and log inserts (KEY SHARE) do not wait.

// executionColumns are what scanExecution reads, in its order.
const executionColumns = `num, id, pipeline, status, input, progress, result, error,
	attempt, created_at, started_at, finished_at, last_seq, cancel_requested, node, tags, batch_id, seq_reserved,
	data, stalled_since, webhook, retry_of, resume_step, checkpoint, run_at, retry_at`

const (
	// sqlInsertExecutions inserts a batch of new executions (parallel
	// arrays) in one statement, numbered in batch order. No ON CONFLICT: an
	// id that exists or comes twice fails the whole statement with a unique
	// violation, so the batch goes in all or nothing without a transaction
	// of its own; sqlExistingIDs then tells which id it was.
	//
	// Tags come as three more parallel arrays ($16-$18: execution id,
	// key, value), one element per tag, inserted with the num each
	// execution got. $19 to $21 (webhook, retry_of, run_at) came later,
	// one element per execution like $1-$15.
	sqlInsertExecutions = `WITH inserted AS (
			INSERT INTO executions
			(id, pipeline, status, input, progress, result, error,
			 attempt, created_at, started_at, finished_at, last_seq, cancel_requested, tags, batch_id, webhook, retry_of, run_at)
			SELECT n.id, n.pipeline, n.status, n.input::json, n.progress::jsonb, n.result::json, n.error::jsonb,
				n.attempt, n.created_at, n.started_at, n.finished_at, n.last_seq, n.cancel_requested,
				n.tags::jsonb, n.batch_id, n.webhook::jsonb, n.retry_of, n.run_at
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
				$8::integer[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::bigint[], $13::boolean[],
				$14::text[], $15::text[], $19::text[], $20::text[], $21::timestamptz[])
				WITH ORDINALITY AS n(id, pipeline, status, input, progress, result, error,
					attempt, created_at, started_at, finished_at, last_seq, cancel_requested, tags, batch_id, webhook, retry_of,
					run_at, ord)
			ORDER BY n.ord
			RETURNING num, id
		)
		INSERT INTO execution_tags (key, value, num)
		SELECT t.key, t.value, inserted.num
		FROM unnest($16::text[], $17::text[], $18::text[]) AS t(id, key, value)
		JOIN inserted ON inserted.id = t.id`

	sqlExistingIDs = `SELECT id FROM executions WHERE id = ANY($1::text[])`

	// Walks executions_status_num's pending entries, and no further than $1
	// entries of it.
	sqlCountPending = `SELECT count(*) FROM (SELECT 1 FROM executions WHERE status = 'pending' LIMIT $1) AS p`

	sqlGetExecution = `SELECT ` + executionColumns + ` FROM executions WHERE id = $1`

	// Walks executions_waiting from $1 to its first entry after it.
	sqlNextDue = `SELECT coalesce(retry_at, run_at) FROM executions
		WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NOT NULL AND coalesce(retry_at, run_at) > $1
		ORDER BY coalesce(retry_at, run_at) LIMIT 1`

	// One statement, so one round trip and an implicit transaction: lock
	// the pending executions no other claimer holds, those due by $2
	// (now) first, earliest due first (the partial index
	// executions_waiting), then the oldest that may start at once
	// (executions_ready), $1 in all; start them under this node's lease
	// and append their started events, built here as conveyor.Event JSON
	// (the timestamp in RFC 3339 with microseconds when it is created_at,
	// later than $2: see conveyor.Store.ClaimPending). The update finds
	// the claimed rows by primary key (= ANY of an array): joined to the
	// CTE, which may hold any number up to $1 as far as the planner knows,
	// it was planned as a hash of the whole table with a backlog.
	sqlClaimPending = `WITH due AS MATERIALIZED (
			SELECT num FROM executions
			WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NOT NULL AND coalesce(retry_at, run_at) <= $2
			ORDER BY coalesce(retry_at, run_at) LIMIT $1
			FOR NO KEY UPDATE SKIP LOCKED
		), ready AS MATERIALIZED (
			SELECT num FROM executions
			WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NULL
			ORDER BY num LIMIT $1 - (SELECT count(*) FROM due)
			FOR NO KEY UPDATE SKIP LOCKED
		), claimed AS (
			SELECT num FROM due UNION ALL SELECT num FROM ready
		), started AS (
			UPDATE executions e
			SET status = 'running', attempt = e.attempt + 1, started_at = greatest($2, e.created_at),
				last_seq = e.last_seq + 1, node = $3, lease_until = $4, seq_reserved = e.last_seq + 1 + $6, retry_at = NULL
			WHERE e.num = ANY (ARRAY(SELECT num FROM claimed))
			RETURNING e.*
		), inserted AS (
			INSERT INTO events (execution_id, seq, type, data)
			SELECT id, last_seq, 'started', json_build_object(
				'type', 'started', 'execution_id', id, 'seq', last_seq,
				'timestamp', CASE WHEN started_at = $2 THEN $5::text
					ELSE to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
				'attempt', attempt, 'status', 'running')
			FROM started
		)
		SELECT ` + executionColumns + ` FROM started ORDER BY num`

	// sqlAppend applies a batch of writes (parallel arrays, in batch order)
	// in one statement. Which writes end the attempt, and with which
	// status, the caller says ($12, NULL for writes that do not); the
	// lifecycle rules stay in Go. A write is accepted when its execution is running
	// the write's attempt, its seq is after both LastSeq and every earlier
	// write of that attempt in the batch, and no earlier accepted write of
	// the execution ended the attempt. That is exactly applying the writes
	// one by one with a fenced UPDATE each, as the SQLite backend does,
	// without a round trip per write. Accepted writes are stored; each
	// execution then takes its newest seq, its newest progress and the
	// outcome of the write that ended the attempt, if one did. A completed
	// write to an execution with a cancel requested is stored as the
	// cancelled event the caller encoded beside it ($10, $11). It returns
	// each changed execution's id, new LastSeq and status, for the
	// notification and to tell the caller which writes became cancelled,
	// and the batch positions (ord, from 1) of its writes that were
	// accepted: the others were dropped.
	sqlAppend = `WITH w AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::text[],
				$5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::text[],
				$13::text[], $14::timestamptz[], $15::timestamptz[])
				WITH ORDINALITY AS w(id, seq, attempt, type, data, progress, error, result, time,
					cancelled_data, cancelled_progress, status, exec_data, stalled_since, retry_at, ord)
		), x AS (
			-- Only by id, so that the unique index on id finds the rows
			-- whatever the planner thinks of the share of running ones.
			SELECT id, status, attempt, last_seq, cancel_requested FROM executions
			WHERE id = ANY($1::text[])
			ORDER BY id
			FOR NO KEY UPDATE
		), fenced AS (
			SELECT w.id, w.seq, w.attempt, w.ord, w.error, w.time, w.exec_data, w.stalled_since, w.retry_at,
				CASE WHEN c.cancelled THEN 'cancelled' ELSE w.type END AS type,
				CASE WHEN c.cancelled THEN 'cancelled' ELSE w.status END AS status,
				CASE WHEN c.cancelled THEN w.cancelled_data ELSE w.data END AS data,
				CASE WHEN c.cancelled THEN w.cancelled_progress ELSE w.progress END AS progress,
				CASE WHEN c.cancelled THEN NULL ELSE w.result END AS result,
				greatest(x.last_seq, max(w.seq) OVER before) AS floor
			FROM w JOIN x ON x.id = w.id AND x.attempt = w.attempt AND x.status = 'running',
				LATERAL (SELECT w.status = 'completed' AND x.cancel_requested AS cancelled) c
			WINDOW before AS (PARTITION BY w.id ORDER BY w.ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
		), ordered AS (
			SELECT fenced.*, count(status) OVER before AS ended
			FROM fenced WHERE seq > floor
			WINDOW before AS (PARTITION BY id ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
		), accepted AS (
			SELECT * FROM ordered WHERE ended = 0
		), inserted AS (
			INSERT INTO events (execution_id, seq, type, data)
			SELECT id, seq, type, data::json FROM accepted
		), outcome AS MATERIALIZED (
			SELECT id, attempt, max(seq) AS last_seq, array_agg(ord) AS ords,
				(array_agg(progress ORDER BY ord DESC) FILTER (WHERE progress IS NOT NULL))[1] AS progress,
				(array_agg(status) FILTER (WHERE status IS NOT NULL))[1] AS status,
				(array_agg(error) FILTER (WHERE status IS NOT NULL))[1] AS error,
				(array_agg(result) FILTER (WHERE status IS NOT NULL))[1] AS result,
				(array_agg(time) FILTER (WHERE status IS NOT NULL))[1] AS time,
				-- A retrying write's progress is the next attempt's.
				(array_agg(progress) FILTER (WHERE status IS NOT NULL))[1] AS end_progress,
				(array_agg(retry_at) FILTER (WHERE status IS NOT NULL))[1] AS retry_at,
				(array_agg(exec_data ORDER BY ord DESC) FILTER (WHERE exec_data IS NOT NULL))[1] AS exec_data,
				-- The newest write's: NULL but for a stalled event.
				(array_agg(stalled_since ORDER BY ord DESC))[1] AS stalled_since
			FROM accepted GROUP BY id, attempt
		)
		UPDATE executions e SET
			last_seq = o.last_seq,
			status = coalesce(o.status, e.status),
			progress = CASE WHEN o.status = 'pending' THEN o.end_progress::jsonb ELSE coalesce(o.progress::jsonb, e.progress) END,
			error = CASE WHEN o.status IS NULL THEN e.error ELSE o.error::jsonb END,
			result = CASE WHEN o.status IS NULL OR o.status = 'pending' THEN e.result ELSE o.result::json END,
			finished_at = CASE WHEN o.status IS NULL OR o.status = 'pending' THEN e.finished_at ELSE o.time END,
			lease_until = CASE WHEN o.status IS NULL THEN e.lease_until END,
			data = coalesce(o.exec_data::json, e.data),
			stalled_since = o.stalled_since,
			-- Set by a retrying write, NULL after any other that ends the attempt.
			retry_at = CASE WHEN o.status IS NULL THEN e.retry_at ELSE o.retry_at END
		FROM outcome o
		-- x locked these rows, running this attempt, for the whole statement.
		WHERE e.id = o.id
		RETURNING e.id, e.last_seq, e.status, o.ords`

	sqlEvents = `SELECT data FROM events WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`

	sqlLockExecution = `SELECT ` + executionColumns + ` FROM executions WHERE id = $1 FOR NO KEY UPDATE`

	// Cancel, RecoverInterrupted and RescueExpired set the status
	// unfenced: they run in the transaction that locked the row.
	sqlRequestCancel = `UPDATE executions SET cancel_requested = true WHERE id = $1`

	sqlFinish = `UPDATE executions SET status = $1, finished_at = $2, last_seq = $3,
		error = $4, result = NULL, lease_until = NULL, stalled_since = NULL, retry_at = NULL WHERE id = $5`

	sqlRequeue = `UPDATE executions SET status = 'pending', last_seq = $1, progress = $4::jsonb,
		error = $2, lease_until = NULL, stalled_since = NULL, retry_at = $5 WHERE id = $3`

	// sqlSaveCheckpoints applies a batch of checkpoint writes (parallel
	// arrays, in batch order) in one statement: each execution takes the
	// last write of its running attempt; the others are fenced off, as
	// sqlAppend's. It returns the executions and attempts that took one.
	sqlSaveCheckpoints = `WITH w AS (
			SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[], $4::text[])
				WITH ORDINALITY AS w(id, attempt, step, checkpoint, ord)
		), x AS (
			SELECT id, attempt FROM executions
			WHERE id = ANY($1::text[]) AND status = 'running'
			ORDER BY id
			FOR NO KEY UPDATE
		), last AS (
			SELECT DISTINCT ON (w.id) w.id, w.attempt, w.step, w.checkpoint
			FROM w JOIN x ON x.id = w.id AND x.attempt = w.attempt
			ORDER BY w.id, w.ord DESC
		)
		UPDATE executions e SET resume_step = last.step, checkpoint = last.checkpoint::json
		FROM last WHERE e.id = last.id
		RETURNING e.id, last.attempt`

	sqlInsertEvent = `INSERT INTO events (execution_id, seq, type, data) VALUES ($1, $2, $3, $4)`

	// Both lock in id order; RecoverInterrupted waits for rows another
	// transaction holds, RescueExpired skips them (another node is
	// rescuing them, or their runner is writing, which it cannot do
	// without a lease that is still good).
	sqlRunning = `SELECT ` + executionColumns + ` FROM executions WHERE status = 'running'
		ORDER BY id FOR NO KEY UPDATE`
	sqlExpired = `SELECT ` + executionColumns + ` FROM executions WHERE status = 'running' AND lease_until < $1
		ORDER BY id FOR NO KEY UPDATE SKIP LOCKED`

	sqlRenewLeases = `WITH held AS (
			SELECT e.num, l.seq FROM executions e
			JOIN unnest($1::text[], $2::bigint[]) AS l(id, seq) ON l.id = e.id
			WHERE e.status = 'running' AND e.node = $3
			ORDER BY e.id FOR NO KEY UPDATE OF e
		)
		UPDATE executions e SET lease_until = $4, seq_reserved = greatest(e.seq_reserved, held.seq)
		FROM held WHERE e.num = held.num
		RETURNING e.id, e.cancel_requested`

	// Lines of unknown executions are dropped, like writes of Append; the
	// rest go in batch order, which the id sequence keeps.
	sqlInsertLogs = `INSERT INTO logs (execution_id, time, attempt, step, stream, line)
		SELECT l.id, l.time, l.attempt, l.step, l.stream, l.line
		FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::text[], $5::text[], $6::text[])
			WITH ORDINALITY AS l(id, time, attempt, step, stream, line, ord)
		WHERE EXISTS (SELECT 1 FROM executions e WHERE e.id = l.id)
		ORDER BY l.ord`

	// Deletes all but the newest $2 lines of each execution in $1; the
	// cut is NULL, and nothing goes, while there are no more than that.
	sqlTrimLogs = `DELETE FROM logs USING (
			SELECT x.id, (SELECT l.id FROM logs l WHERE l.execution_id = x.id
				ORDER BY l.id DESC OFFSET $2 LIMIT 1) AS cut
			FROM unnest($1::text[]) AS x(id)
		) c
		WHERE logs.execution_id = c.id AND logs.id <= c.cut`

	sqlLogs = `SELECT id, time, attempt, step, stream, line FROM logs WHERE execution_id = $1 AND id > $2 ORDER BY id`

	sqlNotify = `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`
)

// The notification channels.
const (
	channelSubmitted = "conveyor_submitted"
	channelEvents    = "conveyor_events"
	// channelLive carries the events a node publishes, themselves
	// (Announce): lines of "prev event-JSON".
	channelLive   = "conveyor_live"
	channelCancel = "conveyor_cancel"
	channelLogs   = "conveyor_logs"
	// channelHello carries each listening node's hello: "1" when it has
	// streams open, "0" when not (peers.go).
	channelHello = "conveyor_hello"
)
