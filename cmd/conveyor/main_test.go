package main_test

// End-to-end tests of the conveyor binary: real processes, real signals.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conveyor-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "conveyor")
	build := exec.CommandContext(context.Background(), "go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build conveyor:", err)
		os.Exit(1)
	}
	// pgtest.Main stops the PostgreSQL cluster the tests may have started.
	code := pgtest.Main(m).Run()
	_ = os.RemoveAll(dir) // a leftover temporary folder fails no test
	os.Exit(code)
}

// node is a conveyor serve process.
type node struct {
	cmd     *exec.Cmd
	url     string
	client  *client.Client
	stderr  *syncBuffer
	exited  chan struct{} // closed once the process has exited
	exitErr error         // cmd.Wait's, set before exited is closed
}

// kill stops the node with SIGKILL and waits until it has exited.
func (n *node) kill() {
	_ = n.cmd.Process.Kill() // os.ErrProcessDone if it has exited already
	<-n.exited
}

// terminate stops the node with SIGTERM and fails the test unless it
// exits cleanly.
func (n *node) terminate(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-n.exited
	if n.exitErr != nil {
		t.Fatalf("serve exited with %v after SIGTERM\n%s", n.exitErr, n.stderr)
	}
}

// syncBuffer is a node's log, written by its reader goroutine while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) WriteString(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(v)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`msg="conveyor listening" .*addr=(\S+)`)

// startNode runs conveyor serve on a free loopback port and waits until it
// listens. With pipelines "", serve gets no --pipelines flag.
func startNode(t *testing.T, data, pipelines string, args ...string) *node {
	t.Helper()
	flags := []string{"serve", "--addr", "127.0.0.1:0", "--data", data}
	if pipelines != "" {
		flags = append(flags, "--pipelines", pipelines)
	}
	// Its lifetime is managed by hand: tests signal it to test shutdown and
	// the cleanup kills it. A context would add a second killer.
	cmd := exec.Command(binary, append(flags, args...)...) //nolint:noctx // see above
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			n.stderr.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		n.exitErr = cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(n.kill)
	select {
	case a := <-addr:
		n.url = "http://" + a
		n.client = client.New(n.url, nil)
		return n
	case <-n.exited:
		t.Fatalf("conveyor serve exited before listening: %v\n%s", n.exitErr, n.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("conveyor serve did not listen:\n%s", n.stderr)
	}
	return nil
}

// get sends GET url, canceled when the test ends.
func get(t *testing.T, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

func writePipeline(t *testing.T, dir, name, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func status(t *testing.T, c *client.Client, id string) *conveyor.Execution {
	t.Helper()
	ex, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// sseEvents reads the SSE stream at url from Last-Event-ID after (none
// when negative) and sends each message's id and event type until the
// stream ends, then closes the channel.
func sseEvents(t *testing.T, ctx context.Context, url string, after int64) <-chan [2]string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() }) // the stream may still be open
	msgs := make(chan [2]string, 1024)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(resp.Body)
		var id string
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				id = v
			} else if v, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				msgs <- [2]string{id, v}
			}
		}
	}()
	return msgs
}

// TestCrashRecovery kills a node with SIGKILL while executions run, starts
// a new one on the same data and checks that every running execution was
// either retried as a new attempt or failed as interrupted, and that a
// watcher who resumes after the newest seq it saw gets that outcome,
// although the crashed node pushed progress it never stored.
func TestCrashRecovery(t *testing.T) {
	data, pipes := t.TempDir(), t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "pid")
	writePipeline(t, pipes, "stuck", fmt.Sprintf(`
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "echo $$ > %s; i=0; while :; do i=$((i+1)); echo \"::progress 1/2 waiting $i\"; sleep 0.01; done"]
`, pidFile))
	writePipeline(t, pipes, "second-chance", `
retries: 1
steps:
  - name: wait-unless-retried
    exec:
      command: ["sh", "-c", "echo '::progress 1/2 waiting'; if [ \"$CONVEYOR_ATTEMPT\" = 1 ]; then exec sleep 60; fi"]
`)
	ctx := context.Background()
	n := startNode(t, data, pipes)
	stuck, err := n.client.Submit(ctx, "stuck", nil)
	if err != nil {
		t.Fatal(err)
	}
	retried, err := n.client.Submit(ctx, "second-chance", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{stuck.ID, retried.ID} {
		waitFor(t, id+" to report progress", func() bool {
			p, err := n.client.Progress(ctx, id)
			return err == nil && p != nil && strings.HasPrefix(p.Message, "waiting")
		})
	}
	// A watcher of the stuck execution follows its progress until the crash.
	var seen int64
	watched := sseEvents(t, ctx, n.url+"/executions/"+stuck.ID+"/progress/sse", -1)
	for m := range watched {
		seq, _ := strconv.ParseInt(m[0], 10, 64)
		seen = max(seen, seq)
		if seen > 20 {
			break
		}
	}

	n.kill()
	for m := range watched { // what it had received before the crash
		seq, _ := strconv.ParseInt(m[0], 10, 64)
		seen = max(seen, seq)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	stepPid := strings.TrimSpace(string(b))
	waitFor(t, "the step's process to die with the server", func() bool {
		stat, err := os.ReadFile("/proc/" + stepPid + "/stat")
		return err != nil || strings.Contains(string(stat), ") Z ") // gone, or a zombie nobody reaps
	})

	n2 := startNode(t, data, pipes)
	got := status(t, n2.client, stuck.ID)
	if got.Status != conveyor.StatusFailed || got.Error == nil || got.Error.Code != conveyor.EINTERRUPTED {
		t.Fatalf("execution without retries after the crash: %s %+v, want failed interrupted", got.Status, got.Error)
	}
	var resumed [][2]string
	for m := range sseEvents(t, ctx, n2.url+"/executions/"+stuck.ID+"/progress/sse", seen) {
		resumed = append(resumed, m)
	}
	if len(resumed) != 1 || resumed[0][1] != "failed" {
		t.Errorf("resumed after seq %d (stored: %d), the stream sent %v; want the failed message", seen, got.LastSeq, resumed)
	}
	waitFor(t, "the retried execution to complete", func() bool {
		return status(t, n2.client, retried.ID).Status == conveyor.StatusCompleted
	})
	if got := status(t, n2.client, retried.ID); got.Attempt != 2 {
		t.Fatalf("retried execution completed on attempt %d, want 2", got.Attempt)
	}
}

func TestSecondNodeOnSameDataExits(t *testing.T) {
	data, pipes := t.TempDir(), t.TempDir()
	startNode(t, data, pipes)
	out, err := exec.CommandContext(t.Context(), binary, "serve", "--addr", "127.0.0.1:0", "--data", data, "--pipelines", pipes).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another conveyor serve process") {
		t.Fatalf("second serve on the same data: err %v, output %s", err, out)
	}
}

func TestBadPipelineStopsServe(t *testing.T) {
	pipes := t.TempDir()
	writePipeline(t, pipes, "broken", "steps:\n  - name: a\n    sleep: soon\n")
	out, err := exec.CommandContext(t.Context(), binary, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--pipelines", pipes).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "broken.yaml:3") {
		t.Fatalf("serve with a broken pipeline: err %v, output %s", err, out)
	}
}

// TestGracefulShutdown sends SIGTERM while an execution runs: the node
// stops, lets it finish, and exits 0.
func TestGracefulShutdown(t *testing.T) {
	data, pipes := t.TempDir(), t.TempDir()
	writePipeline(t, pipes, "short", `
steps:
  - name: wait-for-signal
    exec:
      command: ["sh", "-c", "echo '::progress 50% started'; sleep 0.5"]
`)
	n := startNode(t, data, pipes)
	ctx := context.Background()
	ex, err := n.client.Submit(ctx, "short", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the execution to start", func() bool {
		p, err := n.client.Progress(ctx, ex.ID)
		return err == nil && p != nil && p.Message == "started"
	})
	n.terminate(t)

	n2 := startNode(t, data, pipes)
	if got := status(t, n2.client, ex.ID); got.Status != conveyor.StatusCompleted {
		t.Fatalf("execution running at SIGTERM ended %s (%+v), want completed", got.Status, got.Error)
	}
}

// TestShutdownTimeoutInterrupts: an execution still running when the
// shutdown timeout ends is cancelled, the node exits 0, and the execution
// is recorded as interrupted (no retries left).
func TestShutdownTimeoutInterrupts(t *testing.T) {
	data, pipes := t.TempDir(), t.TempDir()
	writePipeline(t, pipes, "long", `
steps:
  - name: wait
    exec:
      command: ["sh", "-c", "echo '::progress 10% waiting'; exec sleep 60"]
`)
	n := startNode(t, data, pipes, "--shutdown-timeout", "200ms")
	ctx := context.Background()
	ex, err := n.client.Submit(ctx, "long", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the execution to start", func() bool {
		p, err := n.client.Progress(ctx, ex.ID)
		return err == nil && p != nil && p.Message == "waiting"
	})
	n.terminate(t)

	n2 := startNode(t, data, pipes)
	got := status(t, n2.client, ex.ID)
	if got.Status != conveyor.StatusFailed || got.Error == nil || got.Error.Code != conveyor.EINTERRUPTED {
		t.Fatalf("execution cut off by the shutdown timeout: %s %+v, want failed interrupted", got.Status, got.Error)
	}
}

// nextOfType reads a stream, skipping progress, until an event of type
// typ arrives.
func nextOfType(t *testing.T, s *client.Stream, typ conveyor.EventType) conveyor.Event {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ev, err := s.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if ev.Type == typ {
			return ev
		}
		if ev.Type != conveyor.EventProgress {
			t.Fatalf("got %s, want %s", ev.Type, typ)
		}
	}
}

func TestNonLoopbackNeedsAPIKey(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), binary, "serve", "--addr", "0.0.0.0:0", "--data", t.TempDir(), "--pipelines", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without an API key") {
		t.Fatalf("serve on 0.0.0.0 without a key: err %v, output %s", err, out)
	}
	// Loopback-only port 0 with a key starts; the key is then required.
	out, err = exec.CommandContext(t.Context(), binary, "serve", "--addr", "127.0.0.1:0", "--api-key", "short", "--data", t.TempDir(), "--pipelines", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "at least 16 characters") {
		t.Fatalf("serve with a 5-character key: err %v, output %s", err, out)
	}
	const key = "0123456789abcdef0123"
	n := startNode(t, t.TempDir(), t.TempDir(), "--api-key", key)
	if _, err := n.client.List(context.Background(), conveyor.ListFilter{}); conveyor.ErrorCode(err) != conveyor.EUNAUTHORIZED {
		t.Fatalf("list without the key: %v, want unauthorized", err)
	}
	if _, err := n.client.WithAPIKey(key).List(context.Background(), conveyor.ListFilter{}); err != nil {
		t.Fatalf("list with the key: %v", err)
	}
}

func TestPprofIsLoopbackOnly(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), binary, "serve", "--addr", "127.0.0.1:0", "--pprof", "0.0.0.0:0", "--data", t.TempDir(), "--pipelines", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--pprof must be a loopback address") {
		t.Fatalf("--pprof on 0.0.0.0: err %v, output %s", err, out)
	}
	n := startNode(t, t.TempDir(), t.TempDir(), "--pprof", "127.0.0.1:0")
	m := regexp.MustCompile(`msg="pprof listening" .*addr=(\S+)`).FindStringSubmatch(n.stderr.String())
	if m == nil {
		t.Fatalf("no pprof address in the log:\n%s", n.stderr)
	}
	resp, err := get(t, "http://"+m[1]+"/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof answered %d", resp.StatusCode)
	}
	if resp, err := get(t, n.url+"/debug/pprof/cmdline"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("the API serves pprof: %d", resp.StatusCode)
		}
	}
}

func TestUnreachableDatabaseIsAClearError(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), binary, "serve", "--addr", "127.0.0.1:0", "--pipelines", t.TempDir(),
		"--database-url", "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "open PostgreSQL") || strings.Contains(string(out), "panic") {
		t.Fatalf("serve with an unreachable database: err %v, output %s", err, out)
	}
}
