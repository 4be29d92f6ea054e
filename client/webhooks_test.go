package client_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

// waitDeliveries polls a subscription's deliveries until done accepts
// them.
func waitDeliveries(t *testing.T, c *client.Client, hook string, done func([]*conveyor.Delivery) bool) []*conveyor.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := c.Deliveries(t.Context(), conveyor.DeliveryFilter{WebhookID: hook})
		if err != nil {
			t.Fatal(err)
		}
		if done(page.Deliveries) {
			return page.Deliveries
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries of %s: %+v", hook, page.Deliveries)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookMethods: every webhook method against a node that delivers
// to a receiver on loopback, and their errors.
func TestWebhookMethods(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string]int{} // requests by webhook-id
	rc := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got[r.Header.Get("webhook-id")]++
	}))
	defer rc.Close()
	n := setup(t, 1, func(c *server.Config) { c.WebhookAllowPrivate = true })
	c := n.ctl

	_, err := c.CreateWebhook(t.Context(), client.NewWebhook{URL: rc.URL, Events: []conveyor.WebhookEvent{"execution.done"}})
	if conveyor.ErrorCode(err) != conveyor.EINVALID {
		t.Errorf("CreateWebhook with an unknown event type: %v, want %s", err, conveyor.EINVALID)
	}
	hook, err := c.CreateWebhook(t.Context(), client.NewWebhook{URL: rc.URL, Events: []conveyor.WebhookEvent{conveyor.WebhookCompleted},
		Pipeline: "gated", Tags: conveyor.Tags{"env": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	if conveyor.ValidWebhookSecret(hook.Secret) != nil || *hook.Pipeline != "gated" || hook.Tags["env"] != "test" {
		t.Errorf("CreateWebhook returned %+v", hook)
	}
	all, err := c.Webhooks(t.Context())
	if err != nil || len(all) != 1 || all[0].ID != hook.ID || all[0].Secret != "" {
		t.Errorf("Webhooks: %+v, %v; want the subscription without its secret", all, err)
	}
	one, err := c.Webhook(t.Context(), hook.ID)
	if err != nil || one.URL != rc.URL || one.Secret != "" {
		t.Errorf("Webhook: %+v, %v", one, err)
	}
	if _, err := c.Webhook(t.Context(), "nope"); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("Webhook of an unknown id: %v", err)
	}

	ex, err := c.SubmitWithTags(t.Context(), "gated", nil, conveyor.Tags{"env": "test"})
	if err != nil {
		t.Fatal(err)
	}
	n.gate.waitStarted(t, 1)
	n.gate.open(ex.ID)
	ds := waitDeliveries(t, c, hook.ID, func(ds []*conveyor.Delivery) bool {
		return len(ds) == 1 && ds[0].Status == conveyor.DeliveryDelivered
	})
	d := ds[0]
	if *d.ExecutionID != ex.ID || d.EventType != conveyor.WebhookCompleted || len(d.Attempts) != 1 {
		t.Errorf("delivery %+v", d)
	}

	again, err := c.Redeliver(t.Context(), hook.ID, d.ID)
	if err != nil || again.ID != d.ID || again.Status != conveyor.DeliveryPending {
		t.Errorf("Redeliver: %+v, %v; want the delivery, pending", again, err)
	}
	waitDeliveries(t, c, hook.ID, func(ds []*conveyor.Delivery) bool {
		return len(ds) == 1 && ds[0].Status == conveyor.DeliveryDelivered && len(ds[0].Attempts) == 2
	})
	mu.Lock()
	if got[d.ID] != 2 {
		t.Errorf("the receiver got delivery %s %d times, want 2", d.ID, got[d.ID])
	}
	mu.Unlock()
	if _, err := c.Redeliver(t.Context(), hook.ID, "nope"); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("Redeliver of an unknown delivery: %v", err)
	}

	if err := c.DeleteWebhook(t.Context(), hook.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteWebhook(t.Context(), hook.ID); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("DeleteWebhook again: %v", err)
	}
	if _, err := c.Deliveries(t.Context(), conveyor.DeliveryFilter{WebhookID: hook.ID}); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("Deliveries of a deleted subscription: %v", err)
	}
}
