// Package bench measures a Conveyor node the same way every time: it is
// `conveyor bench`, and docs/benchmarks.md holds its latest figures.
//
// # Scenarios
//
//   - throughput: executions of a one-step noop pipeline submitted by
//     concurrent clients; submits/s, executions completed/s end to end,
//     and submit→start latency under that load and with idle workers.
//   - progress-latency: executions running at once, each reporting
//     progress at a fixed rate with the send time in its metrics, each
//     watched by its own WebSocket subscriber; delay from the x.Progress
//     call to the subscriber's receipt, messages sent and received, and
//     the server's CPU.
//   - fanout: many idle WebSocket subscribers over a few executions; RSS
//     per subscriber and the time for the final message to reach them all.
//   - submit-flood (not part of all): concurrent clients submitting noop
//     executions one after another for a fixed time while the workers run
//     them; the latency of each submit, submits/s, failed submits by kind,
//     executions finished/s and the backlog when the flood ends.
//
// # Targets
//
// Run starts an embedded node (SQLite in a temporary folder, removed
// afterwards) for each scenario, or measures a running server at
// Config.ServerURL, which must have the pipelines of Pipelines(): start it
// with `conveyor serve --bench-pipelines`. Times are taken from one clock,
// so a server must run on the same machine as the bench.
//
// Every wait is bounded by Config.Timeout and every connection is to the
// target's loopback address.
package bench
