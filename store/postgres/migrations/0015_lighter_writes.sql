-- Less work per execution on the hot path: each claim and each completion
-- of a batch of executions is one statement, but PostgreSQL spent most of
-- its time on work done once per row of it (docs/benchmarks.md, "Less work
-- per row").

-- Deliveries once per statement. The row-level trigger ran its function
-- once for every claimed or finished execution, even with no webhook to
-- deliver to. Now it runs once per UPDATE of executions and finds the
-- changes in the statement's transition tables; it keeps the rule and the
-- order of the row-level one (by execution, then event, then webhook),
-- and still fires before executions_batch_counts (name order), so a
-- member's delivery comes before its batch's.
CREATE OR REPLACE FUNCTION add_execution_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stamp timestamptz := clock_timestamp();
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE disabled_at IS NULL)
        AND NOT EXISTS (SELECT 1 FROM changed_new WHERE webhook IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (id, webhook_id, url, host, event_type, execution_id, created_at, next_attempt_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), s.id, s.url, s.host, ev.type, n.id, stamp, stamp
    FROM changed_new n
    JOIN changed_old o ON o.num = n.num
    CROSS JOIN LATERAL (
        SELECT 'execution.progress' AS type, t.pct AS ord
        FROM (VALUES (25), (50), (75)) AS t(pct)
        WHERE coalesce((o.progress->>'percentage')::float8, 0) < t.pct
          AND (n.progress->>'percentage')::float8 >= t.pct
        UNION ALL
        SELECT 'execution.stalled', 100
        WHERE o.stalled_since IS NULL AND n.stalled_since IS NOT NULL
        UNION ALL
        SELECT CASE n.status WHEN 'running' THEN 'execution.started' WHEN 'pending' THEN 'execution.retrying'
            ELSE 'execution.' || n.status END, 200
        WHERE o.status IS DISTINCT FROM n.status
    ) ev
    JOIN LATERAL (
        SELECT w.num AS ord, w.id, w.url, w.host, w.events FROM webhooks w
        WHERE w.disabled_at IS NULL
          AND (w.pipeline IS NULL OR w.pipeline = n.pipeline)
          AND (w.tags IS NULL OR coalesce(n.tags, '{}') @> w.tags)
        UNION ALL
        SELECT 0, NULL, n.webhook->>'url', n.webhook->>'host',
            ARRAY(SELECT jsonb_array_elements_text(n.webhook->'events'))
        WHERE n.webhook IS NOT NULL
    ) s ON ev.type = ANY (s.events)
    ORDER BY n.num, ev.ord, s.ord;
    RETURN NULL;
END $$;

DROP TRIGGER executions_add_deliveries ON executions;
CREATE TRIGGER executions_add_deliveries AFTER UPDATE ON executions
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION add_execution_deliveries();

-- Events without a foreign key to their execution: checking it was a
-- lookup of the execution per event, two per run. Every statement that
-- writes events holds the lock of each event's execution row, and
-- deleteExecutions deletes the events first, by their primary key. (Log
-- lines keep theirs: they are written without that lock.)
ALTER TABLE events DROP CONSTRAINT events_execution_id_fkey;

-- Two indexes fewer to write. executions_pending duplicated the first
-- columns of executions_status_num, which now serves CountPending. Leases
-- are read only for running executions (sqlExpired), so only they need an
-- entry, not every version of every execution.
DROP INDEX executions_pending;
DROP INDEX executions_status_lease;
CREATE INDEX executions_lease ON executions (lease_until) WHERE status = 'running';
