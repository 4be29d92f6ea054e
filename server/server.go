// Package server assembles a Conveyor node: the store, the pipelines, the
// engine, the hub, the relay (on a shared store) and the HTTP API. The conveyor binary's serve command is
// a thin layer over it, and Go programs use it to embed Conveyor and run
// their own handlers (see examples/embed).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
	"github.com/conveyor-run/conveyor/engine"
	"github.com/conveyor-run/conveyor/hub"
	"github.com/conveyor-run/conveyor/live"
	"github.com/conveyor-run/conveyor/metrics"
	"github.com/conveyor-run/conveyor/pipeline"
	"github.com/conveyor-run/conveyor/relay"
	"github.com/conveyor-run/conveyor/retention"
	"github.com/conveyor-run/conveyor/store/postgres"
	"github.com/conveyor-run/conveyor/store/sqlite"
	"github.com/conveyor-run/conveyor/webhook"
)

// Defaults of Config that the server owns; the others are the engine's
// and the store's (engine.DefaultConcurrency, conveyor.DefaultLease).
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultDataDir         = "./conveyor-data"
	DefaultShutdownTimeout = 30 * time.Second
)

// HTTP server timeouts.
const (
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds how long a request takes to arrive, body
	// included, so that a client cannot hold a connection by sending
	// slowly. Streams lift it once they start.
	readTimeout = 30 * time.Second
	idleTimeout = 2 * time.Minute
	// httpShutdownTimeout bounds the HTTP shutdown once the engine has
	// stopped and streams were told to end.
	httpShutdownTimeout = 5 * time.Second
)

// Config configures a node.
type Config struct {
	Addr    string // listen address; default DefaultAddr; port 0 picks one
	DataDir string // folder of the embedded database; default DefaultDataDir
	// DatabaseURL selects PostgreSQL, shared by any number of nodes,
	// instead of the embedded database in DataDir.
	DatabaseURL string
	// NodeID names this node in executions and logs; default the host
	// name plus a random suffix.
	NodeID string
	// Lease is how long a node holds an execution on PostgreSQL without
	// renewing it (every third of it); default conveyor.DefaultLease.
	Lease time.Duration
	// PipelinesDir is a folder of pipeline YAML files; "" loads none.
	PipelinesDir string
	// Pipelines are pipelines defined in Go (usually a Handler), beside the
	// YAML ones.
	Pipelines []*conveyor.Pipeline
	// Concurrency is how many executions run at once; default
	// engine.DefaultConcurrency.
	Concurrency int
	// ShutdownTimeout is how long running executions may finish after
	// shutdown begins before they are cancelled; default
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	AllowedOrigins  []string
	// APIKey, when set, is required on every request but /healthz.
	APIKey string
	// Insecure allows listening beyond loopback without an API key.
	Insecure bool
	// PprofAddr, when set, is a loopback address serving net/http/pprof.
	PprofAddr string
	Logger    *slog.Logger

	// MetricsAddr, when set, is an address serving GET /metrics without
	// the API key (the API serves it too, behind the key).
	MetricsAddr string

	// Limits (docs/deploy.md#limits): zero takes the default, a negative
	// value means no limit. A client is the API key a request presents,
	// or else its address.
	RateLimit           float64 // submissions a second per client, in bursts of twice that; default DefaultRateLimit
	MaxStreamsPerClient int     // open streams per client; default DefaultMaxStreamsPerClient
	MaxStreams          int     // open streams on the node; default DefaultMaxStreams, lowered to fit the open-file limit
	MaxPending          int     // pending executions past which submissions are refused (approximately); default DefaultMaxPending
	// MaxConnections caps the node's open connections; default, and never
	// more than, what the open-file limit leaves room for.
	MaxConnections int

	// Webhooks (docs/guide.md#webhooks). WebhookSecret signs executions'
	// own webhooks (whsec_ and base64); "" uses the one kept in the
	// database, which the first node to start generates and logs.
	WebhookSecret string
	// WebhookRetries are the delays between attempts of a failed
	// delivery; nil means webhook.DefaultRetries.
	WebhookRetries []time.Duration
	// WebhookTimeout bounds an attempt; default webhook.DefaultTimeout.
	WebhookTimeout time.Duration
	// WebhookAllowPrivate lets webhooks reach loopback, private and
	// link-local addresses (tests, receivers on the same network).
	WebhookAllowPrivate bool

	// Retention, when set, is how long final executions are kept after
	// they finished: older ones are deleted in the background
	// (docs/deploy.md#retention). Zero keeps them forever; otherwise at
	// least conveyor.MinRetention.
	Retention time.Duration
}

func (c *Config) validate() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.Concurrency == 0 {
		c.Concurrency = engine.DefaultConcurrency
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("shutdown timeout must not be negative, got %s", c.ShutdownTimeout)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if err := c.validateAccess(); err != nil {
		return err
	}
	if c.Lease < 0 {
		return fmt.Errorf("lease must not be negative, got %s", c.Lease)
	}
	if c.Lease == 0 {
		c.Lease = conveyor.DefaultLease
	}
	if err := c.defaultLimits(); err != nil {
		return err
	}
	if c.Retention < 0 || c.Retention > 0 && c.Retention < conveyor.MinRetention {
		return fmt.Errorf("retention must be at least %s (0: keep executions forever), got %s", conveyor.MinRetention, c.Retention)
	}
	if c.NodeID == "" {
		host, _ := os.Hostname()
		c.NodeID = fmt.Sprintf("%s-%04x", host, rand.Uint32()&0xffff)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("node", c.NodeID)
	return nil
}

// validateAccess checks who may reach the node and what signs for it:
// the API key against the address, the metrics address, the webhook
// secret.
func (c *Config) validateAccess() error {
	if c.APIKey == "" && !c.Insecure && !loopback(c.Addr) {
		return fmt.Errorf("refusing to listen on %s without an API key: set --api-key, or --insecure to allow anyone on the network", c.Addr)
	}
	if c.APIKey != "" && (len(c.APIKey) < MinAPIKeyLength || strings.ContainsFunc(c.APIKey, unicode.IsSpace)) {
		return fmt.Errorf("the API key must be at least %d characters without spaces (try: openssl rand -hex 32)", MinAPIKeyLength)
	}
	if c.MetricsAddr != "" {
		if err := checkMetricsAddr(c.MetricsAddr); err != nil {
			return err
		}
	}
	if c.WebhookSecret != "" {
		if err := conveyor.ValidWebhookSecret(c.WebhookSecret); err != nil {
			return fmt.Errorf("webhook secret: %s", conveyor.ErrorMessage(err))
		}
	}
	return nil
}

// MinAPIKeyLength is the shortest API key a node accepts: a key guards
// every endpoint of a node that others can reach.
const MinAPIKeyLength = 16

// Server is a running node. Open starts it; Run serves until its context
// ends and then shuts down.
type Server struct {
	cfg   Config
	lock  *os.File // the data folder's lock, for the embedded database
	store conveyor.Store
	hub   *hub.Hub
	// logWakeups wakes the streams that follow an execution's logs when
	// lines are stored, here or (by notice) on another node.
	logWakeups *hub.Wakeups
	engine     *engine.Engine
	webhooks   *webhook.Sender
	pruner     *retention.Pruner // nil when nothing expires
	relay      *relay.Relay      // on a shared store only
	api        *api.Server
	http       *http.Server
	ln         net.Listener
	pprof      *http.Server // nil unless Config.PprofAddr
	metrics    *metrics.Metrics
	// The listener of Config.MetricsAddr and its server; nil without.
	metricsLn   net.Listener
	metricsHTTP *http.Server

	numPipelines int

	// On a shared store: the listener of other nodes' notices, the relay
	// of their events and the announcer of this node's, stopped by
	// stopShared.
	announcer  *relay.Announcer
	stopShared context.CancelFunc
	sharedDone sync.WaitGroup
}

// Open locks the data folder, opens the store, loads the pipelines,
// recovers executions a crash left running, starts the engine and listens.
func Open(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	defer func() {
		if err != nil {
			s.closeStorage()
		}
	}()

	pipelines, err := loadPipelines(cfg)
	if err != nil {
		return nil, err
	}
	s.numPipelines = len(pipelines)
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}

	names := make([]string, 0, len(pipelines))
	for name := range pipelines {
		names = append(names, name)
	}
	s.metrics = metrics.New(names)
	h := hub.New()
	s.hub = h
	s.logWakeups = hub.NewWakeups()
	publish := h.Publish
	var watching func(bool) // tells the other nodes whether this one has streams
	if shared, ok := s.store.(conveyor.SharedStore); ok {
		watching = shared.Watching
		// Other nodes' subscribers get every event this node publishes
		// from its announcement, not from the store.
		s.announcer = relay.NewAnnouncer(shared.Announce, cfg.Logger)
		publish = func(ev conveyor.Event) {
			h.Publish(ev)
			s.announcer.Publish(ev)
		}
	}
	s.engine, err = engine.New(engine.Config{
		Store:          s.store,
		Pipelines:      pipelines,
		PublishFunc:    publish,
		LogsStoredFunc: s.logWakeups.Wake,
		Concurrency:    cfg.Concurrency,
		Lease:          cfg.Lease,
		Logger:         cfg.Logger,
		// Subscribers, here and on other nodes, get progress from memory
		// and announcements: the store keeps a sample, for resumes and
		// reads.
		ProgressStoreInterval: ProgressStoreInterval,
		Metrics:               s.metrics,
	})
	if err != nil {
		return nil, err
	}
	if _, shared := s.store.(conveyor.SharedStore); shared {
		s.relay, err = relay.New(relay.Config{Store: s.store, Hub: h, LocalFunc: s.engine.RunsHere, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
	}
	openFiles, err := openFileLimit()
	if err != nil {
		return nil, err
	}
	cfg.fitFileLimit(openFiles)
	s.cfg = cfg
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.ln = newCapListener(ln, cfg.MaxConnections)
	if cfg.PprofAddr != "" {
		if err := s.servePprof(ctx, cfg.PprofAddr); err != nil {
			s.ln.Close()
			return nil, err
		}
	}
	if cfg.MetricsAddr != "" {
		if err := s.serveMetrics(ctx, cfg.MetricsAddr); err != nil {
			s.ln.Close()
			return nil, err
		}
	}
	if err := s.engine.Start(ctx); err != nil {
		s.ln.Close()
		return nil, err
	}
	s.startShared()
	if err := s.startWebhooks(ctx); err != nil {
		s.ln.Close()
		s.shutdownEngine()
		return nil, err
	}
	if err := s.startPruner(ctx); err != nil {
		s.ln.Close()
		s.shutdownEngine()
		return nil, err
	}
	s.api = api.New(api.Config{
		Store: s.store, Runner: s.engine, Executions: live.New(s.store, h), LogWakeups: s.logWakeups, APIKey: cfg.APIKey,
		LoopbackHostsOnly: cfg.APIKey == "" && loopback(cfg.Addr),
		AllowedOrigins:    cfg.AllowedOrigins, Logger: cfg.Logger,
		RateLimit: max(0, cfg.RateLimit), MaxStreamsPerClient: max(0, cfg.MaxStreamsPerClient),
		MaxStreams: max(0, cfg.MaxStreams), MaxPending: max(0, cfg.MaxPending),
		CheckWebhookURLFunc: func(ctx context.Context, url string) error {
			return webhook.CheckURL(ctx, url, cfg.WebhookAllowPrivate)
		},
		WakeWebhooksFunc: s.webhooks.Wake,
		WatchingFunc:     watching,
		Metrics:          s.metrics,
	})
	s.http = &http.Server{
		Handler:           healthOnly(s.api, cfg.MaxConnections, s.metrics),
		ConnContext:       connContext,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
	}
	cfg.Logger.Info("conveyor listening", "addr", s.Addr(), "store", s.storeName(), "pipelines", len(pipelines), "concurrency", cfg.Concurrency,
		"max_connections", cfg.MaxConnections, "max_streams", cfg.MaxStreams)
	return s, nil
}

// startWebhooks starts the sender of webhook deliveries, with the
// secret of executions' own webhooks: the configured one, or the one
// kept in the database for every node (generated by the first).
func (s *Server) startWebhooks(ctx context.Context) error {
	secret := s.cfg.WebhookSecret
	if secret == "" {
		kept, generated, err := s.store.WebhookSecret(ctx, conveyor.NewWebhookSecret())
		if err != nil {
			return fmt.Errorf("webhook secret: %w", err)
		}
		secret = kept
		what := "using the webhook secret kept in the database (table webhook_settings)"
		if generated {
			what = "generated a webhook secret and kept it in the database (table webhook_settings)"
		}
		s.cfg.Logger.Info(what+"; it signs executions' own webhooks; set --webhook-secret to choose one", "secret", secret)
	}
	_, shared := s.store.(conveyor.SharedStore)
	var err error
	s.webhooks, err = webhook.New(webhook.Config{
		Store: s.store, Secret: secret, Retries: s.cfg.WebhookRetries, Timeout: s.cfg.WebhookTimeout,
		AllowPrivate: s.cfg.WebhookAllowPrivate, Logger: s.cfg.Logger, OwnStore: !shared,
		ResultFunc: s.metrics.WebhookDelivered,
	})
	if err != nil {
		return err
	}
	s.webhooks.Start(ctx)
	return nil
}

// startPruner starts deleting what expires, in the background:
// idempotency keys after conveyor.IdempotencyTTL, and final executions
// older than the retention, when one is set.
func (s *Server) startPruner(ctx context.Context) error {
	tasks := []retention.Task{{
		Name: metrics.RetentionIdempotencyKeys,
		PruneFunc: func(ctx context.Context, now time.Time, limit int) (int, error) {
			return s.store.DeleteExpiredKeys(ctx, now.Add(-conveyor.IdempotencyTTL), limit)
		},
	}}
	if keep := s.cfg.Retention; keep > 0 {
		tasks = append(tasks, retention.Task{
			Name: metrics.RetentionExecutions,
			PruneFunc: func(ctx context.Context, now time.Time, limit int) (int, error) {
				return s.store.PruneExecutions(ctx, now.Add(-keep), limit)
			},
		})
	}
	var err error
	s.pruner, err = retention.New(retention.Config{Tasks: tasks, DeletedFunc: s.metrics.RetentionDeleted, Logger: s.cfg.Logger})
	if err != nil {
		return err
	}
	if s.cfg.Retention > 0 {
		s.cfg.Logger.Info("deleting final executions older than the retention", "retention", s.cfg.Retention)
	}
	s.pruner.Start(ctx)
	return nil
}

// openStore opens PostgreSQL when a database URL is given, else the
// embedded database, locked to this process.
func (s *Server) openStore(ctx context.Context) error {
	var err error
	if s.cfg.DatabaseURL != "" {
		db, err := postgres.Open(ctx, s.cfg.DatabaseURL, &postgres.Options{NodeID: s.cfg.NodeID, Lease: s.cfg.Lease, Logger: s.cfg.Logger})
		if err != nil {
			return fmt.Errorf("open PostgreSQL: %w", err)
		}
		s.store = db // never a nil *DB in the interface: closeStorage closes what is set
		return nil
	}
	if s.lock, err = lockDataDir(s.cfg.DataDir); err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	s.store = db
	return nil
}

// ProgressStoreInterval is how often, at most, a running execution's
// progress is written to the store.
const ProgressStoreInterval = 500 * time.Millisecond

func (s *Server) storeName() string {
	if s.cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite:" + s.cfg.DataDir
}

// startShared makes a node on a shared store hear the others: new work
// and cancels go to the engine, new events to the relay, which brings
// them to local subscribers, and new log lines wake the local streams
// that follow them (which read the store themselves).
func (s *Server) startShared() {
	shared, ok := s.store.(conveyor.SharedStore)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopShared = cancel
	s.sharedDone.Go(func() { s.relay.Run(ctx) })
	s.sharedDone.Go(func() { s.announcer.Run(ctx) })
	s.sharedDone.Go(func() {
		err := shared.Listen(ctx, func(n conveyor.Notice) {
			s.engine.HandleNotice(n)
			s.relay.Notify(n)
			switch n.Kind {
			case conveyor.NoticeLogs:
				s.logWakeups.Wake(n.ExecutionID)
			case conveyor.NoticeResync:
				s.logWakeups.WakeAll()
			}
		})
		if err != nil {
			s.cfg.Logger.Error("listen for other nodes", "err", err)
		}
	})
}

// Addr is the address the node listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Metrics is the node's metrics, which GET /metrics serves: for parts an
// embedder adds (Registry) and for what counts into them.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// NumPipelines returns how many pipelines the node runs, from the folder
// and Go together. With none, every submission is refused.
func (s *Server) NumPipelines() int { return s.numPipelines }

// Run serves HTTP until ctx ends, then stops claiming work, lets running
// executions finish for up to ShutdownTimeout, cancels the rest and closes
// the store. Streams stay open while executions finish so watchers see
// their final messages.
func (s *Server) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(s.ln) }()

	select {
	case err := <-served:
		s.shutdownEngine()
		s.closeStorage()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.cfg.Logger.Info("shutting down", "running", s.engine.Running(), "timeout", s.cfg.ShutdownTimeout)
	s.shutdownEngine()
	// The engine has published every final event: streams send what they
	// hold and close, instead of holding the HTTP shutdown.
	s.api.CloseStreams()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	// Streams on hijacked connections are not the http.Server's to wait
	// for or to close.
	if werr := s.api.WaitStreams(shutdownCtx); werr != nil {
		s.cfg.Logger.Warn("closed the streams still open at the shutdown deadline", "err", werr)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.closeStorage()
	return err
}

func (s *Server) shutdownEngine() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.engine.Stop(ctx)
}

func (s *Server) closeStorage() {
	if s.pruner != nil {
		s.pruner.Stop() // a batch cut short goes again at the next start
		s.pruner = nil
	}
	if s.webhooks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		s.webhooks.Stop(ctx) // a delivery cut short goes again after its claim expires
		cancel()
		s.webhooks = nil
	}
	if s.pprof != nil {
		s.pprof.Close()
		s.pprof = nil
	}
	if s.metricsHTTP != nil {
		s.metricsHTTP.Close()
		s.metricsHTTP = nil
	}
	if s.stopShared != nil {
		s.stopShared()
		s.sharedDone.Wait()
		s.stopShared = nil
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.cfg.Logger.Error("close store", "err", err)
		}
		s.store = nil
	}
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
}

func loadPipelines(cfg Config) (map[string]*conveyor.Pipeline, error) {
	pipelines := map[string]*conveyor.Pipeline{}
	if cfg.PipelinesDir != "" {
		var err error
		if pipelines, err = pipeline.LoadDir(cfg.PipelinesDir); err != nil {
			return nil, fmt.Errorf("load pipelines: %w", err)
		}
	}
	for _, p := range cfg.Pipelines {
		switch {
		case p.Name == "":
			return nil, errors.New("a Go pipeline has no name")
		case pipelines[p.Name] != nil:
			return nil, fmt.Errorf("pipeline %q is defined twice", p.Name)
		case p.Handler == nil && len(p.Steps) == 0:
			return nil, fmt.Errorf("pipeline %q has neither a handler nor steps", p.Name)
		}
		pipelines[p.Name] = p
	}
	return pipelines, nil
}

// lockDataDir takes an exclusive lock on the data folder so that two nodes
// never share one embedded database.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data folder %s is in use by another conveyor serve process", dir)
		}
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	return f, nil
}

// loopback reports whether addr listens on the loopback interface only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
