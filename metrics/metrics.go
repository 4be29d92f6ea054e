// Package metrics exports a node's Prometheus metrics with client_golang:
// what the engine runs, what the API streams and refuses, how long the
// store takes to commit, and the Go and process collectors. Each node
// exports its own; a Prometheus server sums them.
//
// Labels are bounded: pipeline names come from the node's configuration
// (a submission of an unknown pipeline is refused before it is counted),
// statuses, transports, limits and commit kinds are fixed sets, and no
// metric is labelled with an execution id. The engine and the API call
// the recording methods on their hot paths, so each is a map read of a
// child resolved in New and an atomic update: no label lookup per call.
// A nil *Metrics records nothing.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conveyor-run/conveyor"
)

// Transports of streams, the label of conveyor_stream_subscribers.
const (
	TransportWebSocket = "websocket"
	TransportSSE       = "sse"
)

// Limits that refuse requests with 429, the label of
// conveyor_limit_rejections_total (docs/deploy.md#limits).
const (
	LimitRate             = "rate"               // submissions a second per client
	LimitStreamsPerClient = "streams_per_client" // open streams per client
	LimitStreams          = "streams"            // open streams on the node
	LimitPending          = "pending"            // pending executions
	LimitConnections      = "connections"        // open connections on the node
)

// Results of webhook delivery attempts, the label of
// conveyor_webhook_deliveries_total.
// They are the results package webhook reports (its Result constants).
const (
	WebhookResultDelivered = "delivered" // the receiver answered 2xx in time
	WebhookResultRetry     = "retry"     // it did not; another attempt is scheduled
	WebhookResultFailed    = "failed"    // it did not and no attempt is left, or it answered 410 Gone
)

// Kinds of records that retention deletes, the label of
// conveyor_retention_deleted_total (package retention's task names).
const (
	RetentionExecutions      = "executions"       // final executions older than the retention
	RetentionIdempotencyKeys = "idempotency_keys" // keys first used more than conveyor.IdempotencyTTL ago
)

// Kinds of store commits, the label of conveyor_store_commit_seconds.
const (
	CommitSubmit = "submit" // a group commit of submissions, or a batch
	CommitWrite  = "write"  // a commit of the engine's writer: events and log lines
)

var (
	transports = []string{TransportWebSocket, TransportSSE}
	limitNames = []string{LimitRate, LimitStreamsPerClient, LimitStreams, LimitPending, LimitConnections}
	commits    = []string{CommitSubmit, CommitWrite}
	webhooks   = []string{WebhookResultDelivered, WebhookResultRetry, WebhookResultFailed}
	retained   = []string{RetentionExecutions, RetentionIdempotencyKeys}
	// finals are the statuses an execution ends in, in the order of
	// pipelineMetrics' arrays.
	finals = [...]conveyor.Status{conveyor.StatusCompleted, conveyor.StatusFailed, conveyor.StatusCancelled}
)

// Buckets of the histograms, in seconds.
var (
	// durationBuckets span a no-op run to a long batch job.
	durationBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 10800}
	// queueWaitBuckets span an idle node's sub-millisecond start to a
	// backlog of an hour.
	queueWaitBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 60, 300, 900, 3600}
	// commitBuckets span an embedded commit to a struggling database.
	commitBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// Metrics is a node's metrics, in a registry of its own.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	submitted   *prometheus.CounterVec
	finished    *prometheus.CounterVec
	running     *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	queueWait   *prometheus.HistogramVec
	subscribers map[string]prometheus.Gauge // by transport
	progress    prometheus.Counter
	commit      map[string]prometheus.Observer // by kind
	limits      map[string]prometheus.Counter  // by limit
	webhooks    *prometheus.CounterVec
	webhookRes  map[string]prometheus.Counter // by result
	deleted     *prometheus.CounterVec
	deletedKind map[string]prometheus.Counter // by kind

	// pipelines holds the children of each configured pipeline; it is
	// not written after New, so reads take no lock. others holds those
	// of pipelines a store holds executions of but this node does not
	// define (another node's, on a shared store).
	pipelines map[string]*pipelineMetrics
	mu        sync.Mutex
	others    map[string]*pipelineMetrics
}

// pipelineMetrics are the children of one pipeline's series.
type pipelineMetrics struct {
	submitted prometheus.Counter
	running   prometheus.Gauge
	queueWait prometheus.Observer
	finished  [len(finals)]prometheus.Counter
	duration  [len(finals)]prometheus.Observer
}

// New returns the metrics of a node that runs the named pipelines, with
// every series of them at zero.
func New(pipelines []string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_executions_submitted_total",
			Help: "Executions submitted to this node, batch members included.",
		}, []string{"pipeline"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_executions_finished_total",
			Help: "Executions whose run on this node ended in a final status (completed, failed or cancelled).",
		}, []string{"pipeline", "status"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conveyor_executions_running",
			Help: "Executions running on this node now.",
		}, []string{"pipeline"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conveyor_execution_duration_seconds",
			Help:    "Run time of the final attempt of executions that finished on this node, from its start to its final status.",
			Buckets: durationBuckets,
		}, []string{"pipeline", "status"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conveyor_queue_wait_seconds",
			Help:    "Time from submission (or a delayed run's run_at) to the start of the first attempt, of executions started on this node.",
			Buckets: queueWaitBuckets,
		}, []string{"pipeline"}),
		progress: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conveyor_progress_messages_total",
			Help: "Progress messages published by runs on this node.",
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_webhook_deliveries_total",
			Help: "Webhook delivery attempts made by this node, by result.",
		}, []string{"result"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_retention_deleted_total",
			Help: "Records this node deleted because they expired, by kind: executions older than the retention, with their events and logs.",
		}, []string{"kind"}),
		pipelines: make(map[string]*pipelineMetrics, len(pipelines)),
		others:    map[string]*pipelineMetrics{},
	}
	subscribers := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "conveyor_stream_subscribers",
		Help: "Streams (WebSocket or Server-Sent Events) open on this node.",
	}, []string{"transport"})
	commit := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "conveyor_store_commit_seconds",
		Help:    "Time of the store commits of this node's group commits: submissions, and the engine's writes of events and log lines.",
		Buckets: commitBuckets,
	}, []string{"op"})
	limits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "conveyor_limit_rejections_total",
		Help: "Requests this node refused with 429 for a limit, by limit.",
	}, []string{"limit"})
	m.subscribers = children(subscribers.WithLabelValues, transports)
	m.commit = children(commit.WithLabelValues, commits)
	m.limits = children(limits.WithLabelValues, limitNames)
	m.webhookRes = children(m.webhooks.WithLabelValues, webhooks)
	m.deletedKind = children(m.deleted.WithLabelValues, retained)
	for _, name := range pipelines {
		m.pipelines[name] = m.newPipeline(name)
	}
	m.reg.MustRegister(m.submitted, m.finished, m.running, m.duration, m.queueWait, subscribers, m.progress, commit, limits, m.webhooks, m.deleted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// children resolves the child of each label value once.
func children[T any](with func(...string) T, values []string) map[string]T {
	c := make(map[string]T, len(values))
	for _, v := range values {
		c[v] = with(v)
	}
	return c
}

func (m *Metrics) newPipeline(name string) *pipelineMetrics {
	p := &pipelineMetrics{
		submitted: m.submitted.WithLabelValues(name),
		running:   m.running.WithLabelValues(name),
		queueWait: m.queueWait.WithLabelValues(name),
	}
	for i, s := range finals {
		p.finished[i] = m.finished.WithLabelValues(name, string(s))
		p.duration[i] = m.duration.WithLabelValues(name, string(s))
	}
	return p
}

// pipeline returns the children of the named pipeline.
func (m *Metrics) pipeline(name string) *pipelineMetrics {
	if p := m.pipelines[name]; p != nil {
		return p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.others[name]
	if p == nil {
		p = m.newPipeline(name)
		m.others[name] = p
	}
	return p
}

// ServeHTTP serves the metrics in the Prometheus text format (or what
// the scraper asks for).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.handler.ServeHTTP(w, r)
}

// Registry is the registry the metrics are in, for an embedder that
// adds its own or gathers them into another.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Submitted counts an execution of pipeline submitted.
func (m *Metrics) Submitted(pipeline string) {
	if m == nil {
		return
	}
	m.pipeline(pipeline).submitted.Inc()
}

// Started counts a run of pipeline started on this node. queueWait, from
// submission (a delayed run's run_at) to this start, is observed for
// first attempts only: a retry's would include the earlier attempts.
func (m *Metrics) Started(pipeline string, attempt int, queueWait time.Duration) {
	if m == nil {
		return
	}
	p := m.pipeline(pipeline)
	p.running.Inc()
	if attempt <= 1 {
		p.queueWait.Observe(max(0, queueWait.Seconds()))
	}
}

// Ended counts a run of pipeline on this node as ended, whatever its
// outcome.
func (m *Metrics) Ended(pipeline string) {
	if m == nil {
		return
	}
	m.pipeline(pipeline).running.Dec()
}

// Finished counts a run of pipeline that ended in status after ran. A
// status that is not final (pending, after a failed attempt that will be
// retried) is not counted.
func (m *Metrics) Finished(pipeline string, status conveyor.Status, ran time.Duration) {
	if m == nil {
		return
	}
	for i, s := range finals {
		if s == status {
			p := m.pipeline(pipeline)
			p.finished[i].Inc()
			p.duration[i].Observe(max(0, ran.Seconds()))
			return
		}
	}
}

// ProgressPublished counts a progress message published.
func (m *Metrics) ProgressPublished() {
	if m == nil {
		return
	}
	m.progress.Inc()
}

// StoreCommitted observes a store commit of kind op (CommitSubmit,
// CommitWrite) that took took.
func (m *Metrics) StoreCommitted(op string, took time.Duration) {
	if m == nil {
		return
	}
	if o := m.commit[op]; o != nil {
		o.Observe(took.Seconds())
	}
}

// StreamOpened counts a stream of transport (TransportWebSocket,
// TransportSSE) opened; StreamClosed counts it closed.
func (m *Metrics) StreamOpened(transport string) {
	if m == nil {
		return
	}
	if g := m.subscribers[transport]; g != nil {
		g.Inc()
	}
}

// StreamClosed counts a stream of transport closed.
func (m *Metrics) StreamClosed(transport string) {
	if m == nil {
		return
	}
	if g := m.subscribers[transport]; g != nil {
		g.Dec()
	}
}

// LimitRejected counts a request refused for limit (LimitRate, …).
func (m *Metrics) LimitRejected(limit string) {
	if m == nil {
		return
	}
	if c := m.limits[limit]; c != nil {
		c.Inc()
	}
}

// WebhookDelivered counts a webhook delivery attempt with its result:
// WebhookResultDelivered, WebhookResultRetry or WebhookResultFailed, or another short fixed
// word; never a URL, an id or an error message, which would make a
// series each.
func (m *Metrics) WebhookDelivered(result string) {
	if m == nil {
		return
	}
	if c := m.webhookRes[result]; c != nil {
		c.Inc()
		return
	}
	m.webhooks.WithLabelValues(result).Inc()
}

// RetentionDeleted counts n records of kind (RetentionExecutions, or
// another fixed word: a retention task's name) deleted as expired.
func (m *Metrics) RetentionDeleted(kind string, n int) {
	if m == nil {
		return
	}
	c := m.deletedKind[kind]
	if c == nil {
		c = m.deleted.WithLabelValues(kind)
	}
	c.Add(float64(n))
}
