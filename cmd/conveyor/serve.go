package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/engine"
	"github.com/conveyor-run/conveyor/server"
	"github.com/conveyor-run/conveyor/webhook"
)

// defaultPipelinesDir is the pipelines folder serve loads if it exists.
const defaultPipelinesDir = "./pipelines"

// defaultServerURL is where the client commands find serve's default
// address.
const defaultServerURL = "http://" + server.DefaultAddr

// goPipelines is a serve flag that adds pipelines defined in Go, which no
// pipelines folder can hold, to the node. The command that needs them on a
// server provides it (bench: --bench-pipelines), so serve does not depend
// on that command.
type goPipelines struct {
	flag, usage string
	pipelines   func() []*conveyor.Pipeline
}

func serveCmd(extra ...goPipelines) *cobra.Command {
	var (
		cfg       server.Config
		origins   string
		logFormat string
		retries   string
		enabled   = make([]bool, len(extra))
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Conveyor node: the API, the engine and the embedded database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envDefaults(cmd.Flags()); err != nil {
				return err
			}
			if !cmd.Flags().Changed("pipelines") && os.Getenv("CONVEYOR_PIPELINES") == "" {
				if _, err := os.Stat(cfg.PipelinesDir); err != nil {
					cfg.PipelinesDir = "" // the default folder is optional
				}
			}
			if origins != "" {
				cfg.AllowedOrigins = strings.Split(origins, ",")
			}
			if err := noLimitIfZero(&cfg); err != nil {
				return err
			}
			webhookRetries, err := webhook.ParseRetries(retries)
			if err != nil {
				return fmt.Errorf("--webhook-retries: %w", err)
			}
			cfg.WebhookRetries = webhookRetries
			logger, err := newLogger(logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			for i, x := range extra {
				if enabled[i] {
					cfg.Pipelines = append(cfg.Pipelines, x.pipelines()...)
				}
			}

			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.Open(ctx, cfg)
			if err != nil {
				return err
			}
			if srv.NumPipelines() == 0 {
				warnNoPipelines(logger, cfg.PipelinesDir)
			}
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "listen address [CONVEYOR_ADDR]")
	f.StringVar(&cfg.DataDir, "data", server.DefaultDataDir, "folder of the embedded database [CONVEYOR_DATA]")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL; several nodes may share it (instead of --data) [CONVEYOR_DATABASE_URL]")
	f.StringVar(&cfg.NodeID, "node-id", "", "this node's id in executions and logs (default host name plus a random suffix) [CONVEYOR_NODE_ID]")
	f.DurationVar(&cfg.Lease, "lease", conveyor.DefaultLease, "on PostgreSQL, how long a node holds an execution without renewing it [CONVEYOR_LEASE]")
	f.StringVar(&cfg.PipelinesDir, "pipelines", defaultPipelinesDir, "folder of pipeline YAML files [CONVEYOR_PIPELINES]")
	f.IntVar(&cfg.Concurrency, "concurrency", engine.DefaultConcurrency, "executions run at once on this node [CONVEYOR_CONCURRENCY]")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "how long running executions may finish on SIGINT/SIGTERM before they are cancelled [CONVEYOR_SHUTDOWN_TIMEOUT]")
	f.StringVar(&origins, "allowed-origins", "", "comma-separated host patterns of other origins allowed to open WebSocket streams [CONVEYOR_ALLOWED_ORIGINS]")
	f.StringVar(&cfg.APIKey, "api-key", "", "require this key as 'Authorization: Bearer KEY' on every request but /healthz [CONVEYOR_API_KEY]")
	f.BoolVar(&cfg.Insecure, "insecure", false, "allow listening beyond loopback without an API key [CONVEYOR_INSECURE]")
	f.StringVar(&cfg.PprofAddr, "pprof", "", "serve net/http/pprof on this loopback address, e.g. 127.0.0.1:6060 (off by default) [CONVEYOR_PPROF]")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "also serve GET /metrics on this address, without the API key, e.g. 127.0.0.1:9090 (off by default) [CONVEYOR_METRICS_ADDR]")
	f.Float64Var(&cfg.RateLimit, "rate-limit", server.DefaultRateLimit, "submissions a second per client (API key, else address), in bursts of twice that; 0: no limit [CONVEYOR_RATE_LIMIT]")
	f.IntVar(&cfg.MaxStreamsPerClient, "max-streams-per-client", server.DefaultMaxStreamsPerClient, "open WebSocket and SSE streams per client; 0: no limit [CONVEYOR_MAX_STREAMS_PER_CLIENT]")
	f.IntVar(&cfg.MaxStreams, "max-streams", server.DefaultMaxStreams, "open streams on this node, lowered to fit the open-file limit; 0: no limit but that [CONVEYOR_MAX_STREAMS]")
	f.IntVar(&cfg.MaxPending, "max-pending", server.DefaultMaxPending, "pending executions past which submissions are refused (approximate); 0: no limit [CONVEYOR_MAX_PENDING]")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json [CONVEYOR_LOG_FORMAT]")
	f.StringVar(&cfg.WebhookSecret, "webhook-secret", "", "whsec_ secret that signs executions' own webhooks (default: generated once, kept in the database and logged at start) [CONVEYOR_WEBHOOK_SECRET]")
	f.StringVar(&retries, "webhook-retries", webhook.FormatRetries(webhook.DefaultRetries), "delays before each retry of a failed webhook delivery, ±10 %; none: no retries [CONVEYOR_WEBHOOK_RETRIES]")
	f.DurationVar(&cfg.WebhookTimeout, "webhook-timeout", webhook.DefaultTimeout, "how long a webhook receiver has to answer 2xx [CONVEYOR_WEBHOOK_TIMEOUT]")
	f.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", false, "let webhooks reach loopback, private and link-local addresses [CONVEYOR_WEBHOOK_ALLOW_PRIVATE]")
	f.Var(retentionValue{&cfg.Retention}, "retention", "delete final executions this long after they finished, e.g. 30d or 12h, with their events, logs and data; 0: keep forever [CONVEYOR_RETENTION]")
	for i, x := range extra {
		f.BoolVar(&enabled[i], x.flag, false, x.usage+" ["+envName(x.flag)+"]")
	}
	return cmd
}

// warnNoPipelines tells someone who started serve without pipelines,
// often by leaving out --pipelines, why every submission will be refused
// and how to load some. dir is the folder loaded, "" for none.
func warnNoPipelines(logger *slog.Logger, dir string) {
	why := "there is no " + defaultPipelinesDir + " folder"
	if dir != "" {
		why = dir + " holds no .yaml or .yml file"
	}
	logger.Warn("no pipelines: every submission will be refused, as "+why,
		"fix", "name a folder of pipeline YAML files with --pipelines DIR, e.g. conveyor serve --pipelines examples/pipelines")
}

// noLimitIfZero turns the limit flags' 0, "no limit", into
// server.Config's negative value for it (its zero takes the default).
func noLimitIfZero(cfg *server.Config) error {
	if cfg.RateLimit < 0 {
		return fmt.Errorf("--rate-limit must not be negative (0: no limit), got %g", cfg.RateLimit)
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = -1
	}
	for _, l := range []struct {
		flag string
		v    *int
	}{
		{"max-streams-per-client", &cfg.MaxStreamsPerClient},
		{"max-streams", &cfg.MaxStreams},
		{"max-pending", &cfg.MaxPending},
	} {
		switch {
		case *l.v < 0:
			return fmt.Errorf("--%s must not be negative (0: no limit), got %d", l.flag, *l.v)
		case *l.v == 0:
			*l.v = -1
		}
	}
	return nil
}

// envDefaults sets every flag not given on the command line from its
// CONVEYOR_* environment variable, if set.
func envDefaults(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	if c := fs.Lookup("concurrency"); err == nil && c != nil {
		if n, _ := strconv.Atoi(c.Value.String()); n < 1 {
			err = fmt.Errorf("--concurrency must be at least 1, got %d", n)
		}
	}
	return err
}

// envName is the environment variable of the flag with the given name.
func envName(flag string) string {
	return "CONVEYOR_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newLogger(format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}
