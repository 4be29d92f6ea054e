package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/conveyor-run/conveyor"
)

// NewWebhook is a subscription to create: deliveries of Events to URL,
// of the executions (and batches) the filters select.
type NewWebhook struct {
	URL    string                  `json:"url"`
	Events []conveyor.WebhookEvent `json:"events"`
	// Pipeline, when not "", selects that pipeline's executions only.
	Pipeline string `json:"pipeline,omitempty"`
	// Tags select executions (or batches) that have every one of them.
	Tags conveyor.Tags `json:"tags,omitempty"`
}

// CreateWebhook subscribes to webhook deliveries. The subscription it
// returns has its Secret, which signs the deliveries and which the
// server never shows again. An unknown event type, a malformed URL or
// one the server may not reach is a *conveyor.Error with code
// conveyor.EINVALID.
func (c *Client) CreateWebhook(ctx context.Context, w NewWebhook) (*conveyor.Webhook, error) {
	var hook conveyor.Webhook
	return &hook, c.do(ctx, http.MethodPost, "/webhooks", w, &hook)
}

// Webhooks lists the subscriptions, newest first, without their secrets.
func (c *Client) Webhooks(ctx context.Context) ([]*conveyor.Webhook, error) {
	var body struct {
		Webhooks []*conveyor.Webhook `json:"webhooks"`
	}
	err := c.do(ctx, http.MethodGet, "/webhooks", nil, &body)
	return body.Webhooks, err
}

// Webhook returns one subscription, without its secret.
func (c *Client) Webhook(ctx context.Context, id string) (*conveyor.Webhook, error) {
	var hook conveyor.Webhook
	return &hook, c.do(ctx, http.MethodGet, "/webhooks/"+url.PathEscape(id), nil, &hook)
}

// DeleteWebhook deletes a subscription and its deliveries.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/webhooks/"+url.PathEscape(id), nil, nil)
}

// Deliveries returns one page of a subscription's deliveries, newest
// first. f.WebhookID names the subscription.
func (c *Client) Deliveries(ctx context.Context, f conveyor.DeliveryFilter) (*conveyor.DeliveryPage, error) {
	q := url.Values{}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	var page conveyor.DeliveryPage
	return &page, c.do(ctx, http.MethodGet, "/webhooks/"+url.PathEscape(f.WebhookID)+"/deliveries?"+q.Encode(), nil, &page)
}

// Redeliver makes a delivery of a subscription go out again now,
// whatever its status, and returns it, pending. The new attempt is added
// to its Attempts; the webhook-id header stays the same.
func (c *Client) Redeliver(ctx context.Context, webhookID, deliveryID string) (*conveyor.Delivery, error) {
	var d conveyor.Delivery
	path := "/webhooks/" + url.PathEscape(webhookID) + "/deliveries/" + url.PathEscape(deliveryID) + "/retry"
	return &d, c.do(ctx, http.MethodPost, path, struct{}{}, &d)
}
