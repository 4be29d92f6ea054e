-- Batches: executions submitted together, counted as one.

CREATE TABLE batches (
    num         INTEGER PRIMARY KEY AUTOINCREMENT, -- list order and cursor
    id          TEXT    NOT NULL UNIQUE,
    tags        TEXT,                              -- JSON object; NULL when none
    total       INTEGER NOT NULL,
    -- How many members are in each status, kept by the trigger below in
    -- the transaction of every member's status change, so reading a
    -- batch never counts its members.
    pending     INTEGER NOT NULL,
    running     INTEGER NOT NULL DEFAULT 0,
    completed   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    cancelled   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER                            -- when the last member became final
);

CREATE TABLE batch_tags (
    key   TEXT    NOT NULL,
    value TEXT    NOT NULL,
    num   INTEGER NOT NULL REFERENCES batches (num) ON DELETE CASCADE,
    PRIMARY KEY (key, value, num)
) WITHOUT ROWID;

-- A batch's members newest first, and its running members (whose
-- percentages make the batch's progress).
CREATE INDEX executions_batch_num ON executions (batch_id, num) WHERE batch_id IS NOT NULL;
CREATE INDEX executions_batch_running ON executions (batch_id) WHERE status = 'running' AND batch_id IS NOT NULL;

CREATE TRIGGER executions_batch_counts AFTER UPDATE OF status ON executions
WHEN NEW.batch_id IS NOT NULL AND OLD.status <> NEW.status
BEGIN
    UPDATE batches SET
        pending   = pending   - (OLD.status = 'pending')   + (NEW.status = 'pending'),
        running   = running   - (OLD.status = 'running')   + (NEW.status = 'running'),
        completed = completed - (OLD.status = 'completed') + (NEW.status = 'completed'),
        failed    = failed    - (OLD.status = 'failed')    + (NEW.status = 'failed'),
        cancelled = cancelled - (OLD.status = 'cancelled') + (NEW.status = 'cancelled')
    WHERE id = NEW.batch_id;
    UPDATE batches SET finished_at = NEW.finished_at
    WHERE id = NEW.batch_id AND finished_at IS NULL AND completed + failed + cancelled = total;
END;

-- A resumed stream of many executions asks for those that finished
-- since it last heard: only finished ones are in this index.
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;
