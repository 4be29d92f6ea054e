-- An execution's free-form data (conveyor.Execution.Data, a JSON object
-- kept whole: every data event carries all of it; json like input and
-- result, which keeps every valid JSON text) and, while its running step
-- is stalled, since when.
ALTER TABLE executions ADD COLUMN data json;
ALTER TABLE executions ADD COLUMN stalled_since timestamptz;
