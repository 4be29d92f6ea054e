-- Executions, their event logs and their output lines.

CREATE TABLE executions (
    -- num is the submission order: lists go newest first by it, claims
    -- oldest first, and it is the list cursor. A sequence never hands out
    -- a number twice, so a cursor never comes to mean another execution.
    num              bigserial   PRIMARY KEY,
    id               text        NOT NULL UNIQUE,
    pipeline         text        NOT NULL,
    status           text        NOT NULL
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    -- json, not jsonb: the input and the result come back byte for byte
    -- as submitted, and json accepts every valid JSON text (jsonb refuses
    -- \u0000 in strings).
    input            json,
    progress         jsonb,      -- NULL before the first progress and after a retry
    result           json,
    error            jsonb,      -- {"code": ..., "message": ...}
    attempt          integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    last_seq         bigint      NOT NULL DEFAULT 0,
    cancel_requested boolean     NOT NULL DEFAULT false,
    -- The node that runs or last ran the execution, and until when its
    -- lease holds while it runs; another node rescues it after that.
    node             text,
    lease_until      timestamptz
) WITH (fillfactor = 80); -- room on each page for HOT updates: every event updates its execution

-- Claims walk the pending executions oldest first; the index holds only
-- them, so it stays small however many executions are finished.
CREATE INDEX executions_pending ON executions (num) WHERE status = 'pending';
-- Rescues look for running executions whose lease expired.
CREATE INDEX executions_status_lease ON executions (status, lease_until);
-- Lists filtered by status or pipeline, newest first.
CREATE INDEX executions_status_num ON executions (status, num);
CREATE INDEX executions_pipeline_num ON executions (pipeline, num);

-- The event log: the stored conveyor.Event as JSON, keyed the way it is
-- read, by execution and seq.
CREATE TABLE events (
    execution_id text   NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          bigint NOT NULL CHECK (seq > 0),
    type         text   NOT NULL,
    data         json   NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- Output lines; id is the order they arrived in. Each execution keeps its
-- newest conveyor.MaxLogLines.
CREATE TABLE logs (
    id           bigserial   PRIMARY KEY,
    execution_id text        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    time         timestamptz NOT NULL,
    step         text        NOT NULL,
    stream       text        NOT NULL,
    line         text        NOT NULL
);
CREATE INDEX logs_execution_id ON logs (execution_id, id);
