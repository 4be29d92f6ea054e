-- Batches: executions submitted together, counted as one.

CREATE TABLE batches (
    num         bigserial   PRIMARY KEY, -- list order and cursor
    id          text        NOT NULL UNIQUE,
    tags        jsonb,                   -- NULL when none
    total       integer     NOT NULL,
    -- How many members are in each status, kept by the trigger below in
    -- the transaction of every member's status change, so reading a
    -- batch never counts its members.
    pending     integer     NOT NULL,
    running     integer     NOT NULL DEFAULT 0,
    completed   integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    cancelled   integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz              -- when the last member became final
);

CREATE TABLE batch_tags (
    key   text   NOT NULL,
    value text   NOT NULL,
    num   bigint NOT NULL REFERENCES batches (num) ON DELETE CASCADE,
    PRIMARY KEY (key, value, num)
);
CREATE INDEX batch_tags_num ON batch_tags (num);

-- A batch's members newest first, and its running members (whose
-- percentages make the batch's progress).
CREATE INDEX executions_batch_num ON executions (batch_id, num) WHERE batch_id IS NOT NULL;
CREATE INDEX executions_batch_running ON executions (batch_id) WHERE status = 'running' AND batch_id IS NOT NULL;

-- Row locks: the trigger locks the batch after the member rows its
-- statement holds, and nothing locks a batch before its members, so
-- member updates and batch cancels never wait on each other in a cycle.
CREATE FUNCTION batch_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE batches SET
        pending   = pending   - (OLD.status = 'pending')::int   + (NEW.status = 'pending')::int,
        running   = running   - (OLD.status = 'running')::int   + (NEW.status = 'running')::int,
        completed = completed - (OLD.status = 'completed')::int + (NEW.status = 'completed')::int,
        failed    = failed    - (OLD.status = 'failed')::int    + (NEW.status = 'failed')::int,
        cancelled = cancelled - (OLD.status = 'cancelled')::int + (NEW.status = 'cancelled')::int,
        finished_at = CASE
            WHEN completed + failed + cancelled
                 - (OLD.status IN ('completed', 'failed', 'cancelled'))::int
                 + (NEW.status IN ('completed', 'failed', 'cancelled'))::int = total
            THEN coalesce(finished_at, NEW.finished_at)
            ELSE finished_at END
    WHERE id = NEW.batch_id;
    RETURN NULL;
END $$;

CREATE TRIGGER executions_batch_counts AFTER UPDATE OF status ON executions
    FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION batch_counts();

-- A resumed stream of many executions asks for those that finished
-- since it last heard: only finished ones are in this index.
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;
