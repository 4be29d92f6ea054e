package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// FileName is the name of the database file in the data folder.
const FileName = "conveyor.db"

// busyTimeoutMillis is how long a statement waits for a lock held by
// another connection (another process, or the writer at a checkpoint)
// before it fails with SQLITE_BUSY.
const busyTimeoutMillis = 5000

var _ conveyor.Store = (*DB)(nil)

// DB is a conveyor.Store in one SQLite file. Every write goes through one
// connection in BEGIN IMMEDIATE transactions, so writers queue in Go
// instead of failing with SQLITE_BUSY; reads use a separate pool and, with
// WAL, never wait for the writer.
type DB struct {
	path string
	w    *sql.DB // one connection: the only writer
	r    *sql.DB // read-only pool
	st   statements
}

// Open opens the database in dir/conveyor.db, creating dir and the file
// if needed, and migrates it to the newest schema.
func Open(ctx context.Context, dir string) (_ *DB, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	path, err := filepath.Abs(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("database path: %w", err)
	}
	db := &DB{path: path}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()

	// The writer: WAL so readers do not block it nor it them;
	// synchronous=NORMAL, which in WAL mode loses no committed transaction
	// on a process crash (only on power loss, the last few); BEGIN
	// IMMEDIATE so a transaction takes the write lock up front and never
	// fails half-way with SQLITE_BUSY_SNAPSHOT.
	db.w, err = sql.Open("sqlite", dsn(path,
		"_pragma=busy_timeout("+strconv.Itoa(busyTimeoutMillis)+")",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(1)",
		"_txlock=immediate",
	))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)
	if err := db.w.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := migrate(ctx, db.w); err != nil {
		return nil, err
	}

	// The readers, opened after the writer made the file WAL (a persistent
	// setting), refuse to write so no write can bypass the writer.
	db.r, err = sql.Open("sqlite", dsn(path,
		"_pragma=busy_timeout("+strconv.Itoa(busyTimeoutMillis)+")",
		"_pragma=query_only(1)",
	))
	if err != nil {
		return nil, fmt.Errorf("open database readers: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	db.r.SetMaxOpenConns(readers)
	db.r.SetMaxIdleConns(readers)
	if err := db.r.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open database readers: %w", err)
	}

	if err := db.st.prepare(ctx, db.w, db.r); err != nil {
		return nil, err
	}
	return db, nil
}

// dsn is the modernc.org/sqlite data source name of the file at path.
// The path is URI-escaped because SQLite decodes it as a URI.
func dsn(path string, params ...string) string {
	return "file:" + (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath() + "?" + strings.Join(params, "&")
}

// Ping reports whether both the writer and the readers can reach the file.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database readers: %w", err)
	}
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database writer: %w", err)
	}
	return nil
}

// Close closes the statements, the readers and the writer.
func (db *DB) Close() error {
	errs := []error{db.st.close()}
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate applies the embedded migrations the database does not have yet,
// each in its own transaction, in the order of their numbers.
func migrate(ctx context.Context, w *sql.DB) error {
	ms, err := store.Migrations(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest int
	if err := w.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := store.CheckVersion(newest, ms); err != nil {
		return err
	}
	for _, m := range ms[newest:] {
		if err := applyMigration(ctx, w, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, w *sql.DB, m store.Migration) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	return nil
}
