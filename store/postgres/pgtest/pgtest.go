// Package pgtest gives tests a fresh PostgreSQL database of their own on
// the server named by CONVEYOR_TEST_DATABASE_URL.
//
// Without that variable the calling test is skipped, except under CI=true,
// where a missing or unreachable database is a failure, never a skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminURL returns CONVEYOR_TEST_DATABASE_URL, a database on a server
// where tests may create and drop databases, or skips the test.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CONVEYOR_TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CONVEYOR_TEST_DATABASE_URL is not set; under CI=true the PostgreSQL tests must run")
		}
		t.Skip("CONVEYOR_TEST_DATABASE_URL is not set")
	}
	return u
}

// Exec runs one statement on the admin database.
func Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, AdminURL(t))
	if err != nil {
		t.Fatalf("connect to CONVEYOR_TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// NewDatabase creates an empty database, dropped when t ends, and returns
// its name and URL.
func NewDatabase(t testing.TB) (name, dbURL string) {
	t.Helper()
	base := AdminURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = "conveyor_test_" + hex.EncodeToString(b[:])
	Exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { Exec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return name, WithDatabase(t, base, name)
}

// WithDatabase returns the connection string s pointing at database name.
func WithDatabase(t testing.TB, s, name string) string {
	t.Helper()
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("parse CONVEYOR_TEST_DATABASE_URL: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return s + " dbname=" + name // keyword/value form: the last setting wins
}
