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
// Subpackages wrap one role each (engine, hub, pipeline, api, client,
// store/sqlite) and do not import each other; cmd/conveyor wires them.
package conveyor
