package pgtest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	os.Exit(Main(m).Run())
}

// query returns the one text value sql yields on the database at u.
func query(t *testing.T, u, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to %s: %v", u, err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestNewDatabase checks that each test gets a database of its own on the
// server found, whichever it is, and that the database goes with the test.
func TestNewDatabase(t *testing.T) {
	var name string
	t.Run("create", func(t *testing.T) {
		var u string
		name, u = NewDatabase(t)
		if got := query(t, u, "SELECT current_database()"); got != name {
			t.Errorf("connected to %q, want %q", got, name)
		}
		if _, other := NewDatabase(t); other == u {
			t.Errorf("two databases share the URL %s", u)
		}
	})
	if n := query(t, AdminURL(t), "SELECT count(*)::text FROM pg_database WHERE datname = '"+name+"'"); n != "0" {
		t.Errorf("database %s still exists after its test", name)
	}
}

// TestCluster starts a throw-away cluster even where a server is at hand,
// as on a machine without one, and checks that it serves the tests as
// user postgres and that stop leaves neither a server nor its folder.
func TestCluster(t *testing.T) {
	c, err := startCluster()
	if err != nil {
		unavailable(t, err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.stop() // the test failed first: that failure is the one to read
		}
	})

	u := WithDatabase(t, c.url, "template1")
	if got := query(t, u, "SELECT current_user || ' ' || current_database()"); got != "postgres template1" {
		t.Errorf("connected as %q, want postgres template1", got)
	}
	if got := query(t, c.url, "SHOW data_directory"); got != c.dir+"/data" {
		t.Errorf("data directory %s, want one in the cluster's folder %s", got, c.dir)
	}

	stopped = true
	if err := c.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(c.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cluster's folder %s is still there after stop: %v", c.dir, err)
	}
	if err := ping(c.url); err == nil {
		t.Errorf("%s still accepts connections after stop", c.url)
	}
}

// TestNewClusterStopsAndStarts: a test's own cluster refuses connections
// while stopped and comes back on the same URL with its data.
func TestNewClusterStopsAndStarts(t *testing.T) {
	c := NewCluster(t)
	if got := query(t, c.URL, "SELECT count(*)::text FROM pg_database WHERE datname = 'kept'"); got != "0" {
		t.Fatalf("a fresh cluster has database kept: %s", got)
	}
	conn, err := pgx.Connect(t.Context(), c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE kept"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(t.Context())

	c.Stop(t)
	if err := ping(c.URL); err == nil {
		t.Fatalf("%s accepts connections while stopped", c.URL)
	}
	c.Start(t)
	if got := query(t, c.URL, "SELECT count(*)::text FROM pg_database WHERE datname = 'kept'"); got != "1" {
		t.Errorf("after a restart, %s databases named kept, want 1", got)
	}
}
