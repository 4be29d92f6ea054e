-- Idempotency-Keys of submissions (conveyor.Idempotency): each names the
-- execution or the batch its first request created, for
-- conveyor.IdempotencyTTL. Written in the transaction that creates what
-- it names; expired keys are deleted by the engine's upkeep.
CREATE TABLE idempotency_keys (
    key          TEXT    PRIMARY KEY,
    digest       TEXT    NOT NULL, -- of the request that first used it
    execution_id TEXT,             -- what it created: an execution
    batch_id     TEXT,             -- or a batch
    created_at   INTEGER NOT NULL  -- unix nanoseconds
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
