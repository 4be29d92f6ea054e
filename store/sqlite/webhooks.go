package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// The deliveries themselves are written by the triggers of migration
// 0007, in the transaction of the change each reports.

const (
	webhookColumns  = `num, id, url, events, pipeline, tags, secret, created_at, disabled_at`
	deliveryColumns = `d.num, d.id, d.webhook_id, d.url, d.host, d.event_type, d.execution_id, d.batch_id, d.status,
		d.attempts, d.body, d.created_at, d.next_attempt_at, d.claim,
		(SELECT w.secret FROM webhooks w WHERE w.id = d.webhook_id)`

	sqlInsertWebhook = `INSERT INTO webhooks (id, url, host, events, pipeline, tags, secret, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	sqlGetWebhook    = `SELECT ` + webhookColumns + ` FROM webhooks WHERE id = ?`
	sqlListWebhooks  = `SELECT ` + webhookColumns + ` FROM webhooks ORDER BY num DESC`
	sqlDeleteWebhook = `DELETE FROM webhooks WHERE id = ?`

	sqlListDeliveries = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d
		WHERE d.webhook_id = ?1 AND (?2 = 0 OR d.num < ?2) ORDER BY d.num DESC LIMIT ?3`

	// Due pending deliveries in event order, no more than ?3 of a host
	// and none of the hosts in ?2, up to ?4, whose claim expired before
	// ?7 (conveyor.DeliveryClaim.HeldBefore, at least ?1); a claim (?5)
	// holds them until ?6. The window reads at most a thousand due rows.
	sqlClaimDeliveries = `UPDATE webhook_deliveries SET claim = ?5, claim_until = ?6
		WHERE num IN (
			SELECT num FROM (
				SELECT num, row_number() OVER (PARTITION BY host ORDER BY num) AS n FROM (
					SELECT num, host FROM webhook_deliveries
					WHERE status = 'pending' AND next_attempt_at <= ?1 AND (claim_until IS NULL OR claim_until <= ?1 OR claim_until < ?7)
						AND host NOT IN (SELECT value FROM json_each(?2))
					ORDER BY num LIMIT 1000)
			) WHERE n <= ?3 ORDER BY num LIMIT ?4)
		RETURNING num`
	sqlClaimed = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d
		WHERE d.num IN (SELECT value FROM json_each(?)) ORDER BY d.num`

	sqlSetDeliveryBody = `UPDATE webhook_deliveries SET body = coalesce(body, ?3) WHERE id = ?1 AND claim = ?2
		RETURNING body`

	sqlRecordDelivery = `UPDATE webhook_deliveries SET status = ?3, next_attempt_at = ?4,
		attempts = json_insert(attempts, '$[#]', json(?5)), claim = NULL, claim_until = NULL
		WHERE id = ?1 AND claim = ?2 RETURNING webhook_id`
	sqlDisableWebhook = `UPDATE webhooks SET disabled_at = ?2 WHERE id = ?1 AND disabled_at IS NULL`
	sqlFailPending    = `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, claim = NULL,
		claim_until = NULL WHERE webhook_id = ?1 AND status = 'pending'`

	sqlRedeliver = `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?3, claim = NULL, claim_until = NULL
		WHERE id = ?2 AND webhook_id = ?1`
	sqlGetDelivery = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d WHERE d.id = ?2 AND d.webhook_id = ?1`

	sqlInsertSetting = `INSERT INTO webhook_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`
	sqlGetSetting    = `SELECT value FROM webhook_settings WHERE key = ?`
)

// CreateWebhook implements conveyor.Store.
func (db *DB) CreateWebhook(ctx context.Context, w *conveyor.Webhook) error {
	if err := w.ValidateNew(); err != nil {
		return err
	}
	events, err := json.Marshal(w.Events)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	tags, err := tagsColumn(w.Tags)
	if err != nil {
		return err
	}
	res, err := db.w.ExecContext(ctx, sqlInsertWebhook, w.ID, w.URL, w.Host(), string(events), w.Pipeline, tags,
		w.Secret, w.CreatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create webhook: %w", err)
	} else if n == 0 {
		return conveyor.Errorf(conveyor.ECONFLICT, "webhook %q already exists", w.ID)
	}
	return nil
}

// GetWebhook implements conveyor.Store.
func (db *DB) GetWebhook(ctx context.Context, id string) (*conveyor.Webhook, error) {
	if !conveyor.StorableText(id) {
		return nil, conveyor.WebhookNotFound(id)
	}
	w, err := scanWebhook(db.r.QueryRowContext(ctx, sqlGetWebhook, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, conveyor.WebhookNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook: %w", err)
	}
	return w, nil
}

// ListWebhooks implements conveyor.Store.
func (db *DB) ListWebhooks(ctx context.Context) ([]*conveyor.Webhook, error) {
	rows, err := db.r.QueryContext(ctx, sqlListWebhooks)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	ws := []*conveyor.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		ws = append(ws, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return ws, nil
}

// DeleteWebhook implements conveyor.Store.
func (db *DB) DeleteWebhook(ctx context.Context, id string) error {
	if !conveyor.StorableText(id) {
		return conveyor.WebhookNotFound(id)
	}
	res, err := db.w.ExecContext(ctx, sqlDeleteWebhook, id)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	} else if n == 0 {
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
	rows, err := db.r.QueryContext(ctx, sqlListDeliveries, f.WebhookID, before, limit+1)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	items, next, err := store.CollectPage(rows, limit, func(r store.Rows) (*conveyor.Delivery, int64, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return &conveyor.DeliveryPage{Deliveries: items, NextCursor: next}, nil
}

// ClaimDeliveries implements conveyor.Store.
func (db *DB) ClaimDeliveries(ctx context.Context, q conveyor.DeliveryClaim) ([]*conveyor.Delivery, error) {
	if q.Limit <= 0 || q.PerHost <= 0 || q.Claim == "" {
		return nil, nil
	}
	skip, err := json.Marshal(append([]string{}, q.Skip...))
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer tx.Rollback()
	var heldBefore int64 // none; UnixNano of the zero time is undefined
	if !q.HeldBefore.IsZero() {
		heldBefore = q.HeldBefore.UnixNano()
	}
	rows, err := tx.QueryContext(ctx, sqlClaimDeliveries, q.Now.UnixNano(), string(skip), q.PerHost, q.Limit,
		q.Claim, q.Until.UnixNano(), heldBefore)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var nums []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		nums = append(nums, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(nums) == 0 {
		return nil, err
	}
	claimed, err := json.Marshal(nums)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	rows, err = tx.QueryContext(ctx, sqlClaimed, string(claimed))
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var ds []*conveyor.Delivery
	for rows.Next() {
		d, _, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return ds, nil
}

// SetDeliveryBody implements conveyor.Store.
func (db *DB) SetDeliveryBody(ctx context.Context, id, claim string, body []byte) (json.RawMessage, error) {
	var kept []byte
	err := db.w.QueryRowContext(ctx, sqlSetDeliveryBody, id, claim, string(body)).Scan(&kept)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, conveyor.Errorf(conveyor.ECONFLICT, "delivery %q is not held by claim %q", id, claim)
	}
	if err != nil {
		return nil, fmt.Errorf("set delivery body: %w", err)
	}
	return kept, nil
}

// RecordDelivery implements conveyor.Store.
func (db *DB) RecordDelivery(ctx context.Context, o conveyor.DeliveryOutcome) error {
	attempt, err := json.Marshal(o.Attempt)
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	defer tx.Rollback()
	var webhookID sql.NullString
	err = tx.QueryRowContext(ctx, sqlRecordDelivery, o.ID, o.Claim, string(o.Status), timeColumn(o.NextAttemptAt),
		string(attempt)).Scan(&webhookID)
	if errors.Is(err, sql.ErrNoRows) {
		return conveyor.Errorf(conveyor.ECONFLICT, "delivery %q is not held by claim %q", o.ID, o.Claim)
	}
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	if o.DisableWebhook && webhookID.Valid {
		if _, err := tx.ExecContext(ctx, sqlDisableWebhook, webhookID.String, o.Attempt.Time.UnixNano()); err != nil {
			return fmt.Errorf("disable webhook: %w", err)
		}
		if _, err := tx.ExecContext(ctx, sqlFailPending, webhookID.String); err != nil {
			return fmt.Errorf("disable webhook: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
}

// RedeliverNow implements conveyor.Store.
func (db *DB) RedeliverNow(ctx context.Context, webhookID, deliveryID string, now time.Time) (*conveyor.Delivery, error) {
	if !conveyor.StorableText(webhookID) || !conveyor.StorableText(deliveryID) {
		return nil, conveyor.DeliveryNotFound(deliveryID)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, sqlRedeliver, webhookID, deliveryID, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	} else if n == 0 {
		return nil, conveyor.DeliveryNotFound(deliveryID)
	}
	d, _, err := scanDelivery(tx.QueryRowContext(ctx, sqlGetDelivery, webhookID, deliveryID))
	if err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	}
	return d, nil
}

// WebhookSecret implements conveyor.Store.
func (db *DB) WebhookSecret(ctx context.Context, candidate string) (string, bool, error) {
	if err := conveyor.ValidWebhookSecret(candidate); err != nil {
		return "", false, err
	}
	res, err := db.w.ExecContext(ctx, sqlInsertSetting, "secret", candidate)
	if err != nil {
		return "", false, fmt.Errorf("webhook secret: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", false, fmt.Errorf("webhook secret: %w", err)
	}
	var secret string
	if err := db.w.QueryRowContext(ctx, sqlGetSetting, "secret").Scan(&secret); err != nil {
		return "", false, fmt.Errorf("webhook secret: %w", err)
	}
	return secret, n > 0, nil
}

// scanWebhook reads webhookColumns.
func scanWebhook(sc scanner) (*conveyor.Webhook, error) {
	var (
		w              conveyor.Webhook
		num, created   int64
		events, tags   []byte
		disabled       sql.NullInt64
		pipeline       sql.NullString
		secret, rawURL string
	)
	if err := sc.Scan(&num, &w.ID, &rawURL, &events, &pipeline, &tags, &secret, &created, &disabled); err != nil {
		return nil, err
	}
	w.URL, w.Secret, w.CreatedAt = rawURL, secret, fromUnixNano(created)
	if err := json.Unmarshal(events, &w.Events); err != nil {
		return nil, fmt.Errorf("webhook %s: decode events: %w", w.ID, err)
	}
	if tags != nil {
		if err := json.Unmarshal(tags, &w.Tags); err != nil {
			return nil, fmt.Errorf("webhook %s: decode tags: %w", w.ID, err)
		}
	}
	if pipeline.Valid {
		w.Pipeline = &pipeline.String
	}
	if disabled.Valid {
		t := fromUnixNano(disabled.Int64)
		w.DisabledAt = &t
	}
	return &w, nil
}

// scanDelivery reads deliveryColumns.
func scanDelivery(sc scanner) (*conveyor.Delivery, int64, error) {
	var (
		d                conveyor.Delivery
		num, created     int64
		status, typ      string
		attempts, body   []byte
		next             sql.NullInt64
		claim, secret    sql.NullString
		webhook, ex, bat sql.NullString
	)
	err := sc.Scan(&num, &d.ID, &webhook, &d.URL, &d.Host, &typ, &ex, &bat, &status, &attempts, &body, &created,
		&next, &claim, &secret)
	if err != nil {
		return nil, 0, err
	}
	d.Status, d.EventType, d.Body, d.Claim, d.Secret = conveyor.DeliveryStatus(status), conveyor.WebhookEvent(typ),
		body, claim.String, secret.String
	d.WebhookID, d.ExecutionID, d.BatchID = nullString(webhook), nullString(ex), nullString(bat)
	d.CreatedAt = fromUnixNano(created)
	if next.Valid {
		t := fromUnixNano(next.Int64)
		d.NextAttemptAt = &t
	}
	if err := json.Unmarshal(attempts, &d.Attempts); err != nil {
		return nil, 0, fmt.Errorf("delivery %s: decode attempts: %w", d.ID, err)
	}
	return &d, num, nil
}

func nullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}
