// Package conveyor holds the domain of the Conveyor execution server: the
// types every other package speaks (Execution, Status, Progress, Event,
// Pipeline, Exec), the Store interface between the engine and its storage
// backends, and the error codes that travel from the store to HTTP clients.
//
// # Data flow
//
// API/SDK -> Store (submit) -> engine (claim, run) -> progress ->
// hub (live) + Store (durable) -> API streams -> clients.
//
// Subpackages wrap one role each (engine, hub, live, relay, pipeline,
// api, client, store/sqlite, store/postgres) and import only this package
// and small interfaces they declare, not one another (the SQL backends
// share package store; api embeds package web); server assembles a node
// from them and cmd/conveyor calls it. The README's Layout section lists
// each package and what it may import.
//
// # One home for each rule
//
// The lifecycle (lifecycle.go: what a cancel does in each state,
// retry-or-fail and its messages, the started and final events, how an
// event changes an execution, event encoding), the checks a store makes
// before it writes (validate.go), the text every store keeps (text.go) and
// the table from error codes to HTTP statuses (error.go) live here once;
// the stores keep only SQL and its translation.
package conveyor
