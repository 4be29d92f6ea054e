package conveyor

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"
)

// WebhookEvent is the type of a webhook delivery: what happened to an
// execution or a batch.
type WebhookEvent string

// The webhook event types.
const (
	WebhookStarted   WebhookEvent = "execution.started"
	WebhookProgress  WebhookEvent = "execution.progress" // the percentage reached 25, 50 or 75 (ProgressThresholds)
	WebhookStalled   WebhookEvent = "execution.stalled"
	WebhookRetrying  WebhookEvent = "execution.retrying"
	WebhookCompleted WebhookEvent = "execution.completed"
	WebhookFailed    WebhookEvent = "execution.failed"
	WebhookCancelled WebhookEvent = "execution.cancelled"

	WebhookBatchCompleted WebhookEvent = "batch.completed"
	WebhookBatchFailed    WebhookEvent = "batch.failed"
	WebhookBatchCancelled WebhookEvent = "batch.cancelled"
)

// WebhookEvents are every webhook event type, executions' first.
var WebhookEvents = []WebhookEvent{
	WebhookStarted, WebhookProgress, WebhookStalled, WebhookRetrying,
	WebhookCompleted, WebhookFailed, WebhookCancelled,
	WebhookBatchCompleted, WebhookBatchFailed, WebhookBatchCancelled,
}

// Valid reports whether t is one of WebhookEvents.
func (t WebhookEvent) Valid() bool { return slices.Contains(WebhookEvents, t) }

// Batch reports whether t is about a batch rather than an execution.
func (t WebhookEvent) Batch() bool { return strings.HasPrefix(string(t), "batch.") }

// ProgressThresholds are the percentages whose crossing is an
// execution.progress delivery, once each per attempt: when an
// execution's stored percentage goes from below one to at or above it.
// Progress is stored sampled (engine.Config.ProgressStoreInterval), so
// a crossing is seen when it is stored, at the latest with the event
// that ends the attempt; a sample that jumps over several thresholds
// makes one delivery for each.
var ProgressThresholds = []float64{25, 50, 75}

// The webhook lifecycle: which change of an execution makes which
// delivery. A store applies these rules in the transaction of the change
// (an outbox, so a crash loses none); its SQL says them again, and
// storetest checks that the two agree.

// WebhookEventsOf are the webhook events of one change of an execution
// from before to after, in the order they are delivered: each progress
// threshold crossed, then a stall that began, then the new status.
func WebhookEventsOf(before, after *Execution) []WebhookEvent {
	var evs []WebhookEvent
	from, to := 0.0, percentage(after.Progress)
	if p := percentage(before.Progress); p != nil {
		from = *p
	}
	for _, t := range ProgressThresholds {
		if to != nil && from < t && *to >= t {
			evs = append(evs, WebhookProgress)
		}
	}
	if before.StalledSince == nil && after.StalledSince != nil {
		evs = append(evs, WebhookStalled)
	}
	if before.Status != after.Status {
		switch after.Status {
		case StatusRunning:
			evs = append(evs, WebhookStarted)
		case StatusPending:
			evs = append(evs, WebhookRetrying)
		default:
			evs = append(evs, WebhookEvent("execution."+string(after.Status)))
		}
	}
	return evs
}

func percentage(p *Progress) *float64 {
	if p == nil {
		return nil
	}
	return p.Percentage
}

// BatchWebhookEvent is the webhook event of a batch that just became
// final with status s.
func BatchWebhookEvent(s Status) WebhookEvent { return WebhookEvent("batch." + string(s)) }

// Webhook is a subscription: deliveries of the events it names, of the
// executions (and batches) its filters select, to its URL.
type Webhook struct {
	ID     string         `json:"id"`
	URL    string         `json:"url"`
	Events []WebhookEvent `json:"events"`
	// Pipeline, when set, selects that pipeline's executions only (and
	// no batch events: a batch may mix pipelines).
	Pipeline *string `json:"pipeline"`
	// Tags select executions (or batches) that have every one of them.
	Tags      Tags      `json:"tags"`
	CreatedAt time.Time `json:"created_at"`
	// DisabledAt is set when the receiver answered 410 Gone: no more
	// deliveries are made for it.
	DisabledAt *time.Time `json:"disabled_at"`
	// Secret signs its deliveries (SignWebhook); shown once, when it is
	// created.
	Secret string `json:"secret,omitempty"`
}

// Host is the authority of the webhook's URL (host and port): deliveries
// to one are bounded in number at once.
func (w *Webhook) Host() string { return URLHost(w.URL) }

// URLHost is the authority (host[:port]) of a URL, "" when it has none.
func URLHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// Webhook limits.
const (
	MaxWebhookURL = 2048
	MaxWebhooks   = 1000
)

// ValidateNew returns EINVALID unless a store may create w: an id, a
// valid URL (ValidWebhookURL), event types, valid tags, a secret
// (ValidWebhookSecret) and a storable creation time.
func (w *Webhook) ValidateNew() error {
	switch {
	case w.ID == "" || !StorableText(w.ID):
		return Errorf(EINVALID, "webhook has no id")
	case !StorableTime(w.CreatedAt):
		return Errorf(EINVALID, "webhook has no valid creation time")
	case w.Pipeline != nil && (*w.Pipeline == "" || !StorableText(*w.Pipeline)):
		return Errorf(EINVALID, "pipeline must be a non-empty string when given")
	}
	if err := ValidWebhookSecret(w.Secret); err != nil {
		return err
	}
	if err := ValidWebhookURL(w.URL); err != nil {
		return err
	}
	if err := validEvents(w.Events, true); err != nil {
		return err
	}
	return w.Tags.Validate()
}

// ExecutionWebhook is the webhook of one execution, given when it is
// submitted: its deliveries are signed with the server's secret.
type ExecutionWebhook struct {
	URL    string         `json:"url"`
	Events []WebhookEvent `json:"events"`
}

// Validate returns EINVALID unless w is a valid URL and execution event
// types (batch events are for subscriptions).
func (w *ExecutionWebhook) Validate() error {
	if err := ValidWebhookURL(w.URL); err != nil {
		return Errorf(EINVALID, "webhook: %s", ErrorMessage(err))
	}
	if err := validEvents(w.Events, false); err != nil {
		return Errorf(EINVALID, "webhook: %s", ErrorMessage(err))
	}
	return nil
}

func validEvents(evs []WebhookEvent, batch bool) error {
	if len(evs) == 0 {
		return Errorf(EINVALID, "events must name at least one event type")
	}
	for i, t := range evs {
		switch {
		case !t.Valid():
			return Errorf(EINVALID, "events[%d]: %q is not an event type (one of %s)", i, t, joinEvents())
		case t.Batch() && !batch:
			return Errorf(EINVALID, "events[%d]: %q is for subscriptions (POST /webhooks), not one execution", i, t)
		case slices.Contains(evs[:i], t):
			return Errorf(EINVALID, "events[%d]: %q is given twice", i, t)
		}
	}
	return nil
}

func joinEvents() string {
	s := make([]string, len(WebhookEvents))
	for i, t := range WebhookEvents {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// ValidWebhookURL returns EINVALID unless raw is an absolute http or
// https URL with a host, no user info and no fragment, of at most
// MaxWebhookURL bytes. Where it points is checked by the sender (see
// package webhook), which refuses private addresses.
func ValidWebhookURL(raw string) error {
	if raw == "" {
		return Errorf(EINVALID, "url is required")
	}
	if len(raw) > MaxWebhookURL || !StorableText(raw) {
		return Errorf(EINVALID, "url must be text of at most %d bytes", MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return Errorf(EINVALID, "url %q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return Errorf(EINVALID, "url %q: only http and https are allowed", raw)
	case u.Host == "" || u.Hostname() == "":
		return Errorf(EINVALID, "url %q has no host", raw)
	case u.User != nil:
		return Errorf(EINVALID, "url %q: user info is not allowed", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return Errorf(EINVALID, "url %q: a fragment is not allowed", raw)
	case u.String() != raw:
		return Errorf(EINVALID, "url %q is not in canonical form (%q)", raw, u.String())
	}
	return nil
}

// WebhookSecretPrefix starts every webhook secret: "whsec_" and the
// base64 of the key, as Standard Webhooks writes them.
const WebhookSecretPrefix = "whsec_"

// WebhookSecretKey returns the HMAC key of a secret: the base64-decoded
// part after whsec_. EINVALID when it is malformed or shorter than 24
// bytes.
func WebhookSecretKey(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	if !ok {
		return nil, Errorf(EINVALID, "a webhook secret starts with %s", WebhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, Errorf(EINVALID, "a webhook secret is %s and base64: %v", WebhookSecretPrefix, err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, Errorf(EINVALID, "a webhook secret's key is 24 to 64 bytes, not %d", len(key))
	}
	return key, nil
}

// ValidWebhookSecret returns EINVALID unless secret is whsec_ and the
// base64 of a key of 24 to 64 bytes.
func ValidWebhookSecret(secret string) error {
	_, err := WebhookSecretKey(secret)
	return err
}

// DeliveryStatus is where a delivery is: pending (an attempt is due at
// NextAttemptAt), delivered (a receiver answered 2xx) or failed (no
// attempts left, or the subscription is gone).
type DeliveryStatus string

// The delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is one event sent to one webhook: the outbox row, written in
// the transaction of the change it reports, and its attempts.
type Delivery struct {
	// ID is the webhook-id header: the same on every attempt.
	ID          string         `json:"id"`
	WebhookID   *string        `json:"webhook_id"` // nil for an execution's own webhook
	URL         string         `json:"url"`
	EventType   WebhookEvent   `json:"event_type"`
	ExecutionID *string        `json:"execution_id"`
	BatchID     *string        `json:"batch_id"`
	Status      DeliveryStatus `json:"status"`
	Attempts    []Attempt      `json:"attempts"`
	// CreatedAt is when the change it reports was stored: the body's
	// timestamp.
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"` // set while pending

	// What a claim gives the sender: the subscription's secret ("" for
	// an execution's own webhook: the server's), the body once the first
	// attempt built it, and the claim that fences its writes.
	Secret string          `json:"-"`
	Body   json.RawMessage `json:"-"`
	Claim  string          `json:"-"`
	Host   string          `json:"-"`
}

// Attempt is one try of a delivery: the receiver's HTTP status, or the
// error that kept it from answering.
type Attempt struct {
	Time       time.Time `json:"time"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// DeliveryFilter selects a webhook's deliveries, newest first.
type DeliveryFilter struct {
	WebhookID string
	Limit     int    // 1..MaxListLimit; 0 means DefaultListLimit
	Cursor    string // NextCursor of the previous page
}

// DeliveryPage is one page of ListDeliveries.
type DeliveryPage struct {
	Deliveries []*Delivery `json:"deliveries"`
	NextCursor *string     `json:"next_cursor"`
}

// DeliveryClaim asks for due deliveries.
type DeliveryClaim struct {
	Claim   string    // fences the writes of this claim (RecordDelivery)
	Now     time.Time // due: NextAttemptAt at or before it
	Until   time.Time // the claim holds until then
	Limit   int
	PerHost int      // at most this many of one host
	Skip    []string // hosts not to take any of (busy on this node)
	// HeldBefore, when after Now, also takes deliveries whose claim holds
	// until before it: on a store one node has to itself, the claims of
	// a process that died.
	HeldBefore time.Time
}

// DeliveryOutcome is what an attempt of a claimed delivery did.
type DeliveryOutcome struct {
	ID, Claim string
	Attempt   Attempt
	// Status is pending (retry at NextAttemptAt), delivered or failed.
	Status        DeliveryStatus
	NextAttemptAt *time.Time
	// DisableWebhook disables the subscription (the receiver answered
	// 410) and fails its pending deliveries.
	DisableWebhook bool
}

// WebhookStore keeps webhook subscriptions and their deliveries, the
// outbox every status change, stall and progress threshold of an
// execution (and final status of a batch) writes to, in the transaction
// of that change, when a subscription or the execution's own webhook
// asks for it (WebhookEventsOf). With no subscription and no execution
// webhook it costs a change almost nothing.
type WebhookStore interface {
	// CreateWebhook stores w (Webhook.ValidateNew). ECONFLICT if the id
	// exists.
	CreateWebhook(ctx context.Context, w *Webhook) error
	// GetWebhook returns a subscription with its secret, ENOTFOUND if none.
	GetWebhook(ctx context.Context, id string) (*Webhook, error)
	// ListWebhooks returns every subscription, newest first, with secrets.
	ListWebhooks(ctx context.Context) ([]*Webhook, error)
	// DeleteWebhook deletes a subscription and its deliveries. ENOTFOUND
	// if none.
	DeleteWebhook(ctx context.Context, id string) error

	// ListDeliveries returns a subscription's deliveries newest first.
	// ENOTFOUND for an unknown subscription, EINVALID for a bad cursor.
	ListDeliveries(ctx context.Context, f DeliveryFilter) (*DeliveryPage, error)
	// ClaimDeliveries takes up to q.Limit due pending deliveries, oldest
	// first, that no unexpired claim holds, and holds them for q.Claim
	// until q.Until: on a shared store, one node at a time sends each.
	ClaimDeliveries(ctx context.Context, q DeliveryClaim) ([]*Delivery, error)
	// SetDeliveryBody keeps the body of a claimed delivery that had none,
	// before its first attempt, so that every attempt sends the same
	// bytes. It returns the body kept (another's if one was kept first).
	SetDeliveryBody(ctx context.Context, id, claim string, body []byte) (json.RawMessage, error)
	// RecordDelivery records an attempt of a delivery claimed with
	// o.Claim and releases the claim; ECONFLICT if the claim was lost.
	RecordDelivery(ctx context.Context, o DeliveryOutcome) error
	// RedeliverNow makes a delivery of a subscription pending and due at
	// now, whatever its status, and returns it. ENOTFOUND if either is
	// unknown.
	RedeliverNow(ctx context.Context, webhookID, deliveryID string, now time.Time) (*Delivery, error)

	// WebhookSecret returns the secret that signs executions' own
	// webhooks, stored once for every node: candidate if none was stored
	// yet (then stored is true).
	WebhookSecret(ctx context.Context, candidate string) (secret string, stored bool, err error)
}

// WebhookNotFound is the ENOTFOUND of an unknown webhook id.
func WebhookNotFound(id string) error { return Errorf(ENOTFOUND, "webhook %q not found", id) }

// DeliveryNotFound is the ENOTFOUND of an unknown delivery id.
func DeliveryNotFound(id string) error { return Errorf(ENOTFOUND, "delivery %q not found", id) }

// Page reads f's limit and cursor as ListFilter.Page does.
func (f DeliveryFilter) Page() (limit int, before int64, err error) {
	return page(f.Limit, "", nil, f.Cursor)
}

// NewWebhookSecret returns a new secret: whsec_ and the base64 of 32
// random bytes.
func NewWebhookSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
}
