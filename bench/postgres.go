package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// createDatabase creates an empty database for one scenario on the
// PostgreSQL server of adminURL, so that the bench neither reads old
// executions nor leaves its own behind, and returns its URL and a function
// that drops it. The role of adminURL must be allowed to create databases.
func createDatabase(ctx context.Context, adminURL string) (dbURL string, drop func() error, err error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "conveyor_bench_" + hex.EncodeToString(b[:])
	if err := adminExec(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("the bench runs in a database of its own, dropped afterwards, and could not create it: %w", err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	if dbURL, err = withDatabase(adminURL, name); err != nil {
		_ = drop() // best effort: err is the one to report
		return "", nil, err
	}
	return dbURL, drop, nil
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to --database-url: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// withDatabase returns the connection string s pointing at database name.
func withDatabase(s, name string) (string, error) {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("parse --database-url: %w", err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return s + " dbname=" + name, nil // keyword/value form: the last setting wins
}
