// Package sqlite is Conveyor's embedded store: a conveyor.Store in one
// SQLite file (dir/conveyor.db), through the pure-Go modernc.org/sqlite
// driver, so the binary needs no cgo and no server.
//
// # Connections
//
// Open makes two database/sql pools on the file. The writer has exactly
// one connection and starts every transaction with BEGIN IMMEDIATE
// (_txlock=immediate), so writes queue in Go instead of failing with
// SQLITE_BUSY, and no transaction starts as a read and fails on its first
// write (SQLITE_BUSY_SNAPSHOT). Reads go to a separate read-only pool;
// with journal_mode=WAL they neither wait for the writer nor block it.
// synchronous=NORMAL makes a commit cost no fsync: in WAL mode that loses
// nothing on a process crash, only the last transactions on power loss.
//
// # Schema
//
// Numbered SQL files in migrations/ are embedded and applied at Open, each
// in its own transaction and recorded in schema_migrations; a database
// from a newer binary is refused. The tables:
//
//   - executions: one row per execution. Its INTEGER PRIMARY KEY num is
//     the submission order: lists go newest first by it, claims oldest
//     first, and a list cursor is the num of the last execution returned.
//     JSON (input, progress, result) is stored as text, times as Unix
//     nanoseconds, and read back in UTC. Pending executions that wait
//     (run_at, retry_at) are claimed from a partial index of their own,
//     by due time, the others from one in num order.
//   - events: the event log, keyed by (execution_id, seq), each event
//     stored as the JSON clients receive.
//   - logs: output lines in arrival order; each execution keeps its newest
//     conveyor.MaxLogLines.
//
// # Writes
//
// Append is the throughput path: the engine hands it every event queued
// while the previous commit ran, and it writes them in one transaction
// with statements prepared once at Open. Each write is fenced: it applies
// only if its attempt is the execution's current one, the execution is
// running and its seq is after the last, so a stale runner never
// overwrites newer state. The benchmarks in this package measure it:
//
//	go test -run '^$' -bench . -benchmem ./store/sqlite/
package sqlite
