// Package postgres is the conveyor.Store for PostgreSQL, for when one
// machine is not enough: any number of Conveyor nodes share one database,
// claim work from it without stepping on each other, and tell each other
// what they did with LISTEN/NOTIFY.
//
// It uses pgx (github.com/jackc/pgx/v5) with a pgxpool connection pool
// and passes the same conformance suite as the SQLite backend,
// store/storetest.
//
// # Opening
//
//	db, err := postgres.Open(ctx, "postgres://conveyor@db.internal/conveyor", &postgres.Options{NodeID: "node-1"})
//
// Open applies the embedded migrations (migrations/NNNN_name.sql, each in
// its own transaction, recorded in schema_migrations) while holding a
// pg_advisory_lock, so nodes starting together migrate once; Migrate does
// the same alone, for a "conveyor migrate" step before a deployment. A
// database migrated by a newer binary is refused.
//
// # Claims and leases
//
// ClaimPending takes the pending executions that are due (those waiting
// for run_at or retry_at once their time has come, then the oldest
// others) with SELECT … FOR NO KEY UPDATE SKIP LOCKED, so claimers on
// every node proceed in parallel and never take the same execution. A claim records the node
// (Options.NodeID) and a lease until now plus Options.Lease. The node
// running an execution extends its lease with RenewLeases, which also
// reports the executions the node lost (rescued, or finished) and those
// with a cancel requested on any node. When a node dies its leases run
// out, and RescueExpired on any other node retries or fails its
// executions, recording why; rescuers on several nodes skip each other's
// rows. Every write of a runner is fenced by its attempt and the running
// status, so a node that lost its lease cannot overwrite newer state.
//
// # Append
//
// Append is the throughput path: the engine's group commit hands it every
// event queued while the previous batch committed. The whole batch is one
// statement (unnest of parallel arrays, window functions for the fencing,
// a set-based update of the executions), so one round trip and one commit
// whatever its size.
//
// # Notifications
//
// After a commit, and never inside a claim's or a write's transaction
// (NOTIFY takes a database-wide lock at commit), the store notifies the
// other nodes:
//
//	channel             payload                  sent by
//	conveyor_submitted  empty                    NotifyPending
//	conveyor_events     "id:seq,id:seq,…"        Append, ClaimPending, Cancel of a pending
//	                                             execution, RecoverInterrupted, RescueExpired
//	conveyor_cancel     the execution id         Cancel of a running execution
//	conveyor_logs       execution ids            AppendLogs
//	conveyor_live       "prev event-JSON" lines  Announce
//	conveyor_hello      "1" or "0"               Listen, every second and on Watching
//
// conveyor_events, conveyor_logs and conveyor_live only feed other nodes'
// streams: they are sent only while another node's hellos say it has
// streams open (peers.go).
// An events payload carries, for each execution the call wrote to, the
// highest seq it wrote; one call sends one NOTIFY statement, split into
// several payloads of at most 4000 bytes when needed (PostgreSQL refuses
// more than 8000). An id containing a comma is left out of events
// payloads. A failed NOTIFY is logged, not returned: the write it
// announces is already durable.
//
// Listen (conveyor.Notifier) holds one connection of its own outside the
// pool, with application_name "conveyor-listen": LISTEN needs a session,
// so it does not work through PgBouncer in transaction mode. It delivers a
// NoticeResync after every (re)connect, since notifications sent while it
// was away are lost, and helloSettle after it says it has streams open
// when it had none, since the others notified nobody until they heard
// it; then one Notice per id (per id:seq pair for events),
// skipping those that this DB's own connections sent. It reconnects with backoff
// from 100ms to 5s until its context ends. Notices are hints: receivers
// re-read the store, and keep polling as a fallback.
//
// # Schema
//
// executions: num (bigserial, the submission order: newest first for
// lists, oldest first for claims, and the list cursor), id (unique),
// pipeline, status, input and result (json, kept byte for byte), progress
// and error (jsonb), attempt, created_at, started_at, finished_at, last_seq,
// cancel_requested, node, lease_until, run_at and retry_at. Partial indexes
// on the pending executions serve claims, one for those that may start
// at once (num order), one for those that wait (by due time);
// the leases of running executions serve rescues. events:
// (execution_id, seq) primary key, type and the stored conveyor.Event as
// json. logs: one row per line, the newest conveyor.MaxLogLines kept per
// execution.
//
// # Tests
//
// The tests and benchmarks create a database per test, dropped afterwards,
// on the server package pgtest finds: CONVEYOR_TEST_DATABASE_URL when set
// (for example postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable),
// else a local server, else a throw-away cluster started from the installed
// initdb and postgres. Without any they are skipped, except under CI=true,
// where they fail.
package postgres
