// Package storetest is the conformance suite every conveyor.Store backend
// passes, in the style of River's riverdrivertest.
//
// # Use
//
// A backend's test calls Run with a function that returns a new, empty
// store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) conveyor.Store {
//			db, err := sqlite.Open(context.Background(), t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { db.Close() })
//			return db
//		})
//	}
//
// Subtests run in parallel and each calls newStore once, so every store
// must be isolated from the others (its own file, or its own schema on a
// shared PostgreSQL server).
//
// A conveyor.SharedStore backend also calls RunShared, with a function
// that makes a new, empty database and returns an OpenNodeFunc, which
// opens a store on it as a given node with a given lease length:
//
//	func TestSharedStore(t *testing.T) {
//		storetest.RunShared(t, func(t *testing.T) storetest.OpenNodeFunc {
//			dbURL := newDatabase(t)
//			return func(node string, lease time.Duration) conveyor.SharedStore {
//				db, err := postgres.Open(context.Background(), dbURL, &postgres.Options{NodeID: node, Lease: lease})
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { db.Close() })
//				return db
//			}
//		})
//	}
//
// Each of its subtests opens two nodes on one database. The suite picks
// the lease length, so it knows to the microsecond when a lease ends, and
// passes every time explicitly: nothing sleeps.
//
// # What it pins
//
// Every behaviour documented on conveyor.Store, plus the choices the
// interface leaves open, so that backends cannot drift apart:
//
//   - CreateExecution rejects what the interface says it must not get (no
//     ID, not pending, attempt not 0, events, no CreatedAt, input that is
//     not JSON) with EINVALID and writes nothing. Execution.Node is not
//     compared: only shared stores set it.
//   - CreateExecutions checks every execution as CreateExecution does and
//     is all or nothing: an invalid one (EINVALID), or one whose id exists
//     or comes twice in the batch (ECONFLICT, naming that id), leaves every
//     id of the batch ENOTFOUND. A batch is submitted in slice order (lists
//     show its last execution first, claims take its first first),
//     whatever its ids and creation times; an empty batch is a no-op.
//   - Unknown ids of any shape (not only well-formed UUIDs) are ENOTFOUND
//     for GetExecution and Cancel, and an empty result for Events and Logs.
//   - Times come back in UTC; the suite only uses whole microseconds, the
//     coarsest precision a backend may have.
//   - JSON (input, result) is compared by meaning, not bytes, since a
//     backend may store it normalised (PostgreSQL jsonb).
//   - ListExecutions returns a non-nil slice, EINVALID for a limit outside
//     0..MaxListLimit or an unknown status, and no empty trailing page;
//     executions created after a page was read do not shift the next one.
//   - ClaimPending returns its claims oldest first; limit 0 claims none.
//     An execution waiting until its RetryAt (else its RunAt) is claimed
//     at that instant, not a microsecond before; a claim clears RetryAt
//     and keeps RunAt. NextDue(after) is strictly after after.
//   - Append validates the whole batch first (EINVALID and nothing written
//     for a write without execution id, type, positive seq or time, with a
//     result that is not JSON, or of the stream-only types status and
//     error), and drops, besides writes of a stale attempt or a
//     non-running execution, writes whose seq is not after LastSeq (a
//     replay) and writes for unknown executions, so one bad write cannot
//     sink a group commit. A final event sets Error and Result from the
//     event (so completing after a retry clears the earlier attempt's
//     error) and keeps the last progress when it carries none.
//   - Events the store makes itself (started, cancelled, retrying and
//     failed on recovery) carry Status, the status they lead to, and the
//     execution's current Attempt.
//   - RecoverInterrupted keeps the progress of an execution it fails.
//   - AppendLogs drops lines of unknown executions; Logs sets ExecutionID
//     and returns lines in the order they were appended.
//   - A retry keeps CancelRequested, so the next claim sees it and the
//     runner cancels at once.
//
// And, for shared stores, what conveyor.SharedStore leaves open:
//
//   - A claim records the claiming node in Execution.Node, which keeps
//     naming it after the attempt ends.
//   - A lease taken or renewed at t holds through t plus the lease length
//     inclusive: RescueExpired at that instant rescues nothing, a
//     microsecond later it does, whichever node runs it (its own too).
//   - RenewLeases reports Lost and CancelRequested in the order of the ids
//     it was given, each id once however often it was given; unknown ids
//     are Lost; an execution with a cancel requested is still renewed.
//     No ids is the zero Renewal.
//   - A rescue's error message names the node whose lease expired.
//
// # Benchmarks
//
// Benchmarks that every backend runs the same way live here too, called
// from the backend's bench_test.go: BenchCreateBatch (a batch of
// 10,000), and BenchListByTag on a store that FillTagged built with a
// million executions (skipped unless CONVEYOR_BENCH_1M=1, see Skip1M).
// Results are in docs/benchmarks.md.
package storetest
