-- An execution's free-form data (conveyor.Execution.Data, a JSON object
-- kept whole: every data event carries all of it) and, while its running
-- step is stalled, since when (Unix nanoseconds).
ALTER TABLE executions ADD COLUMN data TEXT;
ALTER TABLE executions ADD COLUMN stalled_since INTEGER;
