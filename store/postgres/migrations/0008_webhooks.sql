-- Webhooks: subscriptions, executions' own webhooks and the outbox of
-- deliveries, written by triggers in the transaction of the change each
-- reports (conveyor.WebhookEventsOf says which; storetest checks that
-- these triggers agree).

CREATE TABLE webhooks (
    num         bigserial   PRIMARY KEY,
    id          text        NOT NULL UNIQUE,
    url         text        NOT NULL,
    host        text        NOT NULL, -- the URL's host[:port]: deliveries are bounded per host
    events      text[]      NOT NULL,
    pipeline    text,
    tags        jsonb,                -- NULL when none
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL,
    disabled_at timestamptz           -- the receiver answered 410 Gone
);

-- {"url", "events", "host"} of an execution's own webhook; NULL when none.
ALTER TABLE executions ADD COLUMN webhook jsonb;

CREATE TABLE webhook_deliveries (
    num             bigserial   PRIMARY KEY, -- event order, and the list cursor
    id              text        NOT NULL UNIQUE, -- the webhook-id header
    webhook_id      text        REFERENCES webhooks (id) ON DELETE CASCADE, -- NULL: the execution's own
    url             text        NOT NULL,
    host            text        NOT NULL,
    event_type      text        NOT NULL,
    execution_id    text        REFERENCES executions (id) ON DELETE CASCADE,
    batch_id        text        REFERENCES batches (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        jsonb       NOT NULL DEFAULT '[]', -- conveyor.Attempt, oldest first
    body            text,                              -- kept before the first attempt
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz,                       -- set while pending
    claim           text,                              -- the sender that holds it
    claim_until     timestamptz
);
-- Claims walk the pending deliveries in event order; the index holds only them.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (num) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, num);
CREATE INDEX webhook_deliveries_execution ON webhook_deliveries (execution_id);
CREATE INDEX webhook_deliveries_batch ON webhook_deliveries (batch_id) WHERE batch_id IS NOT NULL;

-- Settings kept once for every node: the secret of executions' own webhooks.
CREATE TABLE webhook_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- The change of an execution that makes deliveries: a progress
-- threshold (conveyor.ProgressThresholds) crossed, a stall begun, a new
-- status. The trigger's WHEN clause keeps the cost of every other write
-- to a few comparisons; the function returns at once while nobody
-- subscribes.
CREATE FUNCTION add_execution_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stamp timestamptz := clock_timestamp();
BEGIN
    IF NEW.webhook IS NULL AND NOT EXISTS (SELECT 1 FROM webhooks WHERE disabled_at IS NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (id, webhook_id, url, host, event_type, execution_id, created_at, next_attempt_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), s.id, s.url, s.host, ev.type, NEW.id, stamp, stamp
    FROM (
        SELECT 'execution.progress' AS type, t.pct AS ord
        FROM (VALUES (25), (50), (75)) AS t(pct)
        WHERE coalesce((OLD.progress->>'percentage')::float8, 0) < t.pct
          AND (NEW.progress->>'percentage')::float8 >= t.pct
        UNION ALL
        SELECT 'execution.stalled', 100
        WHERE OLD.stalled_since IS NULL AND NEW.stalled_since IS NOT NULL
        UNION ALL
        SELECT CASE NEW.status WHEN 'running' THEN 'execution.started' WHEN 'pending' THEN 'execution.retrying'
            ELSE 'execution.' || NEW.status END, 200
        WHERE OLD.status IS DISTINCT FROM NEW.status
    ) ev
    JOIN (
        SELECT w.num AS ord, w.id, w.url, w.host, w.events FROM webhooks w
        WHERE w.disabled_at IS NULL
          AND (w.pipeline IS NULL OR w.pipeline = NEW.pipeline)
          AND (w.tags IS NULL OR coalesce(NEW.tags, '{}') @> w.tags)
        UNION ALL
        SELECT 0, NULL, NEW.webhook->>'url', NEW.webhook->>'host',
            ARRAY(SELECT jsonb_array_elements_text(NEW.webhook->'events'))
        WHERE NEW.webhook IS NOT NULL
    ) s ON ev.type = ANY (s.events)
    ORDER BY ev.ord, s.ord;
    RETURN NULL;
END $$;

-- Named to fire before executions_batch_counts (triggers fire in name
-- order), so a member's delivery comes before its batch's.
CREATE TRIGGER executions_add_deliveries AFTER UPDATE ON executions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR (OLD.stalled_since IS NULL AND NEW.stalled_since IS NOT NULL)
        OR coalesce(floor((OLD.progress->>'percentage')::float8 / 25), 0)
           < floor((NEW.progress->>'percentage')::float8 / 25))
    EXECUTE FUNCTION add_execution_deliveries();

-- A batch that just became final: batch.completed, batch.failed or
-- batch.cancelled (conveyor.BatchStatus) to subscriptions without a
-- pipeline filter whose tags the batch has.
CREATE FUNCTION add_batch_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stamp timestamptz := clock_timestamp();
BEGIN
    INSERT INTO webhook_deliveries (id, webhook_id, url, host, event_type, batch_id, created_at, next_attempt_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), w.id, w.url, w.host, ev.type, NEW.id, stamp, stamp
    FROM (SELECT 'batch.' || CASE WHEN NEW.failed > 0 THEN 'failed' WHEN NEW.cancelled > 0 THEN 'cancelled'
            ELSE 'completed' END AS type) ev
    JOIN webhooks w ON w.disabled_at IS NULL AND w.pipeline IS NULL AND ev.type = ANY (w.events)
        AND (w.tags IS NULL OR coalesce(NEW.tags, '{}') @> w.tags)
    ORDER BY w.num;
    RETURN NULL;
END $$;

CREATE TRIGGER batches_add_deliveries AFTER UPDATE ON batches
    FOR EACH ROW WHEN (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL)
    EXECUTE FUNCTION add_batch_deliveries();
