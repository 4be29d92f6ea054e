-- Executions, their event logs and their output lines.

CREATE TABLE executions (
    -- num is the submission order: lists go newest first by it, claims
    -- oldest first, and it is the list cursor. AUTOINCREMENT never reuses a
    -- number, so a cursor never comes to mean another execution.
    num              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    pipeline         TEXT    NOT NULL,
    status           TEXT    NOT NULL
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    input            TEXT,             -- JSON
    progress         TEXT,             -- JSON; NULL before the first progress and after a retry
    result           TEXT,             -- JSON
    error_code       TEXT,
    error_message    TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL, -- times are Unix nanoseconds
    started_at       INTEGER,
    finished_at      INTEGER,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1))
);

-- Claims (pending, oldest first), crash recovery (running) and lists
-- filtered by status (newest first) walk this index.
CREATE INDEX executions_status_num ON executions (status, num);
CREATE INDEX executions_pipeline_num ON executions (pipeline, num);

-- The event log: the stored conveyor.Event as JSON, keyed the way it is
-- read, by execution and seq.
CREATE TABLE events (
    execution_id TEXT    NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL CHECK (seq > 0),
    type         TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

-- Output lines; id is the order they arrived in. Each execution keeps its
-- newest conveyor.MaxLogLines.
CREATE TABLE logs (
    id           INTEGER PRIMARY KEY,
    execution_id TEXT    NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    time         INTEGER NOT NULL,
    step         TEXT    NOT NULL,
    stream       TEXT    NOT NULL,
    line         TEXT    NOT NULL
);
CREATE INDEX logs_execution_id ON logs (execution_id, id);
