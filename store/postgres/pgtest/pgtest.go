// Package pgtest gives tests a fresh PostgreSQL database of their own.
//
// The server is found once per test binary, the first time a test asks:
//
//  1. CONVEYOR_TEST_DATABASE_URL, when set, and nothing else;
//  2. a local server that lets user postgres in, on the default Unix
//     socket (/var/run/postgresql) or on 127.0.0.1:5432;
//  3. a throw-away cluster that pgtest starts from the installed server
//     binaries (initdb and postgres, under /usr/lib/postgresql/*/bin or on
//     PATH) in a temporary folder, on a free port of 127.0.0.1.
//
// Where none is available the test is skipped with one line that says what
// was tried and what to install, except under CI=true, where it fails.
//
// A package whose tests use pgtest runs them through Main, which stops and
// removes the throw-away cluster when they are done:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// envURL names the server to use instead of looking for one.
const envURL = "CONVEYOR_TEST_DATABASE_URL"

// localServers are where a local PostgreSQL listens by default: Debian's
// socket folder first (no TCP needed), then the loopback port.
var localServers = []string{
	"postgres://postgres@/postgres?host=/var/run/postgresql",
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
}

// M is what TestMain runs: a *testing.M, or a wrapper of one.
type M interface{ Run() int }

// Main returns m whose Run, once the tests are done, stops the throw-away
// cluster and removes its folder, if the tests started one. A stop that
// fails turns a passing run into a failing one.
func Main(m M) M {
	hooked.Store(true)
	return stopping{m}
}

type stopping struct{ m M }

func (s stopping) Run() int {
	code := s.m.Run()
	mu.Lock()
	defer mu.Unlock()
	if found != nil && found.cluster != nil {
		if err := found.cluster.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop the throw-away PostgreSQL cluster:", err)
			return max(code, 1)
		}
	}
	return code
}

var (
	hooked atomic.Bool // Main was called: a cluster will not outlive the tests

	mu    sync.Mutex
	found *server // nil until a test first asks
)

// server is the outcome of looking for one: its admin URL and, when
// pgtest started it, the cluster; or why there is none.
type server struct {
	url     string
	cluster *cluster
	err     error
}

// find looks for a server the first time and returns the same answer
// after: one throw-away cluster serves every test of the binary.
func find() *server {
	mu.Lock()
	defer mu.Unlock()
	if found == nil {
		found = discover()
	}
	return found
}

func discover() *server {
	if u := os.Getenv(envURL); u != "" {
		return &server{url: u}
	}
	var tried []string
	for _, u := range localServers {
		err := ping(u)
		if err == nil {
			return &server{url: u}
		}
		tried = append(tried, fmt.Sprintf("%s: %v", u, err))
	}
	c, err := startCluster()
	if err != nil {
		tried = append(tried, "a throw-away cluster: "+err.Error())
		return &server{err: fmt.Errorf("%s is unset; tried %s", envURL, strings.Join(tried, "; "))}
	}
	return &server{url: c.url, cluster: c}
}

// ping connects to the server at u as a test would.
func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// unavailable skips t for want of a server, or fails it under CI=true,
// where every test must run.
func unavailable(t testing.TB, err error) {
	t.Helper()
	const fix = "install PostgreSQL (apt-get install -y postgresql) or set " + envURL
	if os.Getenv("CI") == "true" {
		t.Fatalf("no PostgreSQL for the tests, and under CI=true they must run: %v; %s", err, fix)
	}
	t.Skipf("SKIP: no PostgreSQL for the tests: %v; %s", err, fix)
}

// AdminURL returns the URL of a database on a server where tests may
// create and drop databases, or skips the test (fails it under CI=true).
func AdminURL(t testing.TB) string {
	t.Helper()
	if !hooked.Load() {
		t.Fatal("pgtest: run this package's tests through pgtest.Main in TestMain, which removes the throw-away cluster when they end")
	}
	s := find()
	if s.err != nil {
		unavailable(t, s.err)
	}
	return s.url
}

// Exec runs one statement on the admin database.
func Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u := AdminURL(t)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to the test server %s: %v", u, err)
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
			t.Fatalf("parse the test server's URL: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return s + " dbname=" + name // keyword/value form: the last setting wins
}
