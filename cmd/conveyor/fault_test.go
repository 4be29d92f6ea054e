package main_test

// Faults under load: a node killed with SIGKILL, PostgreSQL stopped under
// running nodes. Real processes; every wait polls with a deadline, and
// nothing asserts a timing or a count that load could change.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/engine"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// markPipeline has two steps, each of which appends a line "execution
// attempt step" to the file marks when it runs; one retry lets an attempt
// cut off by a kill run again.
func markPipeline(marks string) string {
	return fmt.Sprintf(`
retries: 1
steps:
  - name: a
    exec:
      command: ["sh", "-c", "echo \"$CONVEYOR_EXECUTION_ID $CONVEYOR_ATTEMPT a\" >> \"$MARKS\""]
      env: {MARKS: %q}
  - name: b
    exec:
      command: ["sh", "-c", "echo \"$CONVEYOR_EXECUTION_ID $CONVEYOR_ATTEMPT b\" >> \"$MARKS\"; sleep 0.1"]
      env: {MARKS: %q}
`, marks, marks)
}

// loadSize is how many executions a kill cuts into: a few hundred, most
// still pending when the node dies.
const loadSize = 300

// submitLoad submits n executions of pipeline, spread over clients, and
// returns their ids.
func submitLoad(t *testing.T, clients []*client.Client, pipeline string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				ex, err := clients[i%len(clients)].Submit(context.Background(), pipeline, nil)
				if err != nil {
					errs[i] = err
					continue
				}
				ids[i] = ex.ID
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
	}
	return ids
}

// lineCount is how many lines the file at path holds; 0 if it is missing.
func lineCount(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// killMidLoad waits until the steps of the load have marked at least 40
// lines, then kills the node running the oldest running execution, while
// executions are still pending. It returns the victim.
func killMidLoad(t *testing.T, nodes []*node, marks string) *node {
	t.Helper()
	waitFor(t, "the load to get going", func() bool { return lineCount(marks) >= 40 })
	ctx := context.Background()
	running, err := nodes[0].client.List(ctx, conveyor.ListFilter{Status: conveyor.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := nodes[0].client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(running.Executions) == 0 || stats.Counts.Pending == 0 {
		t.Fatalf("no load to kill the node under: %+v", stats.Counts)
	}
	victim := nodes[0]
	for i, n := range nodes {
		if running.Executions[0].Node == fmt.Sprintf("node-%d", i) {
			victim = n
		}
	}
	victim.kill()
	t.Logf("killed a node with %d executions pending and %d running", stats.Counts.Pending, stats.Counts.Running)
	return victim
}

// waitAllFinal waits, at most a minute, until none of the executions is
// pending or running, and returns each one.
func waitAllFinal(t *testing.T, c *client.Client, ids []string) map[string]*conveyor.Execution {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		stats, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Counts.Pending+stats.Counts.Running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("executions still not final a minute after the kill: %+v", stats.Counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := make(map[string]*conveyor.Execution, len(ids))
	for _, id := range ids {
		got[id] = status(t, c, id)
	}
	return got
}

// checkAtLeastOnce checks what docs/deploy.md promises after a kill:
// every execution completed; each attempt ran each step at most once;
// the final attempt ran every step; an execution ran a second attempt
// only if the kill cut its first, so at most maxCut did (those running
// on the killed node, and those whose end it was storing), and at least
// one did.
func checkAtLeastOnce(t *testing.T, ids []string, final map[string]*conveyor.Execution, marks string, maxCut int) {
	t.Helper()
	f, err := os.Open(marks)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ran := map[string]map[string]int{} // execution -> "attempt step" -> runs
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, attemptStep, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("marker line %q", sc.Text())
		}
		if ran[id] == nil {
			ran[id] = map[string]int{}
		}
		ran[id][attemptStep]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	cut := 0
	for _, id := range ids {
		ex := final[id]
		if ex.Status != conveyor.StatusCompleted {
			t.Errorf("%s ended %s %v, want completed", id, ex.Status, ex.Error)
			continue
		}
		for attemptStep, n := range ran[id] {
			if n > 1 {
				t.Errorf("%s: attempt and step %q ran %d times", id, attemptStep, n)
			}
			attempt, _ := strconv.Atoi(strings.Fields(attemptStep)[0])
			if attempt > ex.Attempt {
				t.Errorf("%s completed on attempt %d but attempt %d ran", id, ex.Attempt, attempt)
			}
		}
		for _, step := range []string{"a", "b"} {
			if ran[id][fmt.Sprintf("%d %s", ex.Attempt, step)] != 1 {
				t.Errorf("%s completed on attempt %d without step %s running once in it: %v", id, ex.Attempt, step, ran[id])
			}
		}
		switch ex.Attempt {
		case 1:
		case 2:
			cut++
		default:
			t.Errorf("%s completed on attempt %d after one kill", id, ex.Attempt)
		}
	}
	if cut == 0 || cut > maxCut {
		t.Errorf("%d executions ran a second attempt, want 1 to %d: those the kill cut off", cut, maxCut)
	}
	t.Logf("%d of %d executions ran again after the kill", cut, len(ids))
}

// cutByKill is how many executions a kill of a node with the default
// --concurrency may cut off: those running, and as many again whose work
// was done and whose end was being stored (engine.Engine.ended).
const cutByKill = 2 * engine.DefaultConcurrency

// TestKillUnderLoad kills a node with SIGKILL while a few hundred
// executions are pending and running: none is lost or left running, and
// only the attempts the kill cut off run again.
func TestKillUnderLoad(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		data, pipes, marks := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "marks")
		writePipeline(t, pipes, "mark", markPipeline(marks))
		n := startNode(t, data, pipes)
		ids := submitLoad(t, []*client.Client{n.client}, "mark", loadSize)
		killMidLoad(t, []*node{n}, marks)
		killed := time.Now()

		n2 := startNode(t, data, pipes)
		final := waitAllFinal(t, n2.client, ids)
		t.Logf("all %d final %.1f s after the kill, restart included", len(ids), time.Since(killed).Seconds())
		checkAtLeastOnce(t, ids, final, marks, cutByKill)
	})
	t.Run("postgres", func(t *testing.T) {
		marks := filepath.Join(t.TempDir(), "marks")
		// A short lease for a quick rescue, not so short that the
		// survivor, busy on a loaded machine, loses leases of its own.
		nodes, _ := cluster(t, 2, map[string]string{"mark": markPipeline(marks)}, "--lease", "5s")
		ids := submitLoad(t, []*client.Client{nodes[0].client, nodes[1].client}, "mark", loadSize)
		victim := killMidLoad(t, nodes, marks)
		killed := time.Now()

		survivor := nodes[0]
		if victim == survivor {
			survivor = nodes[1]
		}
		final := waitAllFinal(t, survivor.client, ids)
		t.Logf("all %d final %.1f s after the kill (lease 5 s)", len(ids), time.Since(killed).Seconds())
		checkAtLeastOnce(t, ids, final, marks, cutByKill)
	})
}

// TestPostgresRestart stops PostgreSQL under two nodes while executions
// run and streams are open on both nodes, and starts it again: /healthz
// goes 503 and back to 200 on its own, every stream gets every status
// message the execution stored, in order, up to its final one, and
// every execution completes.
func TestPostgresRestart(t *testing.T) {
	pg := pgtest.NewCluster(t)
	pipes, done := t.TempDir(), t.TempDir()
	writePipeline(t, pipes, "tick", fmt.Sprintf(`
steps:
  - name: tick
    exec:
      command: ["sh", "-c", "i=1; while [ $i -le 20 ]; do echo \"::progress $i/20 tick $i\"; sleep 0.1; i=$((i+1)); done; : > \"$DONE/$CONVEYOR_EXECUTION_ID\""]
      env: {DONE: %q}
`, done))
	// Two slots a node: with 12 executions some are still pending when
	// the database stops, and start only after it is back.
	var nodes []*node
	for i := range 2 {
		nodes = append(nodes, startNode(t, t.TempDir(), pipes,
			"--database-url", pg.URL, "--node-id", fmt.Sprintf("node-%d", i), "--concurrency", "2"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := submitLoad(t, []*client.Client{nodes[0].client, nodes[1].client}, "tick", 12)

	// Each execution is streamed from both nodes: one runs it, the other
	// relays what the database tells it.
	type stream struct {
		id   string
		node int
		msgs <-chan [2]string
	}
	var streams []stream
	for _, id := range ids {
		for i, n := range nodes {
			streams = append(streams, stream{id, i, sseEvents(t, ctx, n.url+"/executions/"+id+"/progress/sse", -1)})
		}
	}
	// Stop the database early in a step (at least 10 ticks to go) while
	// other executions still wait for a slot.
	waitFor(t, "a step to tick while other executions wait", func() bool {
		s, err := nodes[0].client.Stats(ctx)
		if err != nil || s.Counts.Pending == 0 {
			return false
		}
		page, err := nodes[0].client.List(ctx, conveyor.ListFilter{Status: conveyor.StatusRunning})
		if err != nil {
			return false
		}
		for _, ex := range page.Executions {
			var tick int
			if ex.Progress != nil && ex.Progress.Message != "" {
				_, _ = fmt.Sscanf(ex.Progress.Message, "tick %d", &tick)
			}
			if tick >= 1 && tick <= 10 {
				return true
			}
		}
		return false
	})

	health := func(n *node) int {
		resp, err := get(t, n.url+"/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	finishedBefore := countFiles(t, done)
	pg.Stop(t)
	stopped := time.Now()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node-%d's /healthz to report the database", i), func() bool { return health(n) == http.StatusServiceUnavailable })
	}
	// Steps go on without the database: keep it down until one ends, so
	// that a final status waits for the database to come back.
	waitFor(t, "a step to end while the database is down", func() bool { return countFiles(t, done) > finishedBefore })
	t.Logf("PostgreSQL down for %.1f s", time.Since(stopped).Seconds())
	pg.Start(t)
	restarted := time.Now()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node-%d's /healthz to recover", i), func() bool { return health(n) == http.StatusOK })
	}
	t.Logf("/healthz 200 on both nodes %.2f s after PostgreSQL accepted connections again", time.Since(restarted).Seconds())

	sawStart := 0
	for _, s := range streams {
		var got [][2]string
		for m := range s.msgs {
			got = append(got, m)
			if m[1] == string(conveyor.EventStarted) {
				sawStart++
			}
		}
		checkStatusMessages(t, nodes[s.node].client, s.id, fmt.Sprintf("%s streamed from node-%d", s.id, s.node), got)
	}
	t.Logf("the last stream ended %.1f s after PostgreSQL came back; %d of %d streams saw their execution start",
		time.Since(restarted).Seconds(), sawStart, len(streams))
	for _, id := range ids {
		if ex := status(t, nodes[0].client, id); ex.Status != conveyor.StatusCompleted {
			t.Errorf("%s ended %s %v, want completed", id, ex.Status, ex.Error)
		}
	}
	for i, n := range nodes {
		select {
		case <-n.exited:
			t.Errorf("node-%d exited: %v\n%s", i, n.exitErr, n.stderr)
		default:
		}
	}
}

// checkStatusMessages checks one stream's messages (SSE id, event): a
// status message first, rising seqs, the completed message last, and
// every status change the execution stored after the first message.
func checkStatusMessages(t *testing.T, c *client.Client, id, what string, msgs [][2]string) {
	t.Helper()
	if len(msgs) == 0 || msgs[0][1] != string(conveyor.EventStatus) {
		t.Errorf("%s: %v, want a status message first", what, msgs)
		return
	}
	if last := msgs[len(msgs)-1][1]; last != string(conveyor.EventCompleted) {
		t.Errorf("%s ended with %s, want completed: %v", what, last, msgs)
	}
	received := map[int64]string{}
	var prev int64 = -1
	for _, m := range msgs {
		seq, err := strconv.ParseInt(m[0], 10, 64)
		if err != nil || seq <= prev {
			t.Errorf("%s: seq %q after %d", what, m[0], prev)
		}
		prev = seq
		received[seq] = m[1]
	}
	first, _ := strconv.ParseInt(msgs[0][0], 10, 64)
	stored, err := c.Events(context.Background(), id, first)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range stored {
		if ev.Type != conveyor.EventProgress && received[ev.Seq] != string(ev.Type) {
			t.Errorf("%s: stored %s at seq %d, streamed %q", what, ev.Type, ev.Seq, received[ev.Seq])
		}
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
