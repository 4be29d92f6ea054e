package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
	"github.com/conveyor-run/conveyor/webhook"
)

// call sends a request with a JSON body (nil: none) and returns the
// status and the decoded answer.
func (h *harness) call(method, path string, body any) (int, map[string]any) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, h.url+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			h.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, out
}

// strictWebhooks is a harness whose API refuses private webhook targets.
func strictWebhooks(t *testing.T) *harness {
	return setupWith(t, func(cfg *api.Config) {
		cfg.CheckWebhookURLFunc = func(ctx context.Context, url string) error { return webhook.CheckURL(ctx, url, false) }
	}, 1, &conveyor.Pipeline{Name: "noop", Handler: noop})
}

func TestWebhookSubscriptions(t *testing.T) {
	h := setup(t, 1, &conveyor.Pipeline{Name: "noop", Handler: noop})
	code, created := h.call("POST", "/webhooks", map[string]any{
		"url": "http://127.0.0.1:9/hook", "events": []string{"execution.completed", "batch.failed"},
		"pipeline": "noop", "tags": map[string]string{"tenant": "acme"},
	})
	if code != http.StatusCreated {
		t.Fatalf("POST /webhooks: %d %v", code, created)
	}
	id, _ := created["id"].(string)
	secret, _ := created["secret"].(string)
	if id == "" || conveyor.ValidWebhookSecret(secret) != nil || created["created_at"] == nil || created["pipeline"] != "noop" {
		t.Fatalf("created %v", created)
	}
	key, _ := conveyor.WebhookSecretKey(secret)
	if len(key) != 32 {
		t.Errorf("secret key is %d bytes, want 32", len(key))
	}
	code, got := h.call("GET", "/webhooks/"+id, nil)
	if code != http.StatusOK || got["secret"] != nil || got["url"] != "http://127.0.0.1:9/hook" {
		t.Errorf("GET /webhooks/{id}: %d %v (the secret is shown only at creation)", code, got)
	}
	code, list := h.call("GET", "/webhooks", nil)
	hooks, _ := list["webhooks"].([]any)
	if code != http.StatusOK || len(hooks) != 1 || hooks[0].(map[string]any)["secret"] != nil {
		t.Errorf("GET /webhooks: %d %v", code, list)
	}
	code, page := h.call("GET", "/webhooks/"+id+"/deliveries", nil)
	if ds, _ := page["deliveries"].([]any); code != http.StatusOK || ds == nil || len(ds) != 0 {
		t.Errorf("GET deliveries: %d %v", code, page)
	}
	if _, ok := page["next_cursor"]; !ok {
		t.Errorf("GET deliveries has no next_cursor: %v", page)
	}
	if code, _ := h.call("DELETE", "/webhooks/"+id, nil); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/webhooks/" + id}, {"DELETE", "/webhooks/" + id}, {"GET", "/webhooks/" + id + "/deliveries"},
		{"POST", "/webhooks/" + id + "/deliveries/msg_x/retry"},
	} {
		if code, body := h.call(c.method, c.path, nil); code != http.StatusNotFound {
			t.Errorf("%s %s after delete: %d %v", c.method, c.path, code, body)
		}
	}
}

func TestWebhookDeliveriesAndRedelivery(t *testing.T) {
	h := setup(t, 1, &conveyor.Pipeline{Name: "noop", Handler: noop})
	_, created := h.call("POST", "/webhooks", map[string]any{"url": "http://127.0.0.1:9/", "events": []string{"execution.started", "execution.completed"}})
	id := created["id"].(string)
	ex := h.submit("noop", nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)
	_, page := h.call("GET", "/webhooks/"+id+"/deliveries?limit=1", nil)
	ds := page["deliveries"].([]any)
	if len(ds) != 1 || page["next_cursor"] == nil {
		t.Fatalf("first page: %v", page)
	}
	d := ds[0].(map[string]any)
	if d["event_type"] != "execution.completed" || d["execution_id"] != ex.ID || d["status"] != "pending" ||
		d["next_attempt_at"] == nil || d["attempts"] == nil {
		t.Errorf("newest delivery %v", d)
	}
	_, page = h.call("GET", "/webhooks/"+id+"/deliveries?limit=1&cursor="+page["next_cursor"].(string), nil)
	if ds := page["deliveries"].([]any); len(ds) != 1 || ds[0].(map[string]any)["event_type"] != "execution.started" {
		t.Errorf("second page %v", page)
	}
	code, red := h.call("POST", "/webhooks/"+id+"/deliveries/"+d["id"].(string)+"/retry", nil)
	if code != http.StatusAccepted || red["status"] != "pending" || red["id"] != d["id"] {
		t.Errorf("retry: %d %v", code, red)
	}
	if code, _ := h.call("POST", "/webhooks/"+id+"/deliveries/msg_none/retry", nil); code != http.StatusNotFound {
		t.Errorf("retry of an unknown delivery: %d", code)
	}
}

func TestWebhookBadInput(t *testing.T) {
	h := strictWebhooks(t)
	for _, c := range []struct {
		body any
		want int
	}{
		{`{"url": "https://example.com/", "events": ["execution.exploded"]}`, 422},
		{`{"url": "https://example.com/", "events": []}`, 422},
		{`{"url": "https://example.com/"}`, 422},
		{`{"url": "https://example.com/", "events": ["execution.started", "execution.started"]}`, 422},
		{`{"events": ["execution.started"]}`, 422},
		{`{"url": "ftp://example.com/", "events": ["execution.started"]}`, 422},
		{`{"url": "https://example.com/", "events": ["execution.started"], "pipeline": ""}`, 422},
		{`{"url": "https://example.com/", "events": ["execution.started"], "tags": {"": "x"}}`, 422},
		{`{"url": "http://127.0.0.1/", "events": ["execution.started"]}`, 422},
		{`{"url": "http://169.254.169.254/latest/meta-data/", "events": ["execution.started"]}`, 422},
		{`{"url": "http://10.0.0.1/", "events": ["execution.started"]}`, 422},
		{`{"url": "http://[::1]:8080/", "events": ["execution.started"]}`, 422},
		{`{"url": "http://localhost/", "events": ["execution.started"]}`, 422},
		{`{"url": "http://224.0.0.1/", "events": ["execution.started"]}`, 422},
		{`{"url": 5, "events": ["execution.started"]}`, 400},
		{`{"url": "https://example.com/", "events": "execution.started"}`, 400},
		{`{"url": "https://example.com/", "events": ["execution.started"], "secret": "whsec_x"}`, 400},
		{`{"URL": "https://example.com/", "events": ["execution.started"]}`, 400},
		{`[]`, 400},
		{`{`, 400},
	} {
		if code, body := h.call("POST", "/webhooks", c.body); code != c.want {
			t.Errorf("POST /webhooks %s: %d %v, want %d", c.body, code, body, c.want)
		}
	}
	if _, list := h.call("GET", "/webhooks", nil); len(list["webhooks"].([]any)) != 0 {
		t.Errorf("refused subscriptions were stored: %v", list)
	}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/executions", 422},
		{"/batches", 422},
	} {
		for _, hook := range []string{
			`{"url": "http://127.0.0.1/", "events": ["execution.completed"]}`,
			`{"url": "https://example.com/", "events": ["batch.completed"]}`,
			`{"url": "https://example.com/", "events": ["nope"]}`,
			`{"url": "https://example.com/", "events": []}`,
			`{"url": "gopher://example.com/", "events": ["execution.completed"]}`,
		} {
			body := `{"pipeline": "noop", "webhook": ` + hook + `}`
			if c.path == "/batches" {
				body = `{"executions": [{"pipeline": "noop"}, ` + body + `]}`
			}
			if code, out := h.call("POST", c.path, body); code != c.want {
				t.Errorf("POST %s %s: %d %v, want %d", c.path, body, code, out, c.want)
			}
		}
		bad := `{"pipeline": "noop", "webhook": {"url": "https://example.com/", "events": ["execution.completed"], "x": 1}}`
		if c.path == "/batches" {
			bad = `{"executions": [` + bad + `]}`
		}
		if code, _ := h.call("POST", c.path, bad); code != http.StatusBadRequest {
			t.Errorf("POST %s with an unknown webhook field: %d, want 400", c.path, code)
		}
	}
	if page, err := h.store.ListExecutions(t.Context(), conveyor.ListFilter{}); err != nil || len(page.Executions) != 0 {
		t.Errorf("refused submissions were stored: %v, %v", page, err)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/webhooks/none"}, {"DELETE", "/webhooks/none"}, {"GET", "/webhooks/none/deliveries"},
		{"POST", "/webhooks/none/deliveries/msg_1/retry"},
	} {
		if code, _ := h.call(c.method, c.path, nil); code != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", c.method, c.path, code)
		}
	}
	_, created := h.call("POST", "/webhooks", map[string]any{"url": "https://1.1.1.1/", "events": []string{"execution.started"}})
	id, _ := created["id"].(string)
	if id == "" {
		t.Fatalf("a public target was refused: %v", created)
	}
	for _, q := range []string{"limit=0", "limit=x", "cursor=abc", "status=pending", "limit=1&limit=2"} {
		if code, _ := h.call("GET", "/webhooks/"+id+"/deliveries?"+q, nil); code != http.StatusBadRequest {
			t.Errorf("deliveries?%s: %d, want 400", q, code)
		}
	}
	if code, _ := h.call("PUT", "/webhooks/"+id, nil); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /webhooks/{id}: %d, want 405", code)
	}
	if code, _ := h.call("DELETE", "/webhooks/"+id, `{"x": 1}`); code != http.StatusBadRequest {
		t.Errorf("DELETE with a body: %d, want 400", code)
	}
}

func TestExecutionWebhookIsKept(t *testing.T) {
	h := setup(t, 1, &conveyor.Pipeline{Name: "noop", Handler: noop})
	code, ex := h.call("POST", "/executions", `{"pipeline": "noop", "webhook": {"url": "http://127.0.0.1:9/x", "events": ["execution.completed"]}}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST /executions: %d %v", code, ex)
	}
	id := ex["id"].(string)
	h.waitStatus(id, conveyor.StatusCompleted)
	_, got := h.call("GET", "/executions/"+id, nil)
	hook, _ := got["webhook"].(map[string]any)
	if hook["url"] != "http://127.0.0.1:9/x" {
		t.Errorf("GET /executions/{id} webhook = %v", got["webhook"])
	}
	now := time.Now().Add(time.Hour)
	ds, err := h.store.ClaimDeliveries(t.Context(), conveyor.DeliveryClaim{Claim: "t", Now: now, Until: now.Add(time.Minute), Limit: 10, PerHost: 10})
	if err != nil || len(ds) != 1 || ds[0].EventType != conveyor.WebhookCompleted || ds[0].WebhookID != nil {
		t.Errorf("deliveries of the execution's webhook: %+v, %v", ds, err)
	}
}

// TestWebhookDeliveryMatchesContract sends real deliveries (a
// subscription's of an execution and of a batch, and an execution's own)
// to a receiver that fails each first attempt: every POST it gets must be
// the contract's delivery webhook, headers and body, and the deliveries
// list, with its attempts, is checked like every answer.
func TestWebhookDeliveryMatchesContract(t *testing.T) {
	c := mustContract(t)
	item := c.doc.Webhooks["delivery"]
	route := &routers.Route{Spec: c.doc, Path: "delivery", PathItem: item, Method: http.MethodPost, Operation: item.Post}
	var (
		mu       sync.Mutex
		attempts = map[string]int{} // by webhook-id
		errs     []error
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
			Request: r, Route: route, Options: &openapi3filter.Options{MultiError: true},
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		id := r.Header.Get("webhook-id")
		if attempts[id]++; attempts[id] == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	h := setup(t, 1, &conveyor.Pipeline{Name: "noop", Handler: noop})
	sender, err := webhook.New(webhook.Config{Store: h.store, Secret: conveyor.NewWebhookSecret(), Retries: []time.Duration{time.Millisecond},
		AllowPrivate: true, PollInterval: 10 * time.Millisecond, OwnStore: true})
	if err != nil {
		t.Fatal(err)
	}
	sender.Start(t.Context())
	defer sender.Stop(context.Background())

	code, created := h.call("POST", "/webhooks", map[string]any{"url": receiver.URL + "/sub", "events": []string{"execution.completed", "batch.completed"}})
	if code != http.StatusCreated {
		t.Fatalf("POST /webhooks: %d %v", code, created)
	}
	id := created["id"].(string)
	code, ex := h.call("POST", "/executions", map[string]any{"pipeline": "noop",
		"webhook": map[string]any{"url": receiver.URL + "/own", "events": []string{"execution.completed"}}})
	if code != http.StatusAccepted {
		t.Fatalf("POST /executions: %d %v", code, ex)
	}
	if code, b := h.call("POST", "/batches", map[string]any{"executions": []any{map[string]any{"pipeline": "noop"}}}); code != http.StatusAccepted {
		t.Fatalf("POST /batches: %d %v", code, b)
	}

	// Three deliveries to the subscription (two executions, one batch)
	// and one to the execution's own webhook, each delivered at the
	// second attempt.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, page := h.call("GET", "/webhooks/"+id+"/deliveries", nil)
		ds, _ := page["deliveries"].([]any)
		delivered := 0
		for _, d := range ds {
			if d := d.(map[string]any); d["status"] == "delivered" && len(d["attempts"].([]any)) == 2 {
				delivered++
			}
		}
		mu.Lock()
		own := len(attempts) == 4 && !slices.Contains(slices.Collect(maps.Values(attempts)), 1)
		mu.Unlock()
		if delivered == 3 && own {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not all delivered at the second attempt: %v; attempts by id %v", page, attempts)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Errorf("a delivery is not the contract's (api/openapi.yaml webhooks.delivery): %v", err)
	}
}
