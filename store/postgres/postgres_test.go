package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
	"github.com/conveyor-run/conveyor/store/storetest"
)

// TestMain drops the 1M benchmarks' database while the server is up, then
// lets pgtest stop the cluster it may have started, then looks for leaked
// goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(closingMillion{m}))
}

// closingMillion runs the tests and benchmarks, then drops the database
// the 1M benchmarks built, before goleak looks for goroutines left.
type closingMillion struct{ m *testing.M }

func (c closingMillion) Run() int {
	code := c.m.Run()
	if err := closeMillion(); err != nil {
		fmt.Fprintln(os.Stderr, "drop the database of the 1M benchmarks:", err)
		return max(code, 1)
	}
	return code
}

// open opens a store on the database at dbURL, closed when t ends.
func open(t testing.TB, dbURL, node string) *DB {
	t.Helper()
	return openLease(t, dbURL, node, 0)
}

// openLease opens a store whose leases last lease (zero: DefaultLease).
func openLease(t testing.TB, dbURL, node string, lease time.Duration) *DB {
	t.Helper()
	db, err := Open(context.Background(), dbURL, &Options{NodeID: node, Lease: lease, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// setup opens a store on a new database.
func setup(t testing.TB) *DB {
	t.Helper()
	_, dbURL := pgtest.NewDatabase(t)
	return open(t, dbURL, "node-a")
}

// twoNodes opens two stores, nodes "a" and "b", on one new database.
func twoNodes(t testing.TB) (a, b *DB) {
	t.Helper()
	_, dbURL := pgtest.NewDatabase(t)
	return open(t, dbURL, "a"), open(t, dbURL, "b")
}

func TestStore(t *testing.T) {
	pgtest.AdminURL(t)
	t.Parallel()
	storetest.Run(t, func(t *testing.T) conveyor.Store { return setup(t) })
}

func TestSharedStore(t *testing.T) {
	pgtest.AdminURL(t)
	t.Parallel()
	storetest.RunShared(t, func(t *testing.T) storetest.OpenNodeFunc {
		_, dbURL := pgtest.NewDatabase(t)
		return func(node string, lease time.Duration) conveyor.SharedStore {
			return openLease(t, dbURL, node, lease)
		}
	})
}

var base = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func create(t testing.TB, db *DB, id, pipeline string) *conveyor.Execution {
	t.Helper()
	ex := &conveyor.Execution{ID: id, Pipeline: pipeline, Status: conveyor.StatusPending, Input: json.RawMessage(`{}`), CreatedAt: base}
	if err := db.CreateExecution(context.Background(), ex); err != nil {
		t.Fatalf("CreateExecution %s: %v", id, err)
	}
	return ex
}

func claim(t testing.TB, db *DB, limit int, now time.Time) []conveyor.Claim {
	t.Helper()
	claims, err := db.ClaimPending(context.Background(), limit, func() time.Time { return now })
	if err != nil {
		t.Fatalf("ClaimPending: %v", err)
	}
	return claims
}

func progressEvent(ex *conveyor.Execution, seq int64) conveyor.Event {
	return conveyor.Event{Type: conveyor.EventProgress, ExecutionID: ex.ID, Seq: seq, Time: base.Add(time.Duration(seq) * time.Second),
		Attempt: ex.Attempt, Progress: &conveyor.Progress{CurrentStep: 1, CurrentStepName: "work"}}
}

// leaseUntil reads the lease of an execution straight from the table.
func leaseUntil(t testing.TB, db *DB, id string) *time.Time {
	t.Helper()
	var lease *time.Time
	if err := db.pool.QueryRow(context.Background(), `SELECT lease_until FROM executions WHERE id = $1`, id).Scan(&lease); err != nil {
		t.Fatal(err)
	}
	return lease
}

func TestLeaseColumn(t *testing.T) {
	// What storetest.RunShared cannot see: with no Options.Lease a claim
	// holds DefaultLease, and lease_until is cleared when the attempt ends.
	t.Parallel()
	db := setup(t)
	create(t, db, "x", "p")
	now := base.Add(time.Minute)
	if c := claim(t, db, 1, now); len(c) != 1 {
		t.Fatalf("claims = %+v, want x", c)
	}
	if got := leaseUntil(t, db, "x"); got == nil || !got.Equal(now.Add(DefaultLease)) {
		t.Errorf("lease_until = %v, want %v", got, now.Add(DefaultLease))
	}
	if err := db.Append(t.Context(), []conveyor.Event{{Type: conveyor.EventCompleted, ExecutionID: "x", Seq: 2, Time: now, Attempt: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := leaseUntil(t, db, "x"); got != nil {
		t.Errorf("lease_until = %v after completion, want NULL", got)
	}
}

// notices collects what Listen delivers.
type notices struct {
	t  *testing.T
	ch chan conveyor.Notice
}

// listen runs db.Listen until the test ends and waits for its first
// resync.
func listen(t *testing.T, db *DB) *notices {
	t.Helper()
	n := &notices{t: t, ch: make(chan conveyor.Notice, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Listen(ctx, func(x conveyor.Notice) { n.ch <- x }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen returned %v, want nil", err)
		}
	})
	n.want(conveyor.Notice{Kind: conveyor.NoticeResync})
	return n
}

// want fails unless the next notice is want.
func (n *notices) want(want conveyor.Notice) {
	n.t.Helper()
	select {
	case got := <-n.ch:
		if got != want {
			n.t.Fatalf("notice %+v, want %+v", got, want)
		}
	case <-time.After(10 * time.Second):
		n.t.Fatalf("no notice within 10s, want %+v", want)
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	a, b := twoNodes(t)
	ctx := t.Context()
	n := listen(t, b)

	// A submission is not notified (its node claims it, or asks the
	// others with NotifyPending): the next notice is NotifyPending's.
	create(t, a, "x", "p")
	a.NotifyPending(ctx)
	n.want(conveyor.Notice{Kind: conveyor.NoticeSubmitted})

	x := claim(t, a, 1, base)[0].Execution
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "x", Seq: 1})

	// One notice per execution per batch, with its newest seq.
	create(t, a, "y", "p")
	y := claim(t, a, 1, base)[0].Execution
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "y", Seq: 1})
	if err := a.Append(ctx, []conveyor.Event{progressEvent(x, 2), progressEvent(y, 2), progressEvent(x, 3)}); err != nil {
		t.Fatal(err)
	}
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "x", Seq: 3})
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "y", Seq: 2})

	// A batch that was fenced off entirely announces nothing.
	if err := a.Append(ctx, []conveyor.Event{progressEvent(x, 3)}); err != nil {
		t.Fatal(err)
	}

	if _, _, err := a.Cancel(ctx, "x", base); err != nil {
		t.Fatal(err)
	}
	n.want(conveyor.Notice{Kind: conveyor.NoticeCancel, ExecutionID: "x"})
	// The runner's cancelled event.
	if err := a.Append(ctx, []conveyor.Event{{Type: conveyor.EventCancelled, ExecutionID: "x", Seq: 4, Time: base, Attempt: 1}}); err != nil {
		t.Fatal(err)
	}
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "x", Seq: 4})

	create(t, a, "z", "p")
	if _, _, err := a.Cancel(ctx, "z", base); err != nil {
		t.Fatal(err)
	}
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "z", Seq: 1})

	// What b does itself, b is not told; what a does next, it is.
	b.NotifyPending(ctx)
	a.NotifyPending(ctx)
	n.want(conveyor.Notice{Kind: conveyor.NoticeSubmitted})

	// Submissions, in batches or refused, are no notice.
	batch := func(ids ...string) []*conveyor.Execution {
		exs := make([]*conveyor.Execution, len(ids))
		for i, id := range ids {
			exs[i] = &conveyor.Execution{ID: id, Pipeline: "p", Status: conveyor.StatusPending, CreatedAt: base}
		}
		return exs
	}
	if err := a.CreateExecutions(ctx, batch("b1", "b2", "b3")); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateExecutions(ctx, batch("b4", "b1")); conveyor.ErrorCode(err) != conveyor.ECONFLICT {
		t.Fatalf("CreateExecutions of an existing id = %v, want a conflict", err)
	}
	create(t, a, "after", "p")
	a.NotifyPending(ctx)
	n.want(conveyor.Notice{Kind: conveyor.NoticeSubmitted})

	// Stored log lines are announced once per execution of the batch.
	logLine := func(id string) conveyor.LogLine {
		return conveyor.LogLine{ExecutionID: id, Time: base, Attempt: 1, Stream: "stdout", Line: "hi"}
	}
	if err := a.AppendLogs(ctx, []conveyor.LogLine{logLine("y"), logLine("z"), logLine("y")}); err != nil {
		t.Fatal(err)
	}
	n.want(conveyor.Notice{Kind: conveyor.NoticeLogs, ExecutionID: "y"})
	n.want(conveyor.Notice{Kind: conveyor.NoticeLogs, ExecutionID: "z"})

	// Rescues are announced too.
	evs, err := a.RescueExpired(ctx, base.Add(time.Hour), nil)
	if err != nil || len(evs) != 1 || evs[0].ExecutionID != "y" {
		t.Fatalf("RescueExpired = %+v, %v; want y failed", evs, err)
	}
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "y", Seq: 2 + conveyor.SeqReservation})
}

func TestNotifyPayloadsSplit(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	db := open(t, dbURL, "a")
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+channelEvents); err != nil {
		t.Fatal(err)
	}

	// 150 executions with 60-byte ids: more than one payload can carry.
	var exs []*conveyor.Execution
	for i := range 150 {
		create(t, db, fmt.Sprintf("%060d", i), "p")
	}
	for _, c := range claim(t, db, 150, base) {
		exs = append(exs, c.Execution)
	}
	var writes []conveyor.Event
	for _, ex := range exs {
		writes = append(writes, progressEvent(ex, 2), progressEvent(ex, 3))
	}
	// Drain the claim's notifications first.
	if err := db.Append(ctx, writes); err != nil {
		t.Fatal(err)
	}

	got := map[string]int64{}
	payloads := 0
	for len(got) < len(exs) || slices.ContainsFunc(exs, func(ex *conveyor.Execution) bool { return got[ex.ID] != 3 }) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d payloads: %v", payloads, err)
		}
		payloads++
		if len(n.Payload) > maxPayload {
			t.Errorf("payload of %d bytes, want at most %d", len(n.Payload), maxPayload)
		}
		deliver(n, func(x conveyor.Notice) { got[x.ExecutionID] = max(got[x.ExecutionID], x.Seq) })
	}
	// 150 × 62 bytes of pairs need three payloads of 4000 for the claim
	// and three for the append.
	if payloads != 6 {
		t.Errorf("%d payloads, want 6", payloads)
	}
}

func TestDeliver(t *testing.T) {
	var got []conveyor.Notice
	deliver(&pgconn.Notification{Channel: channelEvents, Payload: "a:1,b:c:22,bad,:3,d:x,e:0,f:7"}, func(n conveyor.Notice) { got = append(got, n) })
	want := []conveyor.Notice{
		{Kind: conveyor.NoticeEvents, ExecutionID: "a", Seq: 1},
		{Kind: conveyor.NoticeEvents, ExecutionID: "b:c", Seq: 22},
		{Kind: conveyor.NoticeEvents, ExecutionID: "f", Seq: 7},
	}
	if !slices.Equal(got, want) {
		t.Errorf("notices = %+v, want %+v", got, want)
	}
}

func TestDeliverLogs(t *testing.T) {
	var got []conveyor.Notice
	deliver(&pgconn.Notification{Channel: channelLogs, Payload: "a,,b:c"}, func(n conveyor.Notice) { got = append(got, n) })
	want := []conveyor.Notice{{Kind: conveyor.NoticeLogs, ExecutionID: "a"}, {Kind: conveyor.NoticeLogs, ExecutionID: "b:c"}}
	if !slices.Equal(got, want) {
		t.Errorf("notices = %+v, want %+v", got, want)
	}
}

func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	dbs := make([]*DB, 3)
	errs := make([]error, 3)
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), dbURL, &Options{NodeID: fmt.Sprint(i)}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer dbs[i].Close()
	}
	if t.Failed() {
		return
	}
	var versions []int
	rows, err := dbs[0].pool.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != len(ms) || versions[0] != 1 {
		t.Errorf("schema_migrations = %v, want 1..%d once each", versions, len(ms))
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	ctx := t.Context()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	applied, version, err := Migrate(ctx, dbURL)
	if err != nil || !slices.Equal(applied, names) || version != len(ms) || names[0] != "0001_init.sql" {
		t.Fatalf("Migrate of an empty database = %v, %d, %v; want %v, %d", applied, version, err, names, len(ms))
	}
	// The second finds nothing to do.
	if applied, version, err := Migrate(ctx, dbURL); err != nil || len(applied) != 0 || version != len(ms) {
		t.Fatalf("Migrate again = %v, %d, %v; want none applied at %d", applied, version, err, len(ms))
	}
	db := open(t, dbURL, "a")
	create(t, db, "x", "p")

	// A database migrated by a newer binary is refused.
	if _, err := db.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	if db2, err := Open(ctx, dbURL, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		if db2 != nil {
			db2.Close()
		}
		t.Fatalf("Open of a newer schema: %v, want an error", err)
	}
	if _, _, err := Migrate(ctx, dbURL); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Migrate of a newer schema: %v, want an error", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if db, err := Open(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", nil); err == nil {
		db.Close()
		t.Fatal("Open of an unreachable database succeeded")
	}
	if _, _, err := Migrate(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5"); err == nil {
		t.Fatal("Migrate of an unreachable database succeeded")
	}
	if _, err := Open(ctx, "postgres://postgres@127.0.0.1:5432/postgres", &Options{Lease: -time.Second}); err == nil {
		t.Fatal("Open with a negative lease succeeded")
	}
}

func TestPingFailsWhenDatabaseGone(t *testing.T) {
	t.Parallel()
	name, dbURL := pgtest.NewDatabase(t)
	db := open(t, dbURL, "a")
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	pgtest.Exec(t, "DROP DATABASE "+name+" WITH (FORCE)")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := db.Ping(ctx); err == nil {
		t.Fatal("Ping after the database was dropped succeeded")
	}
}

func TestListenReconnects(t *testing.T) {
	t.Parallel()
	name, dbURL := pgtest.NewDatabase(t)
	a, b := open(t, dbURL, "a"), open(t, dbURL, "b")
	n := listen(t, b)

	// Kill the listening backend, as a failover or an administrator would.
	for range 2 {
		pgtest.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2`,
			ListenApplicationName, name)
		n.want(conveyor.Notice{Kind: conveyor.NoticeResync})
	}
	a.NotifyPending(t.Context())
	n.want(conveyor.Notice{Kind: conveyor.NoticeSubmitted})
}

func TestListenEndsWithContext(t *testing.T) {
	// Listen returns nil when its context ends, also while it waits to
	// reconnect to a server that is not there.
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	db := open(t, dbURL, "a")
	for _, d := range []time.Duration{0, 50 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		if err := db.Listen(ctx, func(conveyor.Notice) {}); err != nil {
			t.Errorf("Listen = %v, want nil", err)
		}
		cancel()
	}

	pool, err := pgxpool.New(t.Context(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable") // connects lazily
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	gone := &DB{pool: pool, logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	called := false
	if err := gone.Listen(ctx, func(conveyor.Notice) { called = true }); err != nil {
		t.Errorf("Listen to an unreachable server = %v, want nil", err)
	}
	if called {
		t.Error("Listen to an unreachable server delivered a notice")
	}
}

// TestClaimReadsTheClockOnceConnected pins that a claim dates its start
// from when it has a connection, not from when it asked for one: a busy
// pool can keep it waiting while executions are submitted, which must not
// start before they were.
func TestClaimReadsTheClockOnceConnected(t *testing.T) {
	pgtest.AdminURL(t)
	t.Parallel()
	db := setup(t)
	ctx := t.Context()
	create(t, db, "x", "p")
	var held []*pgxpool.Conn
	for range db.pool.Stat().MaxConns() {
		c, err := db.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	claimed := make(chan []conveyor.Claim)
	go func() {
		claims, err := db.ClaimPending(ctx, 1, time.Now)
		if err != nil {
			t.Error(err)
		}
		claimed <- claims
	}()
	time.Sleep(20 * time.Millisecond) // let the claim ask for a connection
	freed := time.Now().UTC()
	for _, c := range held {
		c.Release()
	}
	claims := <-claimed
	if len(claims) != 1 {
		t.Fatalf("claimed %d, want 1", len(claims))
	}
	if started := *claims[0].Execution.StartedAt; started.Before(freed.Truncate(time.Microsecond)) {
		t.Errorf("started_at %v is before a connection was free (%v)", started, freed)
	}
}
