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
// Subpackages wrap one role each (engine, hub, relay, pipeline, api,
// client, store/sqlite, store/postgres); server assembles a node from
// them and cmd/conveyor calls it.
package conveyor
