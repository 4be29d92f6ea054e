-- The dashboard's throughput chart counts executions started per minute
-- over the last hour (Store.Throughput); without an index on started_at
-- that is a scan of every execution. Only started ones are in it.
CREATE INDEX executions_started ON executions (started_at) WHERE started_at IS NOT NULL;
