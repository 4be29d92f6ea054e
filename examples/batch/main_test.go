package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun runs the program as its doc comment says, against a node serving
// examples/pipelines: the batch's rollup moves from pending through
// running to completed without going back, and the members carry their
// own tag and the batch's. How many rollup lines appear varies with load,
// so only their shape is checked.
func TestRun(t *testing.T) {
	t.Parallel()
	baseURL := setup(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	var out bytes.Buffer
	logOnFailure(t, &out)
	if err := run(ctx, []string{"batch", "-server", baseURL, "-interval", "100ms"}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}

	got := parseOutput(t, out.String(), "count, count, hello")
	checkRollups(t, got.rollups, 3, conveyor.StatusCompleted, true)
	if last := got.rollups[len(got.rollups)-1]; last.counts != (conveyor.Counts{Completed: 3}) || last.percentage != 100 {
		t.Errorf("last rollup %+v, want 3 completed at 100%%", last)
	}
	checkMembers(t, got.members, []string{"count", "count", "hello"}, []conveyor.Status{conveyor.StatusCompleted, conveyor.StatusCompleted, conveyor.StatusCompleted})
}

// TestServerFromEnvironment: without -server the program finds the node
// in CONVEYOR_SERVER, as the conveyor CLI does.
func TestServerFromEnvironment(t *testing.T) {
	baseURL := setup(t)
	t.Setenv("CONVEYOR_SERVER", baseURL) // not parallel: the environment is the process's
	var out bytes.Buffer
	logOnFailure(t, &out)
	if err := run(t.Context(), []string{"batch", "-items", "noop", "-interval", "50ms"}, &out); err != nil {
		t.Fatalf("run with CONVEYOR_SERVER=%s: %v", baseURL, err)
	}
	checkMembers(t, parseOutput(t, out.String(), "noop").members, []string{"noop"}, []conveyor.Status{conveyor.StatusCompleted})
}

// TestRunFailed: a batch with a failed member ends failed, and the
// program says so with an error, which main turns into exit status 1.
func TestRunFailed(t *testing.T) {
	t.Parallel()
	baseURL := setup(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	var out bytes.Buffer
	logOnFailure(t, &out)
	err := run(ctx, []string{"batch", "-server", baseURL, "-items", "noop,fail", "-interval", "50ms"}, &out)
	if err == nil || !strings.HasSuffix(err.Error(), " failed: 1 failed and 0 cancelled of 2") {
		t.Fatalf("run: %v, want the batch failed", err)
	}

	got := parseOutput(t, out.String(), "noop, fail")
	checkRollups(t, got.rollups, 2, conveyor.StatusFailed, false) // fail is retried once
	if last := got.rollups[len(got.rollups)-1]; last.counts != (conveyor.Counts{Completed: 1, Failed: 1}) || last.percentage != 100 {
		t.Errorf("last rollup %+v, want 1 completed and 1 failed at 100%%", last)
	}
	checkMembers(t, got.members, []string{"noop", "fail"}, []conveyor.Status{conveyor.StatusCompleted, conveyor.StatusFailed})
}

// TestRunBadItem: one unknown pipeline refuses the whole batch, with an
// error naming the item, and nothing is stored.
func TestRunBadItem(t *testing.T) {
	t.Parallel()
	baseURL := setup(t)

	var out bytes.Buffer
	err := run(t.Context(), []string{"batch", "-server", baseURL, "-items", "noop,nope"}, &out)
	if conveyor.ErrorCode(err) != conveyor.EUNKNOWNPIPELINE || !strings.Contains(err.Error(), "executions[1]: ") {
		t.Fatalf("run: %v, want unknown_pipeline naming executions[1]", err)
	}
	if out.Len() != 0 {
		t.Errorf("output %q, want none", out.String())
	}
	c := client.New(baseURL, nil)
	if page, err := c.Batches(t.Context(), conveyor.BatchFilter{}); err != nil || len(page.Batches) != 0 {
		t.Errorf("Batches = %+v, %v; want none stored", page, err)
	}
	if page, err := c.List(t.Context(), conveyor.ListFilter{}); err != nil || len(page.Executions) != 0 {
		t.Errorf("List = %+v, %v; want no execution stored", page, err)
	}
}

// TestRunInterrupted: when the program's context ends (Ctrl-C) while the
// batch runs, it cancels the batch, whose running members then stop.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	baseURL := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	out := &watchedOutput{want: "\n  running ", seen: make(chan struct{})} // a rollup line of a running batch
	logOnFailure(t, out)
	ran := make(chan error, 1)
	go func() {
		ran <- run(ctx, []string{"batch", "-server", baseURL, "-items", "slow,slow", "-interval", "50ms"}, out)
	}()
	select {
	case <-out.seen:
		cancel() // as Ctrl-C would
	case err := <-ran:
		t.Fatalf("run returned %v before the batch ran", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the batch did not start running within 30s")
	}
	if err := <-ran; err == nil || err.Error() != "interrupted" {
		t.Fatalf("run: %v, want interrupted", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	cancelled := regexp.MustCompile(`^interrupted; cancelled batch ([0-9a-f-]{36}): \d+ members cancelled, \d+ running ones told to stop$`)
	m := cancelled.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("output ends with %q, want the cancel", lines[len(lines)-1])
	}

	// The slow members sleep for a minute; cancelled, they end at once.
	c := client.New(baseURL, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := c.Batch(t.Context(), m[1])
		if err != nil {
			t.Fatal(err)
		}
		if b.Status.Final() {
			if b.Status != conveyor.StatusCancelled || b.Counts != (conveyor.Counts{Cancelled: 2}) {
				t.Errorf("batch ended %s with %+v, want 2 cancelled", b.Status, b.Counts)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch still %s with %+v 30s after the cancel", b.Status, b.Counts)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// setup runs a node on a free loopback port with a fresh database and the
// example pipelines until the test ends, and returns its URL.
func setup(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, server.Config{
		Addr:         "127.0.0.1:0",
		DataDir:      t.TempDir(),
		PipelinesDir: "../pipelines",
		// A test that fails before cancelling its slow members must not
		// wait the default 30s for them.
		ShutdownTimeout: 2 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("run node: %v", err)
		}
		// The program uses http.DefaultClient; its kept-alive connections
		// would otherwise outlive the test and trip goleak.
		http.DefaultClient.CloseIdleConnections()
	})
	return "http://" + srv.Addr()
}

// logOnFailure logs the program's output if the test fails.
func logOnFailure(t *testing.T, out fmt.Stringer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	})
}

// watchedOutput is the program's output, written by the program while the
// test reads it; seen is closed once it holds want.
type watchedOutput struct {
	want string
	seen chan struct{}

	mu     sync.Mutex
	buf    bytes.Buffer
	closed bool // seen
}

func (w *watchedOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.closed && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
		w.closed = true
	}
	return n, err
}

func (w *watchedOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type rollupLine struct {
	status     conveyor.Status
	counts     conveyor.Counts
	percentage float64
}

type memberLine struct {
	pipeline string
	status   conveyor.Status
	tags     string
}

type output struct {
	rollups []rollupLine
	members []memberLine
}

// parseOutput reads the program's output: the submitted line naming
// pipelines, rollup lines, then "members:" and one line per member.
func parseOutput(t *testing.T, out, pipelines string) output {
	t.Helper()
	submitted := regexp.MustCompile(`^submitted batch [0-9a-f-]{36}: \d+ executions \((.*)\)$`)
	rollup := regexp.MustCompile(`^  (\w+) +pending (\d+)  running (\d+)  completed (\d+)  failed (\d+)  cancelled (\d+) +(\d+\.\d)%$`)
	member := regexp.MustCompile(`^  [0-9a-f-]{36}  (\S+) +(\w+) +(.*)$`)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if m := submitted.FindStringSubmatch(lines[0]); m == nil || m[1] != pipelines {
		t.Fatalf("output starts with %q, want the submitted batch of %s", lines[0], pipelines)
	}
	var got output
	inMembers := false
	for _, l := range lines[1:] {
		switch m := rollup.FindStringSubmatch(l); {
		case l == "members:" && !inMembers:
			inMembers = true
		case inMembers:
			mm := member.FindStringSubmatch(l)
			if mm == nil {
				t.Fatalf("line %q, want a member", l)
			}
			got.members = append(got.members, memberLine{mm[1], conveyor.Status(mm[2]), mm[3]})
		case m != nil:
			n := make([]int, 5)
			for i := range n {
				n[i], _ = strconv.Atoi(m[i+2]) // \d+ of a small count
			}
			pct, _ := strconv.ParseFloat(m[7], 64) // \d+\.\d
			got.rollups = append(got.rollups, rollupLine{
				status:     conveyor.Status(m[1]),
				counts:     conveyor.Counts{Pending: n[0], Running: n[1], Completed: n[2], Failed: n[3], Cancelled: n[4]},
				percentage: pct,
			})
		default:
			t.Fatalf("line %q, want a rollup or members:", l)
		}
	}
	if len(got.rollups) == 0 || !inMembers {
		t.Fatalf("no rollups or no members in %q", out)
	}
	return got
}

// checkRollups: the first rollup is the submitted batch, all pending at
// 0%; each differs from the one before; counts add up to total; the
// status follows from the counts; the last is final. Without retries
// (forwardOnly) the status only goes forward and the percentage never
// goes down; a retry puts its member back to pending at 0%.
func checkRollups(t *testing.T, rollups []rollupLine, total int, final conveyor.Status, forwardOnly bool) {
	t.Helper()
	if first := rollups[0]; first.status != conveyor.StatusPending || first.counts != (conveyor.Counts{Pending: total}) || first.percentage != 0 {
		t.Errorf("first rollup %+v, want all %d pending at 0%%", first, total)
	}
	order := map[conveyor.Status]int{conveyor.StatusPending: 0, conveyor.StatusRunning: 1, final: 2}
	for i, r := range rollups {
		c := r.counts
		if sum := c.Pending + c.Running + c.Final(); sum != total {
			t.Errorf("rollup %d %+v: counts add up to %d, want %d", i, r, sum, total)
		}
		if want := conveyor.BatchStatus(c, total); r.status != want {
			t.Errorf("rollup %d %+v: status %s, want %s from its counts", i, r, r.status, want)
		}
		if i == 0 {
			continue
		}
		prev := rollups[i-1]
		if r == prev {
			t.Errorf("rollup %d repeats the one before: %+v", i, r)
		}
		if !forwardOnly {
			continue
		}
		if o, ok := order[r.status]; !ok || o < order[prev.status] {
			t.Errorf("rollup %d: status %s after %s", i, r.status, prev.status)
		}
		if r.percentage < prev.percentage {
			t.Errorf("rollup %d: %.1f%% after %.1f%%", i, r.percentage, prev.percentage)
		}
	}
	if last := rollups[len(rollups)-1]; last.status != final {
		t.Errorf("last rollup %+v, want %s", last, final)
	}
}

// checkMembers: one line per item, newest (the last item) first, each
// with its pipeline, its final status and both tags.
func checkMembers(t *testing.T, members []memberLine, pipelines []string, statuses []conveyor.Status) {
	t.Helper()
	if len(members) != len(pipelines) {
		t.Fatalf("%d members listed, want %d", len(members), len(pipelines))
	}
	for i, m := range members {
		item := len(pipelines) - 1 - i
		want := memberLine{pipelines[item], statuses[item], "item=" + strconv.Itoa(item) + " source=examples-batch"}
		if m != want {
			t.Errorf("member line %d %+v, want %+v", i, m, want)
		}
	}
}
