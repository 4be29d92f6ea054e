-- Idempotency-Keys of submissions (conveyor.Idempotency): each names the
-- execution or the batch its first request created, for
-- conveyor.IdempotencyTTL. Written in the transaction that creates what
-- it names; expired keys are deleted by the engine's upkeep.
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    digest       text        NOT NULL, -- of the request that first used it
    execution_id text,                 -- what it created: an execution
    batch_id     text,                 -- or a batch
    created_at   timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
