-- Tags of executions, and the batch an execution was submitted in.

ALTER TABLE executions
    ADD COLUMN tags     jsonb, -- NULL when none
    ADD COLUMN batch_id text;  -- NULL when not in a batch

-- One row per tag, keyed the way a tag filter reads it: the executions
-- with one key and value, newest first (ListExecutions drives its scan
-- from here when it filters by tag).
CREATE TABLE execution_tags (
    key   text   NOT NULL,
    value text   NOT NULL,
    num   bigint NOT NULL REFERENCES executions (num) ON DELETE CASCADE,
    PRIMARY KEY (key, value, num)
);
CREATE INDEX execution_tags_num ON execution_tags (num); -- deletes of executions
