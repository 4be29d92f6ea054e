package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-run/conveyor/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey is the pg_advisory_lock key that serializes migrations,
// so nodes starting together apply each migration once. Advisory locks
// are per database, so other databases on the server are not held up.
const migrateLockKey int64 = 0x636f6e7665796f72 // "conveyor"

// migrations returns the embedded migrations in order.
func migrations() ([]store.Migration, error) {
	return store.Migrations(migrationFiles, "migrations/*.sql")
}

// migrate applies the migrations the database does not have yet, each in
// its own transaction, holding the migration advisory lock on conn so
// that concurrent migrators take turns. It returns the names of those it
// applied, in order, and the schema version the database is then at.
func migrate(ctx context.Context, conn *pgx.Conn) (applied []string, version int, err error) {
	ms, err := migrations()
	if err != nil {
		return nil, 0, err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return nil, 0, fmt.Errorf("lock for migrations: %w", err)
	}
	defer func() {
		// The lock is the session's: release it even when ctx ended, or
		// the pooled connection would keep it.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey); uerr != nil && err == nil {
			err = fmt.Errorf("unlock after migrations: %w", uerr)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return nil, 0, fmt.Errorf("read schema version: %w", err)
	}
	if err := store.CheckVersion(version, ms); err != nil {
		return nil, version, err
	}
	for _, m := range ms[version:] {
		if err := applyMigration(ctx, conn, m); err != nil {
			return applied, version, err
		}
		applied, version = append(applied, m.Name), m.Version
	}
	return applied, version, nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m store.Migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, m.SQL); err != nil { // no arguments: the simple protocol runs every statement
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	return nil
}
