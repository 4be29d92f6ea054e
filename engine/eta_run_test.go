package engine_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestETALearnsFromRealSteps is the acceptance test in real time:
// a pipeline of a sleep step, an exec step printing ::progress and
// another sleep, run three times; on the fourth, the ETA published
// nearest to 25 % of its time is within 15 % of the time that was really
// left, measured from the run's own completion. The steps last long
// against the scheduling noise of a loaded machine (the tolerance is
// about 0.35 s) and fork little (a fork on a loaded machine can take
// tens of milliseconds); the whole test takes about 13 s per store.
func TestETALearnsFromRealSteps(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		n.start(map[string]string{"timed": `
steps:
  - name: warm-up
    sleep: 1500ms
  - name: work
    exec:
      command: [sh, -c, "echo '::progress 0/1'; sleep 0.6; echo '::progress 1/1'"]
  - name: wrap-up
    sleep: 1s
`})
		for range 3 {
			ex := n.submit("timed")
			if final := n.finalPublished(ex.ID); final.Type != conveyor.EventCompleted {
				t.Fatalf("run ended %s: %v", final.Type, final.Error)
			}
		}
		ex := n.submit("timed")
		final := n.finalPublished(ex.ID)
		if final.Type != conveyor.EventCompleted {
			t.Fatalf("run 4 ended %s: %v", final.Type, final.Error)
		}

		n.mu.Lock()
		defer n.mu.Unlock()
		var start time.Time
		var progress []conveyor.Event
		for _, ev := range n.published {
			switch {
			case ev.ExecutionID != ex.ID:
			case ev.Type == conveyor.EventStarted:
				start = ev.Time
			case ev.Type == conveyor.EventProgress:
				progress = append(progress, ev)
				if eta := ev.Progress.ETASeconds; eta != nil && *eta <= 0 {
					t.Errorf("ETA %v at %s before the end", *eta, ev.Time.Sub(start))
				}
			}
		}
		quarter := start.Add(final.Time.Sub(start) / 4)
		var nearest *conveyor.Event
		for i, ev := range progress {
			if nearest == nil || absDuration(ev.Time.Sub(quarter)) < absDuration(nearest.Time.Sub(quarter)) {
				nearest = &progress[i]
			}
		}
		if nearest == nil || nearest.Progress.ETASeconds == nil {
			t.Fatalf("no ETA near 25 %% (%s of %s): %+v", quarter.Sub(start), final.Time.Sub(start), nearest)
		}
		eta, left := *nearest.Progress.ETASeconds, final.Time.Sub(nearest.Time).Seconds()
		msg := fmt.Sprintf("at %s of %s (%.1f %%): ETA %.1f s, %.2f s left",
			nearest.Time.Sub(start).Round(time.Millisecond), final.Time.Sub(start).Round(time.Millisecond),
			*nearest.Progress.Percentage, eta, left)
		if math.Abs(eta-left) > 0.15*left {
			t.Fatal(msg)
		}
		t.Log(msg)
	})
}

func absDuration(d time.Duration) time.Duration { return max(d, -d) }
