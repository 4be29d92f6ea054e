-- Tags of executions, and the batch an execution was submitted in.

ALTER TABLE executions ADD COLUMN tags TEXT;     -- JSON object; NULL when none
ALTER TABLE executions ADD COLUMN batch_id TEXT; -- NULL when not in a batch

-- One row per tag, keyed the way a tag filter reads it: the executions
-- with one key and value, newest first (ListExecutions drives its scan
-- from here when it filters by tag).
CREATE TABLE execution_tags (
    key   TEXT    NOT NULL,
    value TEXT    NOT NULL,
    num   INTEGER NOT NULL REFERENCES executions (num) ON DELETE CASCADE,
    PRIMARY KEY (key, value, num)
) WITHOUT ROWID;
CREATE INDEX execution_tags_num ON execution_tags (num); -- deletes of executions
