-- Delayed runs and retry backoff: when a pending execution may start.
-- run_at is when it was submitted to start (NULL: at once), kept once it
-- started; retry_at, while it waits to retry, when its next attempt may
-- start. Claims take none before coalesce(retry_at, run_at), its due time.
ALTER TABLE executions ADD COLUMN run_at INTEGER;
ALTER TABLE executions ADD COLUMN retry_at INTEGER;

-- Claims read two partial indexes, so that neither kind of pending
-- execution costs a scan of the other: those that may start at once,
-- oldest first, and those that wait, by due time.
CREATE INDEX executions_ready ON executions (num)
    WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NULL;
CREATE INDEX executions_waiting ON executions (coalesce(retry_at, run_at))
    WHERE status = 'pending' AND coalesce(retry_at, run_at) IS NOT NULL;
