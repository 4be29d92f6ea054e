package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// The deliveries themselves are written by the triggers of migration
// 0008, in the transaction of the change each reports.

const (
	webhookColumns  = `num, id, url, events, pipeline, tags, secret, created_at, disabled_at`
	deliveryColumns = `d.num, d.id, d.webhook_id, d.url, d.host, d.event_type, d.execution_id, d.batch_id, d.status,
		d.attempts, d.body, d.created_at, d.next_attempt_at, d.claim,
		(SELECT w.secret FROM webhooks w WHERE w.id = d.webhook_id)`

	sqlInsertWebhook = `INSERT INTO webhooks (id, url, host, events, pipeline, tags, secret, created_at)
		VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) ON CONFLICT (id) DO NOTHING`
	sqlGetWebhook    = `SELECT ` + webhookColumns + ` FROM webhooks WHERE id = $1`
	sqlListWebhooks  = `SELECT ` + webhookColumns + ` FROM webhooks ORDER BY num DESC`
	sqlDeleteWebhook = `DELETE FROM webhooks WHERE id = $1`

	sqlListDeliveries = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d
		WHERE d.webhook_id = $1 AND ($2 = 0 OR d.num < $2) ORDER BY d.num DESC LIMIT $3`

	// Due pending deliveries in event order that no other claimer holds
	// (SKIP LOCKED, as executions are claimed), no more than $3 of a host
	// and none of the hosts in $2, up to $4, whose claim expired (or
	// holds until before $7, conveyor.DeliveryClaim.HeldBefore); a claim
	// ($5) holds them until $6. The window reads at most a thousand due rows.
	sqlClaimDeliveries = `WITH due AS (
			SELECT num, host FROM webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at <= $1 AND (claim_until IS NULL OR claim_until <= $1 OR claim_until < $7)
				AND NOT (host = ANY ($2::text[]))
			ORDER BY num LIMIT 1000
			FOR NO KEY UPDATE SKIP LOCKED
		), capped AS (
			SELECT num FROM (SELECT num, row_number() OVER (PARTITION BY host ORDER BY num) AS n FROM due) x
			WHERE n <= $3 ORDER BY num LIMIT $4
		)
		UPDATE webhook_deliveries d SET claim = $5, claim_until = $6
		FROM capped WHERE d.num = capped.num
		RETURNING ` + deliveryColumns

	sqlSetDeliveryBody = `UPDATE webhook_deliveries SET body = coalesce(body, $3) WHERE id = $1 AND claim = $2
		RETURNING body`

	sqlRecordDelivery = `UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4,
		attempts = attempts || jsonb_build_array($5::jsonb), claim = NULL, claim_until = NULL
		WHERE id = $1 AND claim = $2 RETURNING webhook_id`
	sqlDisableWebhook = `UPDATE webhooks SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL`
	sqlFailPending    = `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, claim = NULL,
		claim_until = NULL WHERE webhook_id = $1 AND status = 'pending'`

	sqlRedeliver = `UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = $3, claim = NULL, claim_until = NULL
		WHERE d.id = $2 AND d.webhook_id = $1 RETURNING ` + deliveryColumns

	sqlInsertSetting = `INSERT INTO webhook_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`
	sqlGetSetting    = `SELECT value FROM webhook_settings WHERE key = $1`
)

// CreateWebhook implements conveyor.Store.
func (db *DB) CreateWebhook(ctx context.Context, w *conveyor.Webhook) error {
	if err := w.ValidateNew(); err != nil {
		return err
	}
	tags, err := tagsColumn(w.Tags)
	if err != nil {
		return err
	}
	events := make([]string, len(w.Events))
	for i, t := range w.Events {
		events[i] = string(t)
	}
	tag, err := db.pool.Exec(ctx, sqlInsertWebhook, w.ID, w.URL, w.Host(), events, w.Pipeline, tags, w.Secret, w.CreatedAt)
	if err != nil {
		return storeError("create webhook", err)
	}
	if tag.RowsAffected() == 0 {
		return conveyor.Errorf(conveyor.ECONFLICT, "webhook %q already exists", w.ID)
	}
	return nil
}

// GetWebhook implements conveyor.Store.
func (db *DB) GetWebhook(ctx context.Context, id string) (*conveyor.Webhook, error) {
	if !conveyor.StorableText(id) {
		return nil, conveyor.WebhookNotFound(id)
	}
	w, err := scanWebhook(db.pool.QueryRow(ctx, sqlGetWebhook, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, conveyor.WebhookNotFound(id)
	}
	if err != nil {
		return nil, storeError("get webhook", err)
	}
	return w, nil
}

// ListWebhooks implements conveyor.Store.
func (db *DB) ListWebhooks(ctx context.Context) ([]*conveyor.Webhook, error) {
	rows, err := db.pool.Query(ctx, sqlListWebhooks)
	if err != nil {
		return nil, storeError("list webhooks", err)
	}
	defer rows.Close()
	ws := []*conveyor.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, storeError("list webhooks", err)
		}
		ws = append(ws, w)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list webhooks", err)
	}
	return ws, nil
}

// DeleteWebhook implements conveyor.Store.
func (db *DB) DeleteWebhook(ctx context.Context, id string) error {
	if !conveyor.StorableText(id) {
		return conveyor.WebhookNotFound(id)
	}
	tag, err := db.pool.Exec(ctx, sqlDeleteWebhook, id)
	if err != nil {
		return storeError("delete webhook", err)
	}
	if tag.RowsAffected() == 0 {
		return conveyor.WebhookNotFound(id)
	}
	return nil
}

// ListDeliveries implements conveyor.Store.
func (db *DB) ListDeliveries(ctx context.Context, f conveyor.DeliveryFilter) (*conveyor.DeliveryPage, error) {
	limit, before, err := f.Page()
	if err != nil {
		return nil, err
	}
	if _, err := db.GetWebhook(ctx, f.WebhookID); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, sqlListDeliveries, f.WebhookID, before, limit+1)
	if err != nil {
		return nil, storeError("list deliveries", err)
	}
	defer rows.Close()
	items, next, err := store.CollectPage(rows, limit, func(r store.Rows) (*conveyor.Delivery, int64, error) { return scanDelivery(r) })
	if err != nil {
		return nil, storeError("list deliveries", err)
	}
	return &conveyor.DeliveryPage{Deliveries: items, NextCursor: next}, nil
}

// ClaimDeliveries implements conveyor.Store.
func (db *DB) ClaimDeliveries(ctx context.Context, q conveyor.DeliveryClaim) ([]*conveyor.Delivery, error) {
	if q.Limit <= 0 || q.PerHost <= 0 || q.Claim == "" {
		return nil, nil
	}
	skip := append([]string{}, q.Skip...)
	rows, err := db.pool.Query(ctx, sqlClaimDeliveries, q.Now, skip, q.PerHost, q.Limit, q.Claim, q.Until, q.HeldBefore)
	if err != nil {
		return nil, storeError("claim deliveries", err)
	}
	defer rows.Close()
	type claimed struct {
		d   *conveyor.Delivery
		num int64
	}
	var cs []claimed
	for rows.Next() {
		d, num, err := scanDelivery(rows)
		if err != nil {
			return nil, storeError("claim deliveries", err)
		}
		cs = append(cs, claimed{d, num})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, storeError("claim deliveries", err)
	}
	// UPDATE ... RETURNING keeps no order.
	slices.SortFunc(cs, func(a, b claimed) int { return cmp.Compare(a.num, b.num) })
	ds := make([]*conveyor.Delivery, len(cs))
	for i, c := range cs {
		ds[i] = c.d
	}
	return ds, nil
}

// SetDeliveryBody implements conveyor.Store.
func (db *DB) SetDeliveryBody(ctx context.Context, id, claim string, body []byte) (json.RawMessage, error) {
	var kept string
	err := db.pool.QueryRow(ctx, sqlSetDeliveryBody, id, claim, string(body)).Scan(&kept)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, conveyor.Errorf(conveyor.ECONFLICT, "delivery %q is not held by claim %q", id, claim)
	}
	if err != nil {
		return nil, storeError("set delivery body", err)
	}
	return json.RawMessage(kept), nil
}

// RecordDelivery implements conveyor.Store.
func (db *DB) RecordDelivery(ctx context.Context, o conveyor.DeliveryOutcome) error {
	attempt, err := json.Marshal(o.Attempt)
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var webhookID *string
		err := tx.QueryRow(ctx, sqlRecordDelivery, o.ID, o.Claim, string(o.Status), o.NextAttemptAt, string(attempt)).Scan(&webhookID)
		if errors.Is(err, pgx.ErrNoRows) {
			return conveyor.Errorf(conveyor.ECONFLICT, "delivery %q is not held by claim %q", o.ID, o.Claim)
		}
		if err != nil {
			return storeError("record delivery", err)
		}
		if o.DisableWebhook && webhookID != nil {
			if _, err := tx.Exec(ctx, sqlDisableWebhook, *webhookID, o.Attempt.Time); err != nil {
				return storeError("disable webhook", err)
			}
			if _, err := tx.Exec(ctx, sqlFailPending, *webhookID); err != nil {
				return storeError("disable webhook", err)
			}
		}
		return nil
	})
}

// RedeliverNow implements conveyor.Store.
func (db *DB) RedeliverNow(ctx context.Context, webhookID, deliveryID string, now time.Time) (*conveyor.Delivery, error) {
	if !conveyor.StorableText(webhookID) || !conveyor.StorableText(deliveryID) {
		return nil, conveyor.DeliveryNotFound(deliveryID)
	}
	d, _, err := scanDelivery(db.pool.QueryRow(ctx, sqlRedeliver, webhookID, deliveryID, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, conveyor.DeliveryNotFound(deliveryID)
	}
	if err != nil {
		return nil, storeError("redeliver", err)
	}
	return d, nil
}

// WebhookSecret implements conveyor.Store.
func (db *DB) WebhookSecret(ctx context.Context, candidate string) (string, bool, error) {
	if err := conveyor.ValidWebhookSecret(candidate); err != nil {
		return "", false, err
	}
	tag, err := db.pool.Exec(ctx, sqlInsertSetting, "secret", candidate)
	if err != nil {
		return "", false, storeError("webhook secret", err)
	}
	var secret string
	if err := db.pool.QueryRow(ctx, sqlGetSetting, "secret").Scan(&secret); err != nil {
		return "", false, storeError("webhook secret", err)
	}
	return secret, tag.RowsAffected() > 0, nil
}

// scanWebhook reads webhookColumns.
func scanWebhook(sc scanner) (*conveyor.Webhook, error) {
	var (
		w        conveyor.Webhook
		num      int64
		events   []string
		tags     []byte
		disabled *time.Time
	)
	if err := sc.Scan(&num, &w.ID, &w.URL, &events, &w.Pipeline, &tags, &w.Secret, &w.CreatedAt, &disabled); err != nil {
		return nil, err
	}
	w.CreatedAt = w.CreatedAt.UTC()
	w.Events = make([]conveyor.WebhookEvent, len(events))
	for i, t := range events {
		w.Events[i] = conveyor.WebhookEvent(t)
	}
	if tags != nil {
		if err := json.Unmarshal(tags, &w.Tags); err != nil {
			return nil, fmt.Errorf("webhook %s: decode tags: %w", w.ID, err)
		}
	}
	if disabled != nil {
		t := disabled.UTC()
		w.DisabledAt = &t
	}
	return &w, nil
}

// scanDelivery reads deliveryColumns.
func scanDelivery(sc scanner) (*conveyor.Delivery, int64, error) {
	var (
		d             conveyor.Delivery
		num           int64
		status, typ   string
		attempts      []byte
		body          *string
		next          *time.Time
		claim, secret *string
	)
	err := sc.Scan(&num, &d.ID, &d.WebhookID, &d.URL, &d.Host, &typ, &d.ExecutionID, &d.BatchID, &status, &attempts, &body,
		&d.CreatedAt, &next, &claim, &secret)
	if err != nil {
		return nil, 0, err
	}
	d.Status, d.EventType = conveyor.DeliveryStatus(status), conveyor.WebhookEvent(typ)
	d.CreatedAt = d.CreatedAt.UTC()
	if body != nil {
		d.Body = json.RawMessage(*body)
	}
	if claim != nil {
		d.Claim = *claim
	}
	if secret != nil {
		d.Secret = *secret
	}
	if next != nil {
		t := next.UTC()
		d.NextAttemptAt = &t
	}
	if err := json.Unmarshal(attempts, &d.Attempts); err != nil {
		return nil, 0, fmt.Errorf("delivery %s: decode attempts: %w", d.ID, err)
	}
	return &d, num, nil
}
