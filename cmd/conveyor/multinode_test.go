package main_test

// Several conveyor serve processes sharing one PostgreSQL database.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/store/postgres"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// cluster starts n nodes on a fresh database with the given pipelines.
func cluster(t *testing.T, n int, pipelines map[string]string, args ...string) (nodes []*node, dbName string) {
	t.Helper()
	dbName, dbURL := pgtest.NewDatabase(t)
	pipes := t.TempDir()
	for name, yaml := range pipelines {
		writePipeline(t, pipes, name, yaml)
	}
	for i := range n {
		nodes = append(nodes, startNode(t, t.TempDir(), pipes,
			append([]string{"--database-url", dbURL, "--node-id", fmt.Sprintf("node-%d", i)}, args...)...))
	}
	return nodes, dbName
}

// notRunning waits until execution id runs and ready(it) holds, then
// returns one of two nodes that does not run it.
func notRunning(t *testing.T, nodes []*node, id string, ready func(*conveyor.Execution) bool) *node {
	t.Helper()
	var runner string
	waitFor(t, "the execution to run", func() bool {
		got := status(t, nodes[0].client, id)
		runner = got.Node
		return got.Status == conveyor.StatusRunning && ready(got)
	})
	if runner == "node-0" {
		return nodes[1]
	}
	return nodes[0]
}

// watchToEnd streams an execution until its final message.
func watchToEnd(ctx context.Context, c *client.Client, id string) (conveyor.Event, error) {
	s, err := c.Watch(ctx, id)
	if err != nil {
		return conveyor.Event{}, err
	}
	defer s.Close()
	var last conveyor.Event
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			return last, nil
		}
		if err != nil {
			return last, err
		}
		if last.Seq != 0 && ev.Seq <= last.Seq {
			return last, fmt.Errorf("seq went from %d to %d", last.Seq, ev.Seq)
		}
		last = ev
	}
}

// TestThreeNodesShareTheWork: 300 executions submitted round-robin to
// three nodes, each watched to the end from another node; a marker file
// made with O_EXCL per attempt proves no attempt ran twice.
func TestThreeNodesShareTheWork(t *testing.T) {
	marks := t.TempDir()
	nodes, _ := cluster(t, 3, map[string]string{"mark": fmt.Sprintf(`
steps:
  - name: mark
    exec:
      command: ["sh", "-c", "set -C; : > \"$MARKS/$CONVEYOR_EXECUTION_ID.$CONVEYOR_ATTEMPT\" && echo '::progress 1/1 marked'"]
      env: {MARKS: %q}
`, marks)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const executions = 300
	var wg sync.WaitGroup
	errs := make(chan error, executions)
	ranOn := make(chan string, executions)
	for i := range executions {
		wg.Go(func() {
			ex, err := nodes[i%3].client.Submit(ctx, "mark", nil)
			if err != nil {
				errs <- err
				return
			}
			watcher := nodes[(i+1)%3].client
			final, err := watchToEnd(ctx, watcher, ex.ID)
			if err != nil {
				errs <- fmt.Errorf("watch %s: %w", ex.ID, err)
				return
			}
			if final.Type != conveyor.EventCompleted {
				errs <- fmt.Errorf("%s ended with %s %w", ex.ID, final.Type, final.Error)
				return
			}
			got, err := watcher.Get(ctx, ex.ID)
			if err != nil {
				errs <- err
				return
			}
			ranOn <- got.Node
		})
	}
	wg.Wait()
	close(errs)
	close(ranOn)
	for err := range errs {
		t.Error(err)
	}
	perNode := map[string]int{}
	for n := range ranOn {
		perNode[n]++
	}
	entries, err := os.ReadDir(marks)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != executions {
		t.Fatalf("%d marker files for %d executions", len(entries), executions)
	}
	t.Logf("executions per node: %v", perNode)
	if len(perNode) < 2 {
		t.Fatalf("all work ran on one node: %v", perNode)
	}
}

// TestKilledNodesWorkIsRescued kills a node running executions; another
// node retries those with retries left and fails the others as
// interrupted, within the lease plus the rescue interval.
func TestKilledNodesWorkIsRescued(t *testing.T) {
	nodes, _ := cluster(t, 2, map[string]string{
		"retry": `
retries: 1
steps:
  - name: wait-unless-retried
    exec:
      command: ["sh", "-c", "echo '::progress 1/2 waiting'; if [ \"$CONVEYOR_ATTEMPT\" = 1 ]; then exec sleep 60; fi"]
`,
		"once": `
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "echo '::progress 1/2 waiting'; exec sleep 60"]
`}, "--lease", "3s")
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		pipeline := []string{"retry", "once"}[i%2]
		ex, err := nodes[i%2].client.Submit(ctx, pipeline, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ex.ID)
	}
	running := map[string]string{} // id -> node
	waitFor(t, "all executions to run", func() bool {
		for _, id := range ids {
			ex := status(t, nodes[0].client, id)
			if ex.Status != conveyor.StatusRunning {
				return false
			}
			running[id] = ex.Node
		}
		return true
	})
	victim, survivor := nodes[0], nodes[1]
	if running[ids[0]] == "node-1" {
		victim, survivor = nodes[1], nodes[0]
	}
	victimID := running[ids[0]]
	victim.kill()
	killed := time.Now()

	for i, id := range ids {
		if running[id] != victimID {
			continue
		}
		want := conveyor.StatusCompleted
		if i%2 == 1 {
			want = conveyor.StatusFailed
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			ex := status(t, survivor.client, id)
			if ex.Status == want {
				if want == conveyor.StatusFailed && (ex.Error == nil || ex.Error.Code != conveyor.EINTERRUPTED) {
					t.Fatalf("%s failed with %+v, want interrupted", id, ex.Error)
				}
				if want == conveyor.StatusCompleted && ex.Attempt != 2 {
					t.Fatalf("%s completed on attempt %d, want 2", id, ex.Attempt)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is %s %d s after its node was killed, want %s", id, ex.Status, int(time.Since(killed).Seconds()), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("rescued %s's executions %.1f s after the kill (lease 3 s)", victimID, time.Since(killed).Seconds())
}

// TestCancelReachesAnotherNode cancels, through one node, an execution
// running on the other, and streams the cancellation from the first.
func TestCancelReachesAnotherNode(t *testing.T) {
	nodes, _ := cluster(t, 2, map[string]string{"long": `
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "echo '::progress 1/2 waiting'; exec sleep 60"]
`})
	ctx := context.Background()
	ex, err := nodes[0].client.Submit(ctx, "long", nil)
	if err != nil {
		t.Fatal(err)
	}
	other := notRunning(t, nodes, ex.ID, func(got *conveyor.Execution) bool {
		return got.Progress != nil && got.Progress.Message == "waiting"
	})
	s, err := other.client.Watch(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nextOfType(t, s, conveyor.EventStatus)
	start := time.Now()
	if _, err := other.client.Cancel(ctx, ex.ID); err != nil {
		t.Fatal(err)
	}
	nextOfType(t, s, conveyor.EventCancelled)
	t.Logf("cancel through the other node reached the runner and came back in %s", time.Since(start).Round(time.Millisecond))
}

// TestStreamsSurviveALostListenConnection kills every node's LISTEN
// connection while an execution on one node is watched from the other:
// the stream goes on to the final message with rising seqs.
func TestStreamsSurviveALostListenConnection(t *testing.T) {
	nodes, dbName := cluster(t, 2, map[string]string{"tick": `
steps:
  - name: tick
    exec:
      command: ["sh", "-c", "i=1; while [ $i -le 30 ]; do echo \"::progress $i/30 tick $i\"; sleep 0.1; i=$((i+1)); done"]
`})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ex, err := nodes[0].client.Submit(ctx, "tick", nil)
	if err != nil {
		t.Fatal(err)
	}
	watcher := notRunning(t, nodes, ex.ID, func(*conveyor.Execution) bool { return true })
	s, err := watcher.client.Watch(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nextOfType(t, s, conveyor.EventStatus)
	nextOfType(t, s, conveyor.EventProgress)

	pgtest.Exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
		postgres.ListenApplicationName, dbName)
	var last conveyor.Event
	progressAfterKill := 0
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if last.Seq != 0 && ev.Seq <= last.Seq {
			t.Fatalf("seq went from %d to %d", last.Seq, ev.Seq)
		}
		if ev.Type == conveyor.EventProgress {
			progressAfterKill++
		}
		last = ev
	}
	if last.Type != conveyor.EventCompleted || progressAfterKill == 0 {
		t.Fatalf("after the LISTEN connections died: final %s, %d progress messages", last.Type, progressAfterKill)
	}
}

// TestHealthzReportsAnUnreachableDatabase drops the node's database from
// under it: /healthz turns 503 while the database cannot be reached.
func TestHealthzReportsAnUnreachableDatabase(t *testing.T) {
	nodes, dbName := cluster(t, 1, nil)
	health := func() int {
		resp, err := get(t, nodes[0].url+"/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := health(); code != http.StatusOK {
		t.Fatalf("healthz %d before, want 200", code)
	}
	pgtest.Exec(t, "DROP DATABASE "+dbName+" WITH (FORCE)")
	waitFor(t, "healthz to report the database", func() bool { return health() == http.StatusServiceUnavailable })
	// API calls fail as unavailable (retry later), not as internal errors.
	if _, err := nodes[0].client.List(context.Background(), conveyor.ListFilter{}); conveyor.ErrorCode(err) != conveyor.EUNAVAILABLE {
		t.Fatalf("list without a database: %v, want unavailable", err)
	}
}

// TestBatchWatchedFromAnotherNode: a batch submitted to one node, its
// members run by both, is streamed to the end from a node that may run
// none of them: every member's final message and the final batch message
// arrive through the relay.
func TestBatchWatchedFromAnotherNode(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "open")
	nodes, _ := cluster(t, 2, map[string]string{"steps": fmt.Sprintf(`
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "echo '::progress 1/2 waiting'; while [ ! -f %s ]; do sleep 0.05; done"]
`, gate)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	items := make([]conveyor.NewExecution, 6)
	for i := range items {
		items[i] = conveyor.NewExecution{Pipeline: "steps"}
	}
	b, err := nodes[0].client.SubmitBatch(ctx, items, conveyor.Tags{"run": "cross-node"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nodes[1].url+"/executions/progress/sse?batch="+b.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("batch stream on the other node: %d", resp.StatusCode)
	}
	final, statuses := map[string]bool{}, 0
	var last struct {
		Type        string          `json:"type"`
		ExecutionID string          `json:"execution_id"`
		Status      conveyor.Status `json:"status"`
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(data), &last); err != nil {
			t.Fatalf("data %q: %v", data, err)
		}
		switch last.Type {
		case string(conveyor.EventStatus):
			if statuses++; statuses == len(items) {
				// Every member is followed: let them finish.
				if err := os.WriteFile(gate, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		case string(conveyor.EventCompleted):
			final[last.ExecutionID] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("stream broke: %v", err)
	}
	if last.Type != "batch" || last.Status != conveyor.StatusCompleted {
		t.Errorf("last message %+v, want the completed batch message", last)
	}
	if len(final) != len(items) {
		t.Errorf("completed messages of %d members arrived, want all %d", len(final), len(items))
	}
}

// TestLogsFollowedFromAnotherNode: a follower on the node that does not
// run an execution gets each line as the step prints it (PostgreSQL's
// conveyor_logs notice wakes it; its re-read on a heartbeat, every 15 s,
// is too late for recvLine), and the end.
func TestLogsFollowedFromAnotherNode(t *testing.T) {
	gates := t.TempDir()
	nodes, _ := cluster(t, 2, map[string]string{"talk": fmt.Sprintf(`
steps:
  - name: talk
    exec:
      command: ["sh", "-c", "echo first; while [ ! -e %[1]s/1 ]; do sleep 0.05; done; echo second; while [ ! -e %[1]s/2 ]; do sleep 0.05; done; echo third"]
`, gates)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ex, err := nodes[0].client.Submit(ctx, "talk", nil)
	if err != nil {
		t.Fatal(err)
	}
	other := notRunning(t, nodes, ex.ID, func(*conveyor.Execution) bool { return true })
	lines := make(chan conveyor.LogLine, 10)
	ended := make(chan error, 1)
	go func() {
		final, err := other.client.FollowLogs(ctx, ex.ID, 0, func(l conveyor.LogLine) error {
			lines <- l
			return nil
		})
		if err == nil && final.Type != conveyor.EventCompleted {
			err = fmt.Errorf("final event %+v, want completed", final)
		}
		ended <- err
	}()
	recvLine := func(want string) {
		t.Helper()
		select {
		case l := <-lines:
			if l.Line != want {
				t.Fatalf("line %q, want %q", l.Line, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line %q within 10s", want)
		}
	}
	recvLine("first")
	for i, want := range []string{"second", "third"} {
		if err := os.WriteFile(filepath.Join(gates, fmt.Sprint(i+1)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		recvLine(want)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("FollowLogs did not end after the execution")
	}
}

// TestStallRaisedOnceAcrossNodes: the node that runs an execution raises
// each stall once; watchers on both nodes get the same stalled messages,
// each ended by a report before the next, and the store holds each once.
func TestStallRaisedOnceAcrossNodes(t *testing.T) {
	nodes, _ := cluster(t, 2, map[string]string{"quiet": `
stall_after: 400ms
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "echo '::progress 1/3 a'; sleep 1.5; echo '::progress 2/3 b'; sleep 1.5; echo '::progress 3/3 c'"]
`})
	ctx := t.Context()
	ex, err := nodes[0].client.Submit(ctx, "quiet", nil)
	if err != nil {
		t.Fatal(err)
	}
	streams := make([][]conveyor.Event, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		s, err := n.client.Watch(ctx, ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Go(func() {
			for {
				ev, err := s.Next(ctx)
				if err != nil {
					return // io.EOF after the final message
				}
				streams[i] = append(streams[i], ev)
			}
		})
	}
	wg.Wait()

	stalls := func(evs []conveyor.Event) (seqs []int64) {
		for j, ev := range evs {
			if ev.Type != conveyor.EventStalled {
				continue
			}
			seqs = append(seqs, ev.Seq)
			if j+1 < len(evs) && evs[j+1].Type == conveyor.EventStalled {
				t.Errorf("two stalled messages in a row: %+v, %+v", ev, evs[j+1])
			}
		}
		return seqs
	}
	stored, err := nodes[1].client.Events(ctx, ex.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(stalls(stored))
	if len(stalls(stored)) == 0 {
		t.Fatalf("no stalled event stored: %+v", stored)
	}
	for i, evs := range streams {
		if len(evs) == 0 || !evs[len(evs)-1].Type.Final() {
			t.Fatalf("node %d's stream did not reach the end: %+v", i, evs)
		}
		if got := fmt.Sprint(stalls(evs)); got != want {
			t.Errorf("node %d's stream had stalls at seqs %s, the store %s", i, got, want)
		}
	}
}
