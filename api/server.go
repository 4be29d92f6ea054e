// Package api serves Conveyor over HTTP: REST for executions and pipelines,
// a WebSocket and a Server-Sent Events stream of each execution's events,
// and the dashboard (package web) at /ui/.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/web"
)

// Runner runs executions: package engine.
type Runner interface {
	// SubmitExecution durably records a pending execution; see
	// engine.Engine.SubmitExecution.
	SubmitExecution(ctx context.Context, n conveyor.NewExecution) (ex *conveyor.Execution, created bool, err error)
	// Cancel cancels an execution; see engine.Engine.Cancel.
	Cancel(ctx context.Context, id string) (*conveyor.Execution, error)
	Pipeline(name string) (*conveyor.Pipeline, bool)
	Pipelines() []*conveyor.Pipeline // sorted by name
	Running() int                    // executions running on this node
	// SubmitBatch durably records a batch; see engine.Engine.SubmitBatch.
	SubmitBatch(ctx context.Context, nb conveyor.NewBatch) (b *conveyor.Batch, created bool, err error)
	// CancelBatch cancels a batch's members; see engine.Engine.CancelBatch.
	CancelBatch(ctx context.Context, id string) (*conveyor.Batch, error)
}

// Executions reads executions as clients see them now, stored state with
// newer live progress merged in: package live.
type Executions interface {
	Execution(ctx context.Context, id string) (*conveyor.Execution, error)
	// Watch subscribes to an execution's live events, then reads it.
	Watch(ctx context.Context, id string) (*conveyor.Watch, error)
	// WatchAll subscribes to the live events of every execution.
	WatchAll() conveyor.Subscription
	// Merge gives ex, as read from the store, the newer progress published
	// on this node, as Execution does.
	Merge(ex *conveyor.Execution)
}

// Config configures a Server.
type Config struct {
	// Store serves what needs no live view: lists, event logs, logs and
	// the health check.
	Store      conveyor.Store
	Runner     Runner
	Executions Executions
	// LogWakeups tells streams that follow logs when lines are stored;
	// without it they read the store only at each heartbeat and at the
	// end.
	LogWakeups LogWakeups
	// AllowedOrigins are host patterns (path.Match syntax) of browser pages
	// on other origins allowed to open WebSocket streams. Same-origin
	// pages are always allowed.
	AllowedOrigins []string
	// APIKey, when set, is required as "Authorization: Bearer KEY" on every
	// request but /healthz and /openapi.json; streams also accept a token from
	// POST /executions/{id}/token.
	APIKey string
	// LoopbackHostsOnly makes the server answer only requests whose Host
	// is a loopback name or address: what a node without an API key, bound
	// to loopback, needs against DNS rebinding (a page on another site
	// whose name resolves to 127.0.0.1 would otherwise reach the API, and
	// its WebSocket would pass the same-origin check).
	LoopbackHostsOnly bool
	// PingInterval is how often WebSocket streams are pinged; default
	// DefaultPingInterval.
	PingInterval time.Duration
	// HeartbeatInterval is how often an idle Server-Sent Events stream gets
	// a comment line so proxies keep it open; default
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	Logger            *slog.Logger

	// Limits (see limits.go); zero means no limit. A client is the API key
	// a request presents, or else its address.
	RateLimit           float64 // submissions a second per client, with bursts of twice that
	MaxStreamsPerClient int     // streams a client may have open
	MaxStreams          int     // streams open on the node
	MaxPending          int     // pending executions past which submissions are refused (approximate)
	// Now is the clock of the limits; default time.Now.
	Now func() time.Time

	// CheckWebhookURLFunc, if set, refuses webhook URLs beyond their
	// form (EINVALID): package webhook's CheckURL, which refuses private
	// addresses.
	CheckWebhookURLFunc func(ctx context.Context, url string) error
	// WakeWebhooksFunc, if set, tells the webhook sender that a delivery
	// is due now (a redelivery).
	WakeWebhooksFunc func()
	// WatchingFunc, if set, is told when the node comes to have streams
	// open (true) and when its last one closes (false), in that order:
	// conveyor.Notifier.Watching.
	WatchingFunc func(streams bool)
	// Metrics counts streams and refusals and serves GET /metrics; nil:
	// none, and /metrics is 404.
	Metrics Metrics
}

// Server is the HTTP handler of the API.
type Server struct {
	cfg    Config
	logger *slog.Logger
	mux    *http.ServeMux
	limits *limits

	closing   chan struct{} // closed by CloseStreams
	closeOnce sync.Once

	// patterns are the routes handle registered, for the test that
	// checks that openapi.yaml describes each.
	patterns []string

	// Streams that run apart from their requests (detach.go).
	detachedMu   sync.Mutex
	detached     map[*detachedStream]struct{}
	detachedGone chan struct{} // closed, and replaced, when one ends

	// Streams open, for Config.WatchingFunc.
	streamsMu sync.Mutex
	streams   int
}

// CloseStreams makes every open stream send what it already holds and
// end (WebSocket: close 1001 going away). A node calls it on shutdown once
// its engine has published the final events of its runs, then
// WaitStreams.
func (s *Server) CloseStreams() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// New returns the API handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, mux: http.NewServeMux(), limits: newLimits(cfg), closing: make(chan struct{}),
		detached: map[*detachedStream]struct{}{}, detachedGone: make(chan struct{})}
	s.handle("POST /executions", keyOnly, s.createExecution)
	s.handle("GET /executions", keyOnly, s.listExecutions)
	s.handle("GET /executions/stats", keyOnly, s.getStats)
	s.handle("GET /executions/throughput", keyOnly, s.getThroughput)
	s.handle("GET /executions/progress/sse", keyOrStreamToken, s.streamManySSE)
	s.handle("GET /executions/progress/ws", keyOrStreamToken, s.streamManyWebSocket)
	s.handle("GET /executions/{id}", keyOnly, s.getExecution)
	s.handle("DELETE /executions/{id}", keyOnly, s.deleteExecution)
	s.handle("GET /executions/{id}/progress", keyOnly, s.getProgress)
	s.handle("GET /executions/{id}/progress/ws", keyOrStreamToken, s.streamWebSocket)
	s.handle("GET /executions/{id}/progress/sse", keyOrStreamToken, s.streamSSE)
	s.handle("GET /executions/{id}/events", keyOnly, s.listEvents)
	s.handle("GET /executions/{id}/logs", keyOrStreamTokenToFollow, s.getLogsOrFollow)
	s.handle("POST /executions/{id}/cancel", keyOnly, s.cancelExecution)
	s.handle("POST /executions/{id}/retry", keyOnly, s.retryExecution)
	s.handle("POST /executions/{id}/token", keyOnly, s.createStreamToken)
	s.handle("POST /batches", keyOnly, s.createBatch)
	s.handle("GET /batches", keyOnly, s.listBatches)
	s.handle("GET /batches/{id}", keyOnly, s.getBatch)
	s.handle("POST /batches/{id}/cancel", keyOnly, s.cancelBatch)
	s.handle("POST /batches/{id}/token", keyOnly, s.createBatchToken)
	s.handle("POST /webhooks", keyOnly, s.createWebhook)
	s.handle("GET /webhooks", keyOnly, s.listWebhooks)
	s.handle("GET /webhooks/{id}", keyOnly, s.getWebhook)
	s.handle("DELETE /webhooks/{id}", keyOnly, s.deleteWebhook)
	s.handle("GET /webhooks/{id}/deliveries", keyOnly, s.listDeliveries)
	s.handle("POST /webhooks/{id}/deliveries/{delivery_id}/retry", keyOnly, s.retryDelivery)
	s.handle("GET /pipelines", keyOnly, s.listPipelines)
	s.handle("GET /pipelines/{name}", keyOnly, s.getPipeline)
	s.handle("GET /healthz", public, s.healthz)
	s.handle("GET /openapi.json", public, s.getOpenAPI)
	s.handle("GET /metrics", keyOnly, s.serveMetrics)
	// The dashboard is a public page, outside the API key check; the
	// calls it makes to the API carry the key.
	s.mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	s.mux.Handle("GET /ui/", http.StripPrefix("/ui", web.Handler()))
	return s
}

// handle routes pattern to fn behind the access check.
func (s *Server) handle(pattern string, a access, fn http.HandlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r, a) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor"`)
			closeUnreadBody(w, r)
			s.writeError(w, r, conveyor.Errorf(conveyor.EUNAUTHORIZED, "missing or wrong API key (Authorization: Bearer KEY)"))
			return
		}
		fn(w, r)
	})
}

// ServeHTTP routes a request, answering unknown paths and methods with the
// same JSON errors as everything else.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.logger.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
			s.writeError(w, r, errors.New("panic"))
		}
	}()
	if s.cfg.LoopbackHostsOnly && !loopbackHost(r.Host) && r.URL.Path != "/healthz" {
		s.writeError(w, r, conveyor.Errorf(conveyor.EBADREQUEST,
			"host %q is not a loopback name: a node without an API key answers only localhost, 127.0.0.1 and [::1]", r.Host))
		return
	}
	if err := checkRequest(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.writeError(w, r, s.unrouted(r))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// loopbackHost reports whether hostport (a Host header) names the
// loopback interface: localhost or a loopback address, any port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// repeatable are the query parameters that may be given more than once.
var repeatable = map[string]bool{"tag": true}

// checkRequest refuses what every endpoint would otherwise read loosely:
// a path that is not clean (the mux would redirect it, with an HTML
// body), a malformed query (url.Values would silently drop the bad
// pair) and a parameter given twice that is read once (which of the two
// counts would be a guess).
func checkRequest(r *http.Request) error {
	p := r.URL.Path
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if p != clean {
		return conveyor.Errorf(conveyor.ENOTFOUND, "no such endpoint: %s %s (paths are not cleaned)", r.Method, p)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return conveyor.Errorf(conveyor.EBADREQUEST, "malformed query string: %v", err)
	}
	for k, vs := range q {
		if len(vs) > 1 && !repeatable[k] {
			return conveyor.Errorf(conveyor.EBADREQUEST, "query parameter %q is given %d times", k, len(vs))
		}
	}
	return nil
}

// unrouted tells a wrong method on a known path from an unknown path.
func (s *Server) unrouted(r *http.Request) error {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			return conveyor.Errorf(conveyor.EMETHOD, "%s is not allowed on %s", r.Method, r.URL.Path)
		}
	}
	return conveyor.Errorf(conveyor.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path)
}

// createRequest is the body of POST /executions.
type createRequest struct {
	Pipeline string                     `json:"pipeline"`
	Input    json.RawMessage            `json:"input"`
	Tags     conveyor.Tags              `json:"tags"`
	Webhook  *conveyor.ExecutionWebhook `json:"webhook"`
	RunAt    string                     `json:"run_at"` // as conveyor.NewExecution takes them
	Delay    string                     `json:"delay"`
}

func (s *Server) createExecution(w http.ResponseWriter, r *http.Request) {
	if !s.admitSubmission(w, r) {
		return
	}
	var req createRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Pipeline == "" {
		s.writeError(w, r, conveyor.Errorf(conveyor.EINVALID, "pipeline is required"))
		return
	}
	if err := s.checkExecutionWebhook(r.Context(), req.Webhook); err != nil {
		s.writeError(w, r, err)
		return
	}
	key, err := idempotencyOf(r, &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.submit(w, r, conveyor.NewExecution{Pipeline: req.Pipeline, Input: req.Input, Tags: req.Tags, Webhook: req.Webhook,
		RunAt: req.RunAt, Delay: req.Delay, Idempotency: key})
}

// submit submits an admitted execution and answers 202 with its
// Location and the execution, or 200 when its idempotency key named an
// execution already.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, ne conveyor.NewExecution) {
	ex, created, err := s.cfg.Runner.SubmitExecution(r.Context(), ne)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/executions/"+ex.ID)
	if !created {
		writeJSON(w, http.StatusOK, ex)
		return
	}
	s.submitted(1)
	writeJSON(w, http.StatusAccepted, ex)
}

func (s *Server) listExecutions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query() // checkRequest refused a malformed query
	f := conveyor.ListFilter{Pipeline: q.Get("pipeline"), Batch: q.Get("batch"), IDPrefix: q.Get("id_prefix")}
	var err error
	if f.Status, f.Tags, f.Limit, f.Cursor, err = listParams(q); err != nil {
		s.writeError(w, r, err)
		return
	}
	if q.Has("fields") {
		if f.WithInput, f.WithResult, f.WithData, err = listFields(q.Get("fields")); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	page, err := s.cfg.Store.ListExecutions(r.Context(), f)
	if err != nil {
		s.writeList(w, r, page, err)
		return
	}
	// Leave out the keys, not just the values, of what was not asked
	// for: a null input is an input too.
	summaries := make([]executionSummary, len(page.Executions))
	for i, ex := range page.Executions {
		summaries[i] = executionSummary{Execution: ex}
		if f.WithInput {
			summaries[i].Input = &ex.Input
		}
		if f.WithResult {
			summaries[i].Result = &ex.Result
		}
		if f.WithData {
			summaries[i].Data = &ex.Data
		}
	}
	s.writeList(w, r, struct {
		Executions []executionSummary `json:"executions"`
		NextCursor *string            `json:"next_cursor"`
	}{summaries, page.NextCursor}, nil)
}

// executionSummary is an execution as a list shows it: input, result
// and data only when asked for.
type executionSummary struct {
	*conveyor.Execution
	Input  *json.RawMessage `json:"input,omitempty"`
	Result *json.RawMessage `json:"result,omitempty"`
	Data   *json.RawMessage `json:"data,omitempty"`
}

// listFields reads the fields parameter of a list: any of input, result
// and data, comma-separated.
func listFields(v string) (input, result, data bool, err error) {
	for name := range strings.SplitSeq(v, ",") {
		var seen *bool
		switch name {
		case "input":
			seen = &input
		case "result":
			seen = &result
		case "data":
			seen = &data
		default:
			return false, false, false, conveyor.Errorf(conveyor.EBADREQUEST, "fields takes input, result and data, comma-separated, not %q", name)
		}
		if *seen {
			return false, false, false, conveyor.Errorf(conveyor.EBADREQUEST, "fields names %q twice", name)
		}
		*seen = true
	}
	return input, result, data, nil
}

// writeList answers a list request with page, or with err: a filter the
// store refuses (EINVALID) is the request's mistake, 400.
func (s *Server) writeList(w http.ResponseWriter, r *http.Request, page any, err error) {
	if conveyor.ErrorCode(err) == conveyor.EINVALID {
		err = conveyor.Errorf(conveyor.EBADREQUEST, "%s", conveyor.ErrorMessage(err))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// listParams reads the query parameters every list takes: status,
// tag (repeatable), limit and cursor. EBADREQUEST when one is malformed.
func listParams(q url.Values) (status conveyor.Status, tags []conveyor.Tag, limit int, cursor string, err error) {
	status, cursor = conveyor.Status(q.Get("status")), q.Get("cursor")
	if status != "" && !status.Valid() {
		return "", nil, 0, "", conveyor.Errorf(conveyor.EBADREQUEST, "status %q is not one of pending, running, completed, failed, cancelled", status)
	}
	for _, v := range q["tag"] {
		t, err := conveyor.ParseTag(v)
		if err != nil {
			return "", nil, 0, "", conveyor.Errorf(conveyor.EBADREQUEST, "%s", conveyor.ErrorMessage(err))
		}
		tags = append(tags, t)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > conveyor.MaxListLimit {
			return "", nil, 0, "", conveyor.Errorf(conveyor.EBADREQUEST, "limit must be an integer from 1 to %d", conveyor.MaxListLimit)
		}
		limit = n
	}
	return status, tags, limit, cursor, nil
}

func (s *Server) getExecution(w http.ResponseWriter, r *http.Request) {
	ex, err := s.cfg.Executions.Execution(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

func (s *Server) getProgress(w http.ResponseWriter, r *http.Request) {
	ex, err := s.cfg.Executions.Execution(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ex.Progress == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, ex.Progress)
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := parseAfter(r.URL.Query().Get("after"), "seq")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.cfg.Store.GetExecution(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	evs, err := s.cfg.Store.Events(r.Context(), id, after, conveyor.MaxListLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": nonNil(evs)})
}

// parseAfter reads the after parameter, a number of what (an event's
// seq, a log line's number); 0 when absent.
func parseAfter(v, what string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	// ParseInt also takes a sign ("+5", "-0"); a number is digits only.
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || v[0] < '0' || v[0] > '9' {
		return 0, conveyor.Errorf(conveyor.EBADREQUEST, "after must be a non-negative integer %s", what)
	}
	return n, nil
}

// getLogs answers a page of an execution's log lines of about
// conveyor.MaxLogPageBytes: ?after= the last of the previous page.
func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := parseAfter(r.URL.Query().Get("after"), "line number")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.cfg.Store.GetExecution(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Store.Logs(r.Context(), id, after, conveyor.MaxLogPageBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) cancelExecution(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	ex, err := s.cfg.Runner.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ex)
}

// deleteExecution deletes a final execution and everything kept of it
// (conveyor.Store.DeleteExecution): 204, or 409 while it is pending or
// running. A stream of it has already ended (it is final); one opened
// later finds no execution.
func (s *Server) deleteExecution(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Store.DeleteExecution(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// retryExecution submits a final execution again as a new one of the
// same pipeline, input, tags and own webhook that names it in retry_of.
// The new execution is an ordinary submission, limits included, but for
// one thing: it is in no batch, since a batch's members are fixed when
// it is submitted.
func (s *Server) retryExecution(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	orig, err := s.cfg.Store.GetExecution(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !orig.Status.Final() {
		s.writeError(w, r, conveyor.Errorf(conveyor.ECONFLICT,
			"execution %s is %s; only a final execution can be retried as new", orig.ID, orig.Status))
		return
	}
	// Admitted only now: a request that could never submit costs the
	// client none of its rate.
	if !s.admitSubmission(w, r) {
		return
	}
	s.submit(w, r, conveyor.NewExecution{
		Pipeline: orig.Pipeline, Input: orig.Input, Tags: orig.Tags, Webhook: orig.Webhook, RetryOf: &orig.ID})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	// A database that drops packets must not hang the health check.
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.logger.Warn("health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "error": "store unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "running": s.cfg.Runner.Running()})
}
