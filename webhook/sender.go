// Package webhook sends the deliveries of the webhook outbox
// (conveyor.WebhookStore): it claims due deliveries, builds each body
// once, signs it as Standard Webhooks says (Sign), POSTs it and records
// the attempt, retrying on a schedule.
//
// # Guarantees
//
// Every delivery is sent at least once while it has attempts left: a
// delivery is stored with the change it reports, so a node that dies
// before sending it leaves it for the next claim, on this node after a
// restart or on another node of a shared store once the claim expires.
// A node that dies after the receiver answered but before it recorded
// the answer sends it again, with the same webhook-id and body:
// receivers deduplicate by webhook-id.
//
// Deliveries are claimed in the order the changes were stored, and the
// first attempts to one receiver host start in that order, but up to
// Config.PerHost run at once, several nodes send at once and a failed
// attempt is retried later while newer deliveries go out: a receiver
// that needs order compares data.last_seq (or the timestamp).
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Store is what the sender needs of a store.
type Store interface {
	conveyor.WebhookStore
	GetExecution(ctx context.Context, id string) (*conveyor.Execution, error)
	GetBatch(ctx context.Context, id string) (*conveyor.Batch, error)
}

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultPollInterval = 500 * time.Millisecond
	DefaultConcurrency  = 32
	DefaultPerHost      = 4
	// MaxResponseBytes is how much of a receiver's answer is read.
	MaxResponseBytes = 64 << 10
)

// The results of an attempt, as Config.ResultFunc is told them.
const (
	ResultDelivered = "delivered" // 2xx
	ResultRetry     = "retry"     // failed, another attempt is scheduled
	ResultFailed    = "failed"    // failed with no attempts left, or 410 Gone
)

// Config configures a Sender.
type Config struct {
	Store Store
	// Secret signs the deliveries of executions' own webhooks
	// (subscriptions have their own).
	Secret string
	// Retries is the delay before each retry of a failed attempt, ±10 %;
	// nil means DefaultRetries. A 429 or 503 with Retry-After waits that
	// long instead.
	Retries []time.Duration
	// Timeout bounds an attempt, answer included; default DefaultTimeout.
	Timeout time.Duration
	// AllowPrivate lets deliveries reach loopback, private and link-local
	// addresses, which are refused by default (SSRF).
	AllowPrivate bool
	// PollInterval is how often due deliveries are looked for when
	// nothing woke the sender (Wake); default DefaultPollInterval.
	PollInterval time.Duration
	// Concurrency bounds the attempts in flight on this node, PerHost
	// those to one receiver host, so that a slow receiver holds up only
	// its own deliveries. Defaults DefaultConcurrency, DefaultPerHost.
	Concurrency, PerHost int
	// ClaimFor is how long a claim holds a delivery, past which another
	// node may send it; default three timeouts and 30 seconds.
	ClaimFor time.Duration
	// OwnStore says that no other node sends from the store (SQLite):
	// claims made before this sender started are of a process that died,
	// and are taken at once rather than when they expire.
	OwnStore bool
	// ResultFunc, if set, is told the result of each attempt (metrics).
	ResultFunc func(result string)
	Logger     *slog.Logger
	NowFunc    func() time.Time
	// JitterFunc spreads a retry delay; default ±10 % at random.
	JitterFunc func(time.Duration) time.Duration
}

func (c *Config) validate() error {
	if c.Store == nil {
		return errors.New("webhook: Store is required")
	}
	if err := conveyor.ValidWebhookSecret(c.Secret); err != nil {
		return fmt.Errorf("webhook: secret: %s", conveyor.ErrorMessage(err))
	}
	if c.Retries == nil {
		c.Retries = DefaultRetries
	}
	for _, d := range c.Retries {
		if d <= 0 {
			return fmt.Errorf("webhook: retry delay %s is not positive", d)
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PerHost <= 0 {
		c.PerHost = DefaultPerHost
	}
	if c.ClaimFor <= 0 {
		c.ClaimFor = 3*c.Timeout + 30*time.Second
	}
	if c.ResultFunc == nil {
		c.ResultFunc = func(string) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	if c.JitterFunc == nil {
		c.JitterFunc = func(d time.Duration) time.Duration {
			return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64())) //nolint:gosec // jitter, not a secret
		}
	}
	return nil
}

// Sender sends due deliveries until stopped.
type Sender struct {
	cfg    Config
	client *http.Client
	wake   chan struct{}

	mu       sync.Mutex
	inflight int
	hosts    map[string]*host

	started  time.Time
	stop     context.CancelFunc
	loopDone chan struct{}
	sends    sync.WaitGroup
	sendCtx  context.Context
	cancel   context.CancelFunc
}

// New returns a sender; Start makes it send.
func New(cfg Config) (*Sender, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivate {
		dialer.Control = dialControl
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would be dialled instead of the receiver, past the address check
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   cfg.PerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	client := &http.Client{
		Transport: transport,
		// A redirect is an answer that is not 2xx: it is not followed
		// (it could lead anywhere, a private address included).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Sender{cfg: cfg, client: client, wake: make(chan struct{}, 1), hosts: map[string]*host{}}, nil
}

// host is a receiver host with deliveries claimed on this node.
type host struct {
	slots   chan struct{} // one per attempt in flight: at most PerHost
	claimed int           // claimed and not yet recorded
}

// Start makes the sender claim and send due deliveries until Stop.
func (s *Sender) Start(ctx context.Context) {
	s.started = s.cfg.NowFunc()
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.sendCtx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.loopDone = make(chan struct{})
	go s.loop(ctx)
}

// Stop stops claiming and waits for the attempts in flight until ctx is
// done, then cuts them short: a delivery cut short is not recorded, and
// is sent again once its claim expires.
func (s *Sender) Stop(ctx context.Context) {
	if s.stop == nil {
		return
	}
	s.stop()
	<-s.loopDone
	done := make(chan struct{})
	go func() { s.sends.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
	s.client.CloseIdleConnections()
}

// Wake makes the sender look for due deliveries now rather than at its
// next poll (after a redelivery, for example). It never blocks.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sender) loop(ctx context.Context) {
	defer close(s.loopDone)
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		for s.claim(ctx) {
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// claim claims what this node has room for and starts sending it; it
// reports whether it took as many as it asked for (there may be more).
func (s *Sender) claim(ctx context.Context) bool {
	s.mu.Lock()
	free := s.cfg.Concurrency - s.inflight
	var busy []string
	for name, h := range s.hosts {
		if h.claimed >= s.cfg.PerHost {
			busy = append(busy, name)
		}
	}
	s.mu.Unlock()
	if free <= 0 {
		return false
	}
	now := s.cfg.NowFunc()
	q := conveyor.DeliveryClaim{
		Claim: newClaim(), Now: now, Until: now.Add(s.cfg.ClaimFor), Limit: free, PerHost: s.cfg.PerHost, Skip: busy,
	}
	if s.cfg.OwnStore {
		// Every claim this sender makes holds until at least this.
		q.HeldBefore = s.started.Add(s.cfg.ClaimFor)
	}
	ds, err := s.cfg.Store.ClaimDeliveries(ctx, q)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("claim webhook deliveries", "err", err)
		}
		return false
	}
	for _, d := range ds {
		s.mu.Lock()
		s.inflight++
		h := s.hosts[d.Host]
		if h == nil {
			h = &host{slots: make(chan struct{}, s.cfg.PerHost)}
			s.hosts[d.Host] = h
		}
		h.claimed++
		s.mu.Unlock()
		s.sends.Go(func() {
			h.slots <- struct{}{} // at most PerHost to a host at once
			s.send(s.sendCtx, d)
			<-h.slots
			s.mu.Lock()
			s.inflight--
			if h.claimed--; h.claimed == 0 {
				delete(s.hosts, d.Host)
			}
			s.mu.Unlock()
			s.Wake() // room for more
		})
	}
	return len(ds) == free
}

func newClaim() string {
	return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64()) //nolint:gosec // an id, not a secret
}

// send makes one attempt of a claimed delivery and records it.
func (s *Sender) send(ctx context.Context, d *conveyor.Delivery) {
	body := d.Body
	if body == nil {
		b, err := s.body(ctx, d)
		if err != nil {
			// An execution deleted since is final; a store error is retried.
			gone := conveyor.ErrorCode(err) == conveyor.ENOTFOUND
			s.record(ctx, d, conveyor.Attempt{Time: s.cfg.NowFunc().UTC(), Error: err.Error()}, nil, gone)
			return
		}
		if body, err = s.cfg.Store.SetDeliveryBody(ctx, d.ID, d.Claim, b); err != nil {
			s.cfg.Logger.Warn("keep webhook body", "delivery", d.ID, "err", err)
			return
		}
	}
	secret := d.Secret
	if secret == "" {
		secret = s.cfg.Secret
	}
	start := s.cfg.NowFunc()
	resp, err := s.post(ctx, d, secret, body, start)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // stopping: the claim expires and it goes again
	}
	end := s.cfg.NowFunc()
	a := conveyor.Attempt{Time: start.UTC(), DurationMS: end.Sub(start).Milliseconds()}
	if err != nil {
		a.Error = describe(err, s.cfg.Timeout)
		s.record(ctx, d, a, nil, false)
		return
	}
	a.StatusCode = resp.status
	s.record(ctx, d, a, resp, false)
}

// body builds a delivery's body: its type, the time of the change and
// the execution or batch as GET returns it now.
func (s *Sender) body(ctx context.Context, d *conveyor.Delivery) ([]byte, error) {
	var (
		data any
		err  error
	)
	switch {
	case d.ExecutionID != nil:
		data, err = s.cfg.Store.GetExecution(ctx, *d.ExecutionID)
	case d.BatchID != nil:
		data, err = s.cfg.Store.GetBatch(ctx, *d.BatchID)
	default:
		err = errors.New("delivery of neither an execution nor a batch")
	}
	if err != nil {
		return nil, fmt.Errorf("build body: %w", err)
	}
	return json.Marshal(Payload{Type: d.EventType, Timestamp: d.CreatedAt.UTC(), Data: data})
}

// Payload is the body of every delivery.
type Payload struct {
	Type      conveyor.WebhookEvent `json:"type"`
	Timestamp time.Time             `json:"timestamp"`
	// Data is the execution (or batch) as GET /executions/{id} (or
	// /batches/{id}) returns it when the first attempt is made.
	Data any `json:"data"`
}

// answer is a receiver's answer.
type answer struct {
	status int
	header http.Header
}

// post sends the body and reads up to MaxResponseBytes of the answer.
func (s *Sender) post(ctx context.Context, d *conveyor.Delivery, secret string, body []byte, now time.Time) (*answer, error) {
	sig, err := Sign(secret, d.ID, now, body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Conveyor-Webhooks/1")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes)); err != nil && resp.StatusCode/100 != 2 {
		return nil, err
	}
	return &answer{resp.StatusCode, resp.Header}, nil
}

// describe is the error of an attempt as the deliveries list shows it.
func describe(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, errPrivate):
		return "refused: the receiver's address is private (serve --webhook-allow-private allows it)"
	}
	return err.Error()
}

// record records an attempt: delivered on a 2xx, otherwise a retry at
// the next delay of the schedule (or Retry-After) while attempts are
// left, failed after; a 410 fails it and disables its subscription.
func (s *Sender) record(ctx context.Context, d *conveyor.Delivery, a conveyor.Attempt, resp *answer, final bool) {
	o := conveyor.DeliveryOutcome{ID: d.ID, Claim: d.Claim, Attempt: a}
	made := len(d.Attempts) + 1
	switch {
	case resp != nil && resp.status/100 == 2:
		o.Status = conveyor.DeliveryDelivered
	case resp != nil && resp.status == http.StatusGone:
		o.Status, o.DisableWebhook = conveyor.DeliveryFailed, true
	case final || made > len(s.cfg.Retries):
		o.Status = conveyor.DeliveryFailed
	default:
		now := s.cfg.NowFunc()
		delay := s.cfg.JitterFunc(s.cfg.Retries[made-1])
		if resp != nil {
			if after, ok := retryAfter(resp.status, resp.header, now); ok {
				delay = after
			}
		}
		next := now.Add(delay).UTC()
		o.Status, o.NextAttemptAt = conveyor.DeliveryPending, &next
	}
	if err := s.cfg.Store.RecordDelivery(context.WithoutCancel(ctx), o); err != nil {
		s.cfg.Logger.Warn("record webhook delivery", "delivery", d.ID, "err", err)
		return
	}
	result := ResultRetry
	switch o.Status {
	case conveyor.DeliveryDelivered:
		result = ResultDelivered
	case conveyor.DeliveryFailed:
		result = ResultFailed
		s.cfg.Logger.Warn("webhook delivery failed", "delivery", d.ID, "url", d.URL, "status", a.StatusCode, "err", a.Error,
			"attempts", made, "disabled", o.DisableWebhook)
	}
	s.cfg.ResultFunc(result)
}
