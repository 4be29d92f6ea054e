// Package engine claims pending executions from the store and runs them.
//
// # Running
//
// A claim loop takes up to Concurrency pending executions at a time, woken
// at once by Submit and by finished runs, at the due time of executions
// that wait (a delayed run, a retry's backoff), with a polling fallback. Each run
// executes its pipeline's steps in order (or its Go handler) under the
// pipeline's and the steps' timeouts, and ends in exactly one final event:
// completed, failed, cancelled, or retrying when the pipeline has retries
// left.
//
// # Progress
//
// Exec.Progress only updates the run's state and wakes the run's emitter;
// it never waits for subscribers or the store. The emitter numbers the
// newest progress as the next event, publishes it to subscribers at once
// and queues it for the store. Status events are different: they are
// written to the store and committed before they are published, so a
// client never sees a final status that a crash could take back.
//
// # Writes
//
// One writer goroutine commits events and log lines in batches (group
// commit): whatever queued while the previous transaction ran goes into the
// next one.
package engine
