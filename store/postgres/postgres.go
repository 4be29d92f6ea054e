package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyor-run/conveyor"
)

var (
	_ conveyor.Store       = (*DB)(nil)
	_ conveyor.Notifier    = (*DB)(nil)
	_ conveyor.SharedStore = (*DB)(nil)
)

// DefaultLease is how long a claim holds an execution when Options.Lease
// is zero: conveyor.DefaultLease, which the engine's renewals assume too.
const DefaultLease = conveyor.DefaultLease

// Options configure Open. The zero value (or nil) is usable.
type Options struct {
	// NodeID names this node in the executions it claims and in the
	// leases it renews. Every node sharing a database needs its own;
	// empty means the host name plus a random suffix.
	NodeID string
	// Lease is how long a claim or a renewal holds an execution before
	// another node may rescue it; zero means DefaultLease.
	Lease time.Duration
	// MaxConns bounds the connection pool (Listen takes one more); zero
	// means pgxpool's default, the greater of 4 and the number of CPUs.
	MaxConns int32
	// Logger receives what the store cannot return, such as a failed
	// NOTIFY after a committed write; nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) validate() error {
	if o.Lease < 0 {
		return fmt.Errorf("lease %v is negative", o.Lease)
	}
	if o.MaxConns < 0 {
		return fmt.Errorf("max conns %d is negative", o.MaxConns)
	}
	return nil
}

// DB is a conveyor.SharedStore in a PostgreSQL database that any number of
// nodes share. It is safe for concurrent use.
type DB struct {
	pool   *pgxpool.Pool
	node   string
	lease  time.Duration
	logger *slog.Logger

	// pids are the backend process ids of the pool's connections, so
	// Listen can skip the notifications this node sent itself.
	pids sync.Map // uint32 -> struct{}
	// streams is whether this node has streams open (Watching), and
	// unwatched whether no other node has (Listen hears it): then the
	// notifications that only feed other nodes' streams are not sent.
	streams, unwatched atomic.Bool
	// stopWait interrupts Listen's wait for a notification, to say
	// hello at once when streams changes.
	waitMu   sync.Mutex
	stopWait context.CancelFunc
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string), migrates it to the newest schema and returns the
// store. It fails when the database cannot be reached.
func Open(ctx context.Context, url string, opts *Options) (_ *DB, err error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("postgres options: %w", err)
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.NodeID == "" {
		o.NodeID = defaultNodeID()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "conveyor"
	}
	db := &DB{node: o.NodeID, lease: o.Lease, logger: o.Logger}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		db.pids.Store(c.PgConn().PID(), struct{}{})
		return nil
	}
	cfg.BeforeClose = func(c *pgx.Conn) {
		db.pids.Delete(c.PgConn().PID())
	}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	defer func() {
		if err != nil {
			db.pool.Close()
		}
	}()
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Release()
	if _, _, err := migrate(ctx, conn.Conn()); err != nil {
		return nil, err
	}
	return db, nil
}

// Migrate applies the migrations the database at url does not have yet,
// as Open does, and disconnects. It returns the names of the migrations
// it applied (such as "0002_tags.sql"), in order, none if the database
// was up to date, and the schema version the database is at.
func Migrate(ctx context.Context, url string) (applied []string, version int, err error) {
	// The pool's parser, as Open uses, so pool_* settings in the URL that
	// serve accepts are accepted here too.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, 0, fmt.Errorf("parse database url: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, 0, fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrate(ctx, conn)
}

// defaultNodeID is the host name with a random suffix, so two processes
// on one host are two nodes.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// NodeID returns the id this node claims executions under.
func (db *DB) NodeID() string { return db.node }

// Lease returns how long a claim or renewal holds an execution.
func (db *DB) Lease() time.Duration { return db.lease }

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Close closes every connection of the pool, waiting for those in use to
// be released. It does not stop Listen, which ends with its context.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// ownPID reports whether pid is the backend of one of the pool's
// connections.
func (db *DB) ownPID(pid uint32) bool {
	_, ok := db.pids.Load(pid)
	return ok
}

// errorf wraps err with what failed, keeping *conveyor.Error values as
// they are so their codes reach the caller.
// storeError wraps err with what failed, as EINVALID when PostgreSQL
// refused the data itself (SQLSTATE class 22: a NUL in text, invalid
// UTF-8, a number out of range): retrying cannot help, and the caller
// must learn which write it was rather than retry a whole batch forever.
func storeError(what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		return conveyor.Errorf(conveyor.EINVALID, "%s: the database refused the data: %s", what, pgErr.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func errorf(what string, err error) error {
	var ce *conveyor.Error
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}
