-- The id of the final execution an execution retries as new
-- (POST /executions/{id}/retry); NULL otherwise. No foreign key: the
-- original may be deleted before its retry.
ALTER TABLE executions ADD COLUMN retry_of TEXT;
