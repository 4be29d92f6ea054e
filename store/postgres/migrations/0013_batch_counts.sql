-- Batch counts once per statement, not once per member. The row-level
-- trigger updated a batch's row once for every member a statement moved
-- (a claim of 256 members: 256 versions of one row in one transaction),
-- and claims and completions of one batch queued behind each other on
-- that row until their commits. Now each statement that changes the
-- status of members updates each of their batches once, with the sums of
-- the changes, from the statement's transition tables. The row lock
-- order is unchanged: a batch's row after the member rows.
CREATE OR REPLACE FUNCTION batch_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE batches b SET
        pending   = b.pending   + d.pending,
        running   = b.running   + d.running,
        completed = b.completed + d.completed,
        failed    = b.failed    + d.failed,
        cancelled = b.cancelled + d.cancelled,
        finished_at = CASE
            WHEN b.completed + d.completed + b.failed + d.failed + b.cancelled + d.cancelled = b.total
            THEN coalesce(b.finished_at, d.finished_at)
            ELSE b.finished_at END
    FROM (
        SELECT n.batch_id,
            sum((n.status = 'pending')::int   - (o.status = 'pending')::int)   AS pending,
            sum((n.status = 'running')::int   - (o.status = 'running')::int)   AS running,
            sum((n.status = 'completed')::int - (o.status = 'completed')::int) AS completed,
            sum((n.status = 'failed')::int    - (o.status = 'failed')::int)    AS failed,
            sum((n.status = 'cancelled')::int - (o.status = 'cancelled')::int) AS cancelled,
            max(n.finished_at) AS finished_at
        FROM changed_new n JOIN changed_old o ON o.num = n.num
        WHERE n.batch_id IS NOT NULL AND n.status IS DISTINCT FROM o.status
        GROUP BY n.batch_id
    ) d
    WHERE b.id = d.batch_id;
    RETURN NULL;
END $$;

-- Transition tables cannot go with a column list (UPDATE OF status):
-- the trigger runs after every UPDATE of executions, and finds nothing
-- to do in those that change no member's status.
DROP TRIGGER executions_batch_counts ON executions;
CREATE TRIGGER executions_batch_counts AFTER UPDATE ON executions
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION batch_counts();
