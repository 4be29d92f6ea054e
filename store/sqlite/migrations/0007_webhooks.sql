-- Webhooks: subscriptions, executions' own webhooks and the outbox of
-- deliveries, written by triggers in the transaction of the change each
-- reports (conveyor.WebhookEventsOf says which; storetest checks that
-- these triggers agree).

CREATE TABLE webhooks (
    num         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    url         TEXT    NOT NULL,
    host        TEXT    NOT NULL, -- the URL's host[:port]: deliveries are bounded per host
    events      TEXT    NOT NULL, -- JSON array of event types
    pipeline    TEXT,
    tags        TEXT,             -- JSON object; NULL when none
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER           -- the receiver answered 410 Gone
);

-- {"url", "events", "host"} of an execution's own webhook; NULL when none.
ALTER TABLE executions ADD COLUMN webhook TEXT;

CREATE TABLE webhook_deliveries (
    num             INTEGER PRIMARY KEY AUTOINCREMENT, -- event order, and the list cursor
    id              TEXT    NOT NULL UNIQUE,           -- the webhook-id header
    webhook_id      TEXT    REFERENCES webhooks (id) ON DELETE CASCADE, -- NULL: the execution's own
    url             TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    execution_id    TEXT    REFERENCES executions (id) ON DELETE CASCADE,
    batch_id        TEXT    REFERENCES batches (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        TEXT    NOT NULL DEFAULT '[]',     -- JSON array of conveyor.Attempt
    body            TEXT,                              -- kept before the first attempt
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,                           -- set while pending
    claim           TEXT,                              -- the sender that holds it
    claim_until     INTEGER
);
-- Claims walk the pending deliveries in event order; the index holds only them.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (num) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, num);
CREATE INDEX webhook_deliveries_execution ON webhook_deliveries (execution_id);
CREATE INDEX webhook_deliveries_batch ON webhook_deliveries (batch_id) WHERE batch_id IS NOT NULL;

-- Settings kept once for every node: the secret of executions' own webhooks.
CREATE TABLE webhook_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The change of an execution that makes deliveries: a progress
-- threshold (conveyor.ProgressThresholds) crossed, a stall begun, a new
-- status. The WHEN clause keeps the cost of every other write, and of
-- every write while nobody subscribes, to a few comparisons: whether
-- anyone subscribes is asked first, before the progress is parsed.
CREATE TRIGGER executions_add_deliveries AFTER UPDATE OF status, progress, stalled_since ON executions
WHEN (NEW.webhook IS NOT NULL OR EXISTS (SELECT 1 FROM webhooks WHERE disabled_at IS NULL))
  AND (OLD.status <> NEW.status
      OR (OLD.stalled_since IS NULL AND NEW.stalled_since IS NOT NULL)
      OR coalesce(CAST(json_extract(OLD.progress, '$.percentage') / 25 AS INTEGER), 0)
         < CAST(json_extract(NEW.progress, '$.percentage') / 25 AS INTEGER))
BEGIN
    INSERT INTO webhook_deliveries (id, webhook_id, url, host, event_type, execution_id, created_at, next_attempt_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), s.id, s.url, s.host, ev.type, NEW.id, ev.now, ev.now
    FROM (
        SELECT 'execution.progress' AS type, t.pct AS ord, CAST(unixepoch('subsec') * 1000000000 AS INTEGER) AS now
        FROM (SELECT 25 AS pct UNION ALL SELECT 50 UNION ALL SELECT 75) t
        WHERE coalesce(json_extract(OLD.progress, '$.percentage'), 0) < t.pct
          AND json_extract(NEW.progress, '$.percentage') >= t.pct
        UNION ALL
        SELECT 'execution.stalled', 100, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)
        WHERE OLD.stalled_since IS NULL AND NEW.stalled_since IS NOT NULL
        UNION ALL
        SELECT CASE NEW.status WHEN 'running' THEN 'execution.started' WHEN 'pending' THEN 'execution.retrying'
            ELSE 'execution.' || NEW.status END, 200, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)
        WHERE OLD.status <> NEW.status
    ) ev
    JOIN (
        SELECT w.num AS ord, w.id, w.url, w.host, w.events FROM webhooks w
        WHERE w.disabled_at IS NULL
          AND (w.pipeline IS NULL OR w.pipeline = NEW.pipeline)
          AND NOT EXISTS (SELECT 1 FROM json_each(w.tags) t WHERE NOT EXISTS (
              SELECT 1 FROM execution_tags et WHERE et.key = t.key AND et.value = t.value AND et.num = NEW.num))
        UNION ALL
        SELECT 0, NULL, json_extract(NEW.webhook, '$.url'), json_extract(NEW.webhook, '$.host'),
            json_extract(NEW.webhook, '$.events')
        WHERE NEW.webhook IS NOT NULL
    ) s ON EXISTS (SELECT 1 FROM json_each(s.events) e WHERE e.value = ev.type)
    ORDER BY ev.ord, s.ord;
END;

-- A batch that just became final: batch.completed, batch.failed or
-- batch.cancelled (conveyor.BatchStatus) to subscriptions without a
-- pipeline filter whose tags the batch has.
CREATE TRIGGER batches_add_deliveries AFTER UPDATE OF finished_at ON batches
WHEN OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL
  AND EXISTS (SELECT 1 FROM webhooks WHERE disabled_at IS NULL)
BEGIN
    INSERT INTO webhook_deliveries (id, webhook_id, url, host, event_type, batch_id, created_at, next_attempt_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), w.id, w.url, w.host, ev.type, NEW.id, ev.now, ev.now
    FROM (SELECT 'batch.' || CASE WHEN NEW.failed > 0 THEN 'failed' WHEN NEW.cancelled > 0 THEN 'cancelled'
            ELSE 'completed' END AS type, CAST(unixepoch('subsec') * 1000000000 AS INTEGER) AS now) ev
    JOIN webhooks w ON w.disabled_at IS NULL AND w.pipeline IS NULL
        AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = ev.type)
        AND NOT EXISTS (SELECT 1 FROM json_each(w.tags) t WHERE NOT EXISTS (
            SELECT 1 FROM batch_tags bt WHERE bt.key = t.key AND bt.value = t.value AND bt.num = NEW.num))
    ORDER BY w.num;
END;
