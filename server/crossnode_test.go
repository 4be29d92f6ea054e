package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// TestStatusReachesAnotherNodeUnderProgressLoad is issue 14's rule: a
// subscriber on node B receives every status message of 200 executions
// that node A runs while 1,000 others on A report progress 10 times a
// second. The subscriber's stream of many executions (by tag) opens
// before the 200 are submitted, so each one's started, data and final
// events all come live, through A's announcements.
func TestStatusReachesAnotherNodeUnderProgressLoad(t *testing.T) {
	t.Parallel()
	const reporters, members = 1000, 200
	_, dbURL := pgtest.NewDatabase(t)
	stopReporting := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopReporting) }) }
	t.Cleanup(stop)
	pipelines := []*conveyor.Pipeline{
		{Name: "reporter", Handler: func(ctx context.Context, x *conveyor.Exec) error {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-stopReporting:
					return nil
				case <-tick.C:
					x.Progress(conveyor.Update{Step: 1, Steps: 1, StepName: "report", Done: float64(i % 100), Total: 100})
				}
			}
		}},
		{Name: "member", Handler: func(_ context.Context, x *conveyor.Exec) error {
			var in struct{ N int }
			if err := json.Unmarshal(x.Input, &in); err != nil {
				return err
			}
			x.Progress(conveyor.Update{Step: 1, Steps: 2, StepName: "one"})
			if err := x.SetData(map[string]any{"n": in.N}); err != nil {
				return err
			}
			x.Progress(conveyor.Update{Step: 2, Steps: 2, StepName: "two"})
			if in.N%10 == 0 {
				return fmt.Errorf("member %d fails on purpose", in.N)
			}
			return nil
		}},
	}
	// Leases long enough that no overload of this machine lets one lapse:
	// a lapsed lease makes the other node rescue (and fail) executions
	// whose events were never stored, which is right, but not what this
	// test is about.
	const lease = 10 * time.Minute
	a, logsA := open(t, server.Config{DatabaseURL: dbURL, NodeID: "a", Concurrency: reporters + members, Pipelines: pipelines,
		RateLimit: -1, MaxPending: -1, Lease: lease})
	b, logsB := open(t, server.Config{DatabaseURL: dbURL, NodeID: "b", Concurrency: 1, Pipelines: pipelines, Lease: lease})
	ctx := t.Context()
	ca, cb := client.New("http://"+a.Addr(), nil), client.New("http://"+b.Addr(), nil)

	items := make([]conveyor.NewExecution, reporters)
	for i := range items {
		items[i] = conveyor.NewExecution{Pipeline: "reporter"}
	}
	t.Logf("%s: nodes open", time.Now().Format("15:04:05.000"))
	if _, err := ca.SubmitBatch(ctx, items, nil); err != nil {
		t.Fatal(err)
	}
	tag := conveyor.Tag{Key: "run", Value: "under-load"}
	stream, err := cb.WatchMany(ctx, client.ManyFilter{Tags: []conveyor.Tag{tag}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	for i := range items[:members] {
		items[i] = conveyor.NewExecution{Pipeline: "member", Input: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i))}
	}
	batch, err := ca.SubmitBatch(ctx, items[:members], conveyor.Tags{tag.Key: tag.Value})
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("%s: batch submitted", time.Now().Format("15:04:05.000"))
	got := map[string][]conveyor.EventType{} // status messages per member, in order
	seen := map[string][]string{}            // every message per member, for a failure's report
	finals := 0
	readCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for finals < members {
		m, err := stream.Next(readCtx)
		if err != nil {
			t.Fatalf("after %d of %d final messages: %v", finals, members, err)
		}
		if ev := m.Event; ev != nil {
			seen[ev.ExecutionID] = append(seen[ev.ExecutionID], fmt.Sprintf("%s#%d", ev.Type, ev.Seq))
		}
		if ev := m.Event; ev != nil && ev.Type != conveyor.EventProgress {
			got[ev.ExecutionID] = append(got[ev.ExecutionID], ev.Type)
			if ev.Type.Final() {
				finals++
			}
		}
	}
	t.Logf("%s: every final message received", time.Now().Format("15:04:05.000"))
	stop()

	page, err := ca.List(ctx, conveyor.ListFilter{Batch: batch.ID, Limit: members})
	if err != nil {
		t.Fatal(err)
	}
	ranOnA := 0
	for _, ex := range page.Executions {
		final := conveyor.EventCompleted
		if ex.Status == conveyor.StatusFailed {
			final = conveyor.EventFailed
		}
		want := []conveyor.EventType{conveyor.EventStarted, conveyor.EventData, final}
		if types := got[ex.ID]; fmt.Sprint(types) != fmt.Sprint(want) {
			stored, _ := ca.Events(ctx, ex.ID, 0)
			var log []string
			for _, ev := range stored {
				log = append(log, fmt.Sprintf("%s#%d", ev.Type, ev.Seq))
			}
			t.Errorf("member %s (%s on node %s): status messages %v, want %v; received %v; stored %v", ex.ID, ex.Status, ex.Node, types, want, seen[ex.ID], log)
			for name, logs := range map[string]*syncBuffer{"a": logsA, "b": logsB} {
				for line := range strings.SplitSeq(logs.String(), "\n") {
					if strings.Contains(line, ex.ID) {
						t.Logf("node %s: %s", name, line)
					}
				}
			}
		}
		if ex.Node == "a" {
			ranOnA++
		}
	}
	if len(page.Executions) != members || ranOnA < members/2 {
		t.Fatalf("%d members listed, %d ran on node a; want %d, most on a", len(page.Executions), ranOnA, members)
	}
}
