package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store/sqlite"
	"github.com/conveyor-run/conveyor/webhook"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// verify checks a request's signature as the Standard Webhooks spec
// says, written from the spec rather than from package webhook: the
// HMAC-SHA256, keyed with the base64-decoded secret after "whsec_", of
// "id.timestamp.body", base64, after "v1," in a space-separated list.
func verify(secret string, h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers: id %q, timestamp %q, signature %q", id, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", ts, err)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s too far from now", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for sig := range strings.FieldsSeq(sigs) {
		if v, ok := strings.CutPrefix(sig, "v1,"); ok && hmac.Equal([]byte(v), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no valid signature in %q", sigs)
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on loopback that answers each request
// with the next of its answers (the last one repeats) and keeps what it
// got.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []request
	answers []func(w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, answers ...func(w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{answers: answers}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, request{r.Header.Clone(), body})
		answer := rc.answers[min(len(rc.got), len(rc.answers))-1]
		rc.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

func status(code int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

type harness struct {
	t     *testing.T
	store *sqlite.DB
	n     int
}

func setup(t *testing.T) *harness {
	t.Helper()
	s, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &harness{t: t, store: s}
}

var secret = webhook.NewSecret()

// subscribe stores a subscription to execution.started at url.
func (h *harness) subscribe(url string) *conveyor.Webhook {
	h.t.Helper()
	w := &conveyor.Webhook{ID: uuid.NewString(), URL: url, Events: []conveyor.WebhookEvent{conveyor.WebhookStarted},
		Secret: webhook.NewSecret(), CreatedAt: time.Now()}
	if err := h.store.CreateWebhook(h.t.Context(), w); err != nil {
		h.t.Fatal(err)
	}
	return w
}

// start submits and claims an execution, which makes a started delivery
// to every subscription.
func (h *harness) start() *conveyor.Execution {
	h.t.Helper()
	h.n++
	ex := &conveyor.Execution{ID: uuid.NewString(), Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: time.Now()}
	if err := h.store.CreateExecution(h.t.Context(), ex); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.ClaimPending(h.t.Context(), 1, time.Now); err != nil {
		h.t.Fatal(err)
	}
	return ex
}

// run starts a sender with short retries until the test ends; the
// receivers are on loopback, so private targets are allowed.
func (h *harness) run(cfg webhook.Config) *webhook.Sender {
	h.t.Helper()
	cfg.AllowPrivate = true
	return h.runStrict(cfg)
}

// runStrict is run with private targets refused as cfg says.
func (h *harness) runStrict(cfg webhook.Config) *webhook.Sender {
	h.t.Helper()
	cfg.Store, cfg.Secret = h.store, secret
	if cfg.Retries == nil {
		cfg.Retries = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}
	}
	cfg.PollInterval = 10 * time.Millisecond
	s, err := webhook.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	s.Start(h.t.Context())
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s
}

// wait polls a subscription's deliveries until done says so.
func (h *harness) wait(webhookID string, done func(ds []*conveyor.Delivery) bool) []*conveyor.Delivery {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := h.store.ListDeliveries(h.t.Context(), conveyor.DeliveryFilter{WebhookID: webhookID})
		if err != nil {
			h.t.Fatal(err)
		}
		if done(page.Deliveries) {
			return page.Deliveries
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(page.Deliveries, "", "  ")
			h.t.Fatalf("deliveries did not get there: %s", b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func settled(n int) func(ds []*conveyor.Delivery) bool {
	return func(ds []*conveyor.Delivery) bool {
		if len(ds) < n {
			return false
		}
		for _, d := range ds {
			if d.Status == conveyor.DeliveryPending {
				return false
			}
		}
		return true
	}
}

func TestSignedPayload(t *testing.T) {
	h := setup(t)
	rc := newReceiver(t, status(204))
	w := h.subscribe(rc.URL + "/hook")
	ex := h.start()
	h.run(webhook.Config{})
	ds := h.wait(w.ID, settled(1))
	if ds[0].Status != conveyor.DeliveryDelivered || len(ds[0].Attempts) != 1 || ds[0].Attempts[0].StatusCode != 204 {
		t.Fatalf("delivery: %+v", ds[0])
	}
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests", len(got))
	}
	if err := verify(w.Secret, got[0].header, got[0].body); err != nil {
		t.Errorf("signature: %v", err)
	}
	if err := verify(webhook.NewSecret(), got[0].header, got[0].body); err == nil {
		t.Errorf("a signature verified with another secret")
	}
	if id := got[0].header.Get("webhook-id"); id != ds[0].ID {
		t.Errorf("webhook-id %q, want the delivery id %q", id, ds[0].ID)
	}
	var p struct {
		Type      string             `json:"type"`
		Timestamp time.Time          `json:"timestamp"`
		Data      conveyor.Execution `json:"data"`
	}
	if err := json.Unmarshal(got[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "execution.started" || p.Data.ID != ex.ID || p.Data.Status != conveyor.StatusRunning || p.Timestamp.IsZero() {
		t.Errorf("payload %s", got[0].body)
	}
	if ct := got[0].header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestRetriesSendTheSameDelivery(t *testing.T) {
	h := setup(t)
	rc := newReceiver(t, status(500), status(502), status(200))
	w := h.subscribe(rc.URL)
	h.start()
	h.run(webhook.Config{})
	ds := h.wait(w.ID, settled(1))
	d := ds[0]
	if d.Status != conveyor.DeliveryDelivered || len(d.Attempts) != 3 || d.Attempts[0].StatusCode != 500 ||
		d.Attempts[1].StatusCode != 502 || d.Attempts[2].StatusCode != 200 || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v", d)
	}
	got := rc.requests()
	for i, r := range got {
		if r.header.Get("webhook-id") != d.ID || string(r.body) != string(got[0].body) {
			t.Errorf("attempt %d: id %s, body %s; want the first's", i, r.header.Get("webhook-id"), r.body)
		}
		if err := verify(w.Secret, r.header, r.body); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for _, code := range []int{429, 503} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(code)
			}, status(200))
			w := h.subscribe(rc.URL)
			h.start()
			h.run(webhook.Config{})
			d := h.wait(w.ID, settled(1))[0]
			if d.Status != conveyor.DeliveryDelivered || len(d.Attempts) != 2 || d.Attempts[0].StatusCode != code {
				t.Fatalf("delivery %+v", d)
			}
			// The schedule says 20ms; Retry-After says a second.
			if gap := d.Attempts[1].Time.Sub(d.Attempts[0].Time); gap < time.Second {
				t.Errorf("retried %s after a Retry-After of 1s", gap)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	h := setup(t)
	rc := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, status(200))
	w := h.subscribe(rc.URL)
	h.start()
	h.run(webhook.Config{Timeout: 100 * time.Millisecond})
	d := h.wait(w.ID, settled(1))[0]
	if d.Status != conveyor.DeliveryDelivered || len(d.Attempts) != 2 || !strings.Contains(d.Attempts[0].Error, "no answer within") {
		t.Fatalf("delivery %+v", d)
	}
}

func TestConnectionRefusedFailsAfterRetries(t *testing.T) {
	h := setup(t)
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/"
	l.Close()
	w := h.subscribe(url)
	h.start()
	h.run(webhook.Config{})
	d := h.wait(w.ID, settled(1))[0]
	if d.Status != conveyor.DeliveryFailed || len(d.Attempts) != 3 || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v", d)
	}
	for _, a := range d.Attempts {
		if !strings.Contains(a.Error, "refused") || a.StatusCode != 0 {
			t.Errorf("attempt %+v", a)
		}
	}
}

func TestGoneDisablesTheSubscription(t *testing.T) {
	h := setup(t)
	rc := newReceiver(t, status(410))
	w := h.subscribe(rc.URL)
	h.start()
	h.run(webhook.Config{})
	d := h.wait(w.ID, settled(1))[0]
	if d.Status != conveyor.DeliveryFailed || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 410 {
		t.Fatalf("delivery %+v", d)
	}
	got, err := h.store.GetWebhook(t.Context(), w.ID)
	if err != nil || got.DisabledAt == nil {
		t.Fatalf("webhook after 410: %+v, %v", got, err)
	}
	h.start() // no delivery for a disabled subscription
	if ds := h.wait(w.ID, settled(1)); len(ds) != 1 {
		t.Errorf("%d deliveries after the subscription was disabled", len(ds))
	}
}

func TestRedeliverNow(t *testing.T) {
	h := setup(t)
	rc := newReceiver(t, status(200))
	w := h.subscribe(rc.URL)
	h.start()
	s := h.run(webhook.Config{})
	d := h.wait(w.ID, settled(1))[0]
	if _, err := h.store.RedeliverNow(t.Context(), w.ID, d.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Wake()
	h.wait(w.ID, func(ds []*conveyor.Delivery) bool {
		return len(ds[0].Attempts) == 2 && ds[0].Status == conveyor.DeliveryDelivered
	})
	got := rc.requests()
	if len(got) != 2 || got[0].header.Get("webhook-id") != got[1].header.Get("webhook-id") || string(got[0].body) != string(got[1].body) {
		t.Errorf("redelivery differs from the delivery: %d requests", len(got))
	}
}

func TestPrivateTargetsRefusedAtConnect(t *testing.T) {
	// A URL that passed the check at subscription time (DNS rebinding:
	// the name now resolves to loopback) is refused when dialled.
	h := setup(t)
	rc := newReceiver(t, status(200))
	w := h.subscribe(rc.URL)
	h.start()
	h.runStrict(webhook.Config{})
	d := h.wait(w.ID, settled(1))[0]
	if d.Status != conveyor.DeliveryFailed || !strings.Contains(d.Attempts[0].Error, "private") {
		t.Fatalf("delivery %+v", d)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the private receiver got %d requests", n)
	}
}

func TestCheckURL(t *testing.T) {
	ctx := t.Context()
	for _, u := range []string{
		"http://127.0.0.1/", "http://127.0.0.1:8080/x", "http://[::1]/", "http://localhost/", "http://10.1.2.3/",
		"http://192.168.0.1/", "http://172.16.0.1/", "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/",
		"http://224.0.0.1/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/",
		"ftp://example.com/", "file:///etc/passwd", "http://user:pw@example.com/", "http:///x", "not a url", "",
	} {
		if err := webhook.CheckURL(ctx, u, false); conveyor.ErrorCode(err) != conveyor.EINVALID {
			t.Errorf("CheckURL(%q) = %v, want EINVALID", u, err)
		}
	}
	for _, u := range []string{"http://8.8.8.8/hook", "https://1.1.1.1:8443/x?y=z"} {
		if err := webhook.CheckURL(ctx, u, false); err != nil {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
	if err := webhook.CheckURL(ctx, "http://127.0.0.1:9/", true); err != nil {
		t.Errorf("CheckURL with private allowed = %v", err)
	}
}

func TestSlowReceiverHoldsUpOnlyItself(t *testing.T) {
	h := setup(t)
	release := make(chan struct{})
	slow := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	fast := newReceiver(t, status(200))
	ws := h.subscribe(slow.URL)
	wf := h.subscribe(fast.URL)
	for range 5 {
		h.start()
	}
	h.run(webhook.Config{PerHost: 1, Concurrency: 4, Timeout: time.Minute})
	h.wait(wf.ID, func(ds []*conveyor.Delivery) bool {
		return settled(5)(ds) && ds[0].Status == conveyor.DeliveryDelivered
	})
	if n := len(slow.requests()); n != 1 {
		t.Errorf("the slow receiver got %d requests at once, want 1 (PerHost)", n)
	}
	_ = ws
}

func TestSign(t *testing.T) {
	s := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	ts := time.Unix(1700000000, 0)
	got, err := webhook.Sign(s, "msg_1", ts, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Webhook-Id": {"msg_1"}, "Webhook-Timestamp": {"1700000000"}, "Webhook-Signature": {got}}
	mac := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	mac.Write([]byte(`msg_1.1700000000.{"a":1}`))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	_ = h
	if _, err := webhook.Sign("nope", "msg_1", ts, nil); err == nil {
		t.Error("Sign with a bad secret")
	}
}

func TestParseRetries(t *testing.T) {
	if got, err := webhook.ParseRetries(webhook.FormatRetries(webhook.DefaultRetries)); err != nil || len(got) != 7 {
		t.Errorf("round trip: %v, %v", got, err)
	}
	for _, bad := range []string{"5s,,1m", "-1s", "0s", "soon"} {
		if _, err := webhook.ParseRetries(bad); err == nil {
			t.Errorf("ParseRetries(%q) = nil error", bad)
		}
	}
}
