package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-run/conveyor"
)

// createWebhookRequest is the body of POST /webhooks.
type createWebhookRequest struct {
	URL      string                  `json:"url"`
	Events   []conveyor.WebhookEvent `json:"events"`
	Pipeline *string                 `json:"pipeline"`
	Tags     conveyor.Tags           `json:"tags"`
}

// checkWebhookURL refuses a URL a webhook may not have: malformed, not
// http(s), or (Config.CheckWebhookURLFunc) pointing at a private address.
func (s *Server) checkWebhookURL(ctx context.Context, url string) error {
	if err := conveyor.ValidWebhookURL(url); err != nil {
		return err
	}
	if s.cfg.CheckWebhookURLFunc != nil {
		return s.cfg.CheckWebhookURLFunc(ctx, url)
	}
	return nil
}

// checkExecutionWebhook checks the webhook of a new execution (nil: none).
func (s *Server) checkExecutionWebhook(ctx context.Context, w *conveyor.ExecutionWebhook) error {
	if w == nil {
		return nil
	}
	if err := w.Validate(); err != nil {
		return err
	}
	if err := s.checkWebhookURL(ctx, w.URL); err != nil {
		return conveyor.Errorf(conveyor.EINVALID, "webhook: %s", conveyor.ErrorMessage(err))
	}
	return nil
}

// checkBatchWebhooks checks the webhooks of a batch's items, each URL
// once.
func (s *Server) checkBatchWebhooks(ctx context.Context, items []conveyor.NewExecution) error {
	checked := map[string]bool{}
	for i, it := range items {
		if it.Webhook == nil {
			continue
		}
		if err := it.Webhook.Validate(); err != nil {
			return conveyor.Errorf(conveyor.EINVALID, "executions[%d]: %s", i, conveyor.ErrorMessage(err))
		}
		if checked[it.Webhook.URL] {
			continue
		}
		if err := s.checkWebhookURL(ctx, it.Webhook.URL); err != nil {
			return conveyor.Errorf(conveyor.EINVALID, "executions[%d]: webhook: %s", i, conveyor.ErrorMessage(err))
		}
		checked[it.Webhook.URL] = true
	}
	return nil
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req createWebhookRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := uuid.NewV7()
	if err != nil {
		s.writeError(w, r, fmt.Errorf("new webhook id: %w", err))
		return
	}
	hook := &conveyor.Webhook{ID: id.String(), URL: req.URL, Events: req.Events, Pipeline: req.Pipeline, Tags: req.Tags,
		Secret: conveyor.NewWebhookSecret(), CreatedAt: time.Now().UTC()}
	if err := hook.ValidateNew(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.checkWebhookURL(r.Context(), req.URL); err != nil {
		s.writeError(w, r, err)
		return
	}
	if all, err := s.cfg.Store.ListWebhooks(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	} else if len(all) >= conveyor.MaxWebhooks {
		s.writeError(w, r, conveyor.Errorf(conveyor.ECONFLICT, "there are %d webhooks already, the most a server keeps", len(all)))
		return
	}
	if err := s.cfg.Store.CreateWebhook(r.Context(), hook); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/webhooks/"+hook.ID)
	writeJSON(w, http.StatusCreated, hook)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	all, err := s.cfg.Store.ListWebhooks(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, h := range all {
		h.Secret = "" // shown once, at creation
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": all})
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	h, err := s.cfg.Store.GetWebhook(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h.Secret = ""
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Store.DeleteWebhook(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "limit" && k != "cursor" {
			s.writeError(w, r, conveyor.Errorf(conveyor.EBADREQUEST, "unknown query parameter %q (limit and cursor are)", k))
			return
		}
	}
	_, _, limit, cursor, err := listParams(q) // only limit and cursor are there
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Store.ListDeliveries(r.Context(), conveyor.DeliveryFilter{WebhookID: r.PathValue("id"), Limit: limit, Cursor: cursor})
	if conveyor.ErrorCode(err) == conveyor.ENOTFOUND {
		s.writeError(w, r, err)
		return
	}
	s.writeList(w, r, page, err)
}

func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	webhookID := r.PathValue("id")
	if _, err := s.cfg.Store.GetWebhook(r.Context(), webhookID); err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.cfg.Store.RedeliverNow(r.Context(), webhookID, r.PathValue("delivery_id"), time.Now().UTC())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.WakeWebhooksFunc != nil {
		s.cfg.WakeWebhooksFunc()
	}
	writeJSON(w, http.StatusAccepted, d)
}
