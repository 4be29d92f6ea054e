package engine

import (
	"time"

	"github.com/conveyor-run/conveyor"
)

// Metrics is told what the engine does, for monitoring: package metrics.
// The engine calls it on its hot paths (every progress message, every
// commit), so each method must be cheap and must never block.
type Metrics interface {
	// Submitted counts an execution submitted, a batch member too.
	Submitted(pipeline string)
	// Started counts a run started here; queueWait is from the
	// execution's submission (a delayed one's run_at) to this start.
	Started(pipeline string, attempt int, queueWait time.Duration)
	// Ended counts a run ended here, whatever its outcome.
	Ended(pipeline string)
	// Finished counts a run that ended in status (perhaps not final: a
	// failed attempt to be retried is pending) after running for ran.
	Finished(pipeline string, status conveyor.Status, ran time.Duration)
	// ProgressPublished counts a progress message published.
	ProgressPublished()
	// StoreCommitted observes a commit of kind op ("submit", "write").
	StoreCommitted(op string, took time.Duration)
}

// Kinds of commits told to Metrics.StoreCommitted.
const (
	commitSubmit = "submit" // submissions, grouped, or a batch
	commitWrite  = "write"  // the writer's events and log lines
)

// noMetrics is the Metrics of an engine without any.
type noMetrics struct{}

func (noMetrics) Submitted(string)                                {}
func (noMetrics) Started(string, int, time.Duration)              {}
func (noMetrics) Ended(string)                                    {}
func (noMetrics) Finished(string, conveyor.Status, time.Duration) {}
func (noMetrics) ProgressPublished()                              {}
func (noMetrics) StoreCommitted(string, time.Duration)            {}
