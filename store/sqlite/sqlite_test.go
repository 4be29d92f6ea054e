package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
	"github.com/conveyor-run/conveyor/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(closingMillion{m})
}

// closingMillion runs the tests and benchmarks, then removes the store
// the 1M benchmarks built, before goleak looks for goroutines left.
type closingMillion struct{ m *testing.M }

func (c closingMillion) Run() int {
	code := c.m.Run()
	if err := closeMillion(); err != nil {
		fmt.Fprintln(os.Stderr, "remove the store of the 1M benchmarks:", err)
		return max(code, 1)
	}
	return code
}

// open opens a store in a new temporary folder, closed when t ends.
func open(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) conveyor.Store { return open(t) })
}

func TestSettings(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	for _, c := range []struct {
		name   string
		query  string
		want   string
		reader bool
	}{
		{"writer journal_mode", "PRAGMA journal_mode", "wal", false},
		{"writer synchronous", "PRAGMA synchronous", "1", false}, // NORMAL
		{"writer foreign_keys", "PRAGMA foreign_keys", "1", false},
		{"writer busy_timeout", "PRAGMA busy_timeout", "5000", false},
		{"reader journal_mode", "PRAGMA journal_mode", "wal", true},
		{"reader query_only", "PRAGMA query_only", "1", true},
		{"reader busy_timeout", "PRAGMA busy_timeout", "5000", true},
	} {
		conn := db.w
		if c.reader {
			conn = db.r
		}
		var got string
		if err := conn.QueryRowContext(ctx, c.query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s = %s, want %s", c.name, got, c.want)
		}
	}
	if _, err := db.r.ExecContext(ctx, `DELETE FROM executions`); err == nil {
		t.Error("a reader could write")
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "nested", "data")
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	ex := &conveyor.Execution{ID: "a", Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: time.Now()}
	if err := db.CreateExecution(ctx, ex); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if _, err := db.GetExecution(ctx, "a"); err != nil {
		t.Errorf("after reopening: %v", err)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, err := store.Migrations(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("%d migrations recorded, want each of the %d once", n, len(ms))
	}
}

func TestNewerSchema(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(ctx, dir); err == nil || !strings.Contains(err.Error(), "newer") {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open of a newer schema: %v, want an error", err)
	}
}

func TestPathNeedingEscapes(t *testing.T) {
	// SQLite reads the file name as a URI: these must not be taken as its
	// query, fragment or escapes.
	dir := filepath.Join(t.TempDir(), "a dir?x=1#frag%20")
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Errorf("database not where asked: %v", err)
	}
	if db.Path() != filepath.Join(dir, FileName) {
		t.Errorf("Path() = %s", db.Path())
	}
}

// tagDriven reports whether plan, of explainList, drives the scan from
// the first tag's rows in execution_tags' primary key and sorts nothing.
func tagDriven(plan string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(plan), "\n")
	return strings.HasPrefix(first, "SEARCH t0 USING PRIMARY KEY (key=? AND value=?") && !strings.Contains(plan, "TEMP B-TREE")
}

// TestListByTagPlan pins the plan of a tag filter: the scan is driven
// from execution_tags' primary key, newest first, and nothing is sorted.
// SQLite plans without statistics here (nothing runs ANALYZE), so an
// empty store gets the plan a million executions get
// (BenchmarkListByTag1M logs it).
func TestListByTagPlan(t *testing.T) {
	db := open(t)
	for _, f := range []conveyor.ListFilter{
		{Tags: []conveyor.Tag{{Key: "tenant", Value: "acme"}}},
		{Tags: []conveyor.Tag{{Key: "tenant", Value: "acme"}}, Cursor: "1000"},
		{Tags: []conveyor.Tag{{Key: "tenant", Value: "acme"}, {Key: "kind", Value: "resize"}}, Status: conveyor.StatusPending},
	} {
		plan, err := explainList(t.Context(), db, f)
		if err != nil {
			t.Fatal(err)
		}
		if !tagDriven(plan) {
			t.Errorf("filter %+v: plan\n%s\nwant it driven from t0's primary key, without a sort", f, plan)
		}
	}
}

// TestClaimReadsTheClockOnceItWrites pins that a claim dates its start
// from when it holds the writer, not from when it asked for it: another
// write can create an execution meanwhile, which must not start before it
// was created.
func TestClaimReadsTheClockOnceItWrites(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	if err := db.CreateExecution(ctx, &conveyor.Execution{ID: "x", Pipeline: "p", Status: conveyor.StatusPending,
		Input: []byte(`{}`), CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	busy, err := db.w.BeginTx(ctx, nil) // holds the one writer
	if err != nil {
		t.Fatal(err)
	}
	claimed := make(chan []conveyor.Claim)
	go func() {
		claims, err := db.ClaimPending(ctx, 1, time.Now)
		if err != nil {
			t.Error(err)
		}
		claimed <- claims
	}()
	time.Sleep(20 * time.Millisecond) // let the claim ask for the writer
	freed := time.Now().UTC()
	if err := busy.Rollback(); err != nil {
		t.Fatal(err)
	}
	claims := <-claimed
	if len(claims) != 1 {
		t.Fatalf("claimed %d, want 1", len(claims))
	}
	if started := *claims[0].Execution.StartedAt; started.Before(freed) {
		t.Errorf("started_at %v is before the writer was free (%v)", started, freed)
	}
}

// TestRarestTagFirst: a filter of several tags is driven from the one
// with the fewest executions, whichever order it was given in, and lists
// the same executions either way.
func TestRarestTagFirst(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	common, rare, other := conveyor.Tag{Key: "tenant", Value: "acme"}, conveyor.Tag{Key: "customer", Value: "c1"}, conveyor.Tag{Key: "kind", Value: "k"}
	for i := range 5 {
		tags := conveyor.Tags{common.Key: common.Value, other.Key: other.Value}
		if i == 3 {
			tags[rare.Key] = rare.Value
		}
		ex := &conveyor.Execution{ID: fmt.Sprintf("x%d", i), Pipeline: "p", Status: conveyor.StatusPending,
			Input: []byte(`{}`), Tags: tags, CreatedAt: time.Now().UTC()}
		if err := db.CreateExecution(ctx, ex); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		given, want []conveyor.Tag
		listed      int
	}{
		{[]conveyor.Tag{common, rare}, []conveyor.Tag{rare, common}, 1},
		{[]conveyor.Tag{rare, common}, []conveyor.Tag{rare, common}, 1},
		{[]conveyor.Tag{other, common}, []conveyor.Tag{other, common}, 5}, // as many: as given
		{[]conveyor.Tag{common, other}, []conveyor.Tag{common, other}, 5},
	} {
		got, err := db.rarestFirst(ctx, tc.given)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("rarestFirst(%v) = %v, want %v", tc.given, got, tc.want)
		}
		page, err := db.ListExecutions(ctx, conveyor.ListFilter{Tags: tc.given})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Executions) != tc.listed {
			t.Errorf("list by %v: %d executions, want %d", tc.given, len(page.Executions), tc.listed)
		}
	}
}
