package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/metrics"
)

// TestUnknownPipelineGetsItsOwnSeries: an execution of a pipeline this
// node does not define (another node's, on a shared store) is counted
// under its own name, not lost or lumped with another.
func TestUnknownPipelineGetsItsOwnSeries(t *testing.T) {
	t.Parallel()
	m := metrics.New([]string{"known"})
	m.Started("elsewhere", 1, time.Second)
	m.Finished("elsewhere", conveyor.StatusCompleted, time.Second)
	m.Ended("elsewhere")
	m.Finished("known", conveyor.StatusPending, time.Second) // a retry: not finished
	want := `
# HELP conveyor_executions_finished_total Executions whose run on this node ended in a final status (completed, failed or cancelled).
# TYPE conveyor_executions_finished_total counter
conveyor_executions_finished_total{pipeline="elsewhere",status="cancelled"} 0
conveyor_executions_finished_total{pipeline="elsewhere",status="completed"} 1
conveyor_executions_finished_total{pipeline="elsewhere",status="failed"} 0
conveyor_executions_finished_total{pipeline="known",status="cancelled"} 0
conveyor_executions_finished_total{pipeline="known",status="completed"} 0
conveyor_executions_finished_total{pipeline="known",status="failed"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "conveyor_executions_finished_total"); err != nil {
		t.Error(err)
	}
}

// A nil *Metrics records nothing and does not panic.
func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.Submitted("p")
	m.Started("p", 1, 0)
	m.Finished("p", conveyor.StatusCompleted, 0)
	m.Ended("p")
	m.ProgressPublished()
	m.StoreCommitted(metrics.CommitWrite, 0)
	m.StreamOpened(metrics.TransportSSE)
	m.StreamClosed(metrics.TransportSSE)
	m.LimitRejected(metrics.LimitRate)
	m.WebhookDelivered(metrics.WebhookResultDelivered)
	m.RetentionDeleted(metrics.RetentionExecutions, 3)
}

// The costs the engine pays per progress message and per execution.
func BenchmarkProgressPublished(b *testing.B) {
	m := metrics.New([]string{"p"})
	for b.Loop() {
		m.ProgressPublished()
	}
}

func BenchmarkExecution(b *testing.B) {
	m := metrics.New([]string{"p"})
	for b.Loop() {
		m.Submitted("p")
		m.Started("p", 1, time.Millisecond)
		m.Finished("p", conveyor.StatusCompleted, 10*time.Millisecond)
		m.Ended("p")
	}
}

func BenchmarkStoreCommitted(b *testing.B) {
	m := metrics.New(nil)
	for b.Loop() {
		m.StoreCommitted(metrics.CommitWrite, time.Millisecond)
	}
}
