package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun runs the program against a node serving examples/pipelines, as
// its doc comment says to, and checks that each of its five sections does
// what it shows: executions end as their pipelines are written to end, and
// the mistakes come back with the right error codes. Counts and times vary
// with load, so only their shape is checked.
func TestRun(t *testing.T) {
	t.Parallel()
	baseURL := setup(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	var out bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	})
	if err := run(ctx, []string{"client", "-server", baseURL}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}

	got := parseSections(t, out.String())
	wantTitles := []string{
		"Start an execution and poll its progress",
		"Stream an execution over WebSocket",
		"Polling every 500ms against streaming",
		"Watch several executions at once",
		"Errors",
	}
	if len(got) != len(wantTitles) {
		t.Fatalf("%d sections, want %d", len(got), len(wantTitles))
	}
	for i, title := range wantTitles {
		if got[i].title != title {
			t.Errorf("section %d is %q, want %q", i+1, got[i].title, title)
		}
	}
	checkPoll(t, got[0].lines)
	checkStream(t, got[1].lines)
	checkCompare(t, got[2].lines)
	checkWatchMany(t, got[3].lines)
	checkErrors(t, got[4].lines)
}

// TestRunNoServer checks that the program reports a node it cannot reach
// as an error naming the section, which main turns into exit status 1.
func TestRunNoServer(t *testing.T) {
	t.Parallel()
	addr := refusingAddr(t)
	var out bytes.Buffer
	err := run(t.Context(), []string{"client", "-server", "http://" + addr}, &out)
	if err == nil || !strings.HasPrefix(err.Error(), "Start an execution and poll its progress: ") {
		t.Fatalf("run: %v, want the first section's error", err)
	}
	if want := "\n== 1. Start an execution and poll its progress\n"; out.String() != want {
		t.Fatalf("output %q, want only %q", out.String(), want)
	}
}

// TestServerFromEnvironment: without -server the program finds the node
// in CONVEYOR_SERVER, as the conveyor CLI does; here one that refuses
// connections, so the error names its address.
func TestServerFromEnvironment(t *testing.T) {
	addr := refusingAddr(t)
	t.Setenv("CONVEYOR_SERVER", "http://"+addr) // not parallel: the environment is the process's
	var out bytes.Buffer
	if err := run(t.Context(), []string{"client"}, &out); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("run with CONVEYOR_SERVER=http://%s: %v, want an error naming that address", addr, err)
	}
}

// refusingAddr returns a loopback address that was free a moment ago:
// connections to it are refused.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	return addr
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
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
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

type section struct {
	title string
	lines []string
}

// parseSections splits the output at its "== N. Title" headings, which
// must be numbered from 1 with nothing before the first.
func parseSections(t *testing.T, out string) []section {
	t.Helper()
	heading := regexp.MustCompile(`^== (\d+)\. (.+)$`)
	var secs []section
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		if m := heading.FindStringSubmatch(line); m != nil {
			if m[1] != strconv.Itoa(len(secs)+1) {
				t.Fatalf("heading %q after %d sections", line, len(secs))
			}
			secs = append(secs, section{title: m[2]})
			continue
		}
		if line == "" {
			continue // the blank line before each heading
		}
		if len(secs) == 0 {
			t.Fatalf("line %q before the first heading", line)
		}
		secs[len(secs)-1].lines = append(secs[len(secs)-1].lines, line)
	}
	return secs
}

// checkPoll: a pending count execution, polled until it completes.
func checkPoll(t *testing.T, lines []string) {
	t.Helper()
	started := regexp.MustCompile(`^started [0-9a-f-]{36} \(pipeline count, status pending\)$`)
	if len(lines) < 3 || !started.MatchString(lines[0]) {
		t.Fatalf("poll section %q, want a started line, polls and the end", lines)
	}
	for _, l := range lines[1 : len(lines)-1] {
		if !strings.HasPrefix(l, "  poll: ") {
			t.Errorf("poll section: line %q, want a poll", l)
		}
	}
	if last := lines[len(lines)-1]; last != "  completed after 1 attempt(s)" {
		t.Errorf("poll section ends with %q, want completed after 1 attempt", last)
	}
}

// checkStream: a status message first, then events in seq order up to the
// completed one, then a normal close.
func checkStream(t *testing.T, lines []string) {
	t.Helper()
	if len(lines) < 3 {
		t.Fatalf("stream section %q, want status, completed and close", lines)
	}
	seqLine := regexp.MustCompile(`^  seq (\d+): (.+)$`)
	lastSeq := -1 // a pending execution's status message has seq 0
	for i, l := range lines[:len(lines)-1] {
		m := seqLine.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("stream section: line %q, want a message", l)
			continue
		}
		seq, _ := strconv.Atoi(m[1]) // \d+ of a small count
		if seq <= lastSeq {
			t.Errorf("stream section: seq %d after %d, want rising", seq, lastSeq)
		}
		lastSeq = seq
		switch {
		case i == 0 && !strings.HasPrefix(m[2], "status "):
			t.Errorf("stream section opens with %q, want a status message", m[2])
		case i == len(lines)-2 && m[2] != "completed":
			t.Errorf("stream section's last message is %q, want completed", m[2])
		}
	}
	if last := lines[len(lines)-1]; last != "  stream closed normally after the final message" {
		t.Errorf("stream section ends with %q, want a normal close", last)
	}
}

// checkCompare: one line for each way of watching.
func checkCompare(t *testing.T, lines []string) {
	t.Helper()
	want := []*regexp.Regexp{
		regexp.MustCompile(`^  polling: +\d+ progress states, noticed the end \S+ after it happened$`),
		regexp.MustCompile(`^  streaming: +\d+ progress states, noticed the end \S+ after it happened$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("compare section %q, want %d lines", lines, len(want))
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("compare section line %q, want it to match %s", lines[i], re)
		}
	}
}

// checkWatchMany: each of the three executions streams a status message
// first and ends as its pipeline does; fail only after its one retry.
func checkWatchMany(t *testing.T, lines []string) {
	t.Helper()
	line := regexp.MustCompile(`^  (hello|count|fail) +([0-9a-f]{6})  (.+)$`)
	byPipeline := map[string][]string{}
	ids := map[string]string{}
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("watch section: line %q, want pipeline, id and message", l)
			continue
		}
		if id, ok := ids[m[1]]; ok && id != m[2] {
			t.Errorf("watch section: %s shows ids %s and %s, want one", m[1], id, m[2])
		}
		ids[m[1]] = m[2]
		byPipeline[m[1]] = append(byPipeline[m[1]], m[3])
	}
	for _, p := range []string{"hello", "count", "fail"} {
		msgs := byPipeline[p]
		if len(msgs) < 2 {
			t.Errorf("watch section: %s has messages %q, want a status and the end", p, msgs)
			continue
		}
		if !strings.HasPrefix(msgs[0], "status ") {
			t.Errorf("watch section: %s opens with %q, want a status message", p, msgs[0])
		}
		last := msgs[len(msgs)-1]
		switch p {
		case "hello", "count":
			if !strings.HasPrefix(last, "completed") {
				t.Errorf("watch section: %s ends with %q, want completed", p, last)
			}
		case "fail":
			if !strings.HasPrefix(last, "failed on attempt 2: ") || !strings.Contains(last, "exit status 3: giving up") {
				t.Errorf("watch section: fail ends with %q, want failed on attempt 2 with exit status 3", last)
			}
		}
	}
}

// checkErrors: each mistake comes back with the code the program expects.
func checkErrors(t *testing.T, lines []string) {
	t.Helper()
	want := []struct{ what, code string }{
		{"submit an unknown pipeline", "unknown_pipeline"},
		{"get an unknown execution", "not_found"},
		{"watch an unknown execution", "not_found"},
		{"cancel a finished execution", "conflict"},
	}
	if len(lines) != len(want) {
		t.Fatalf("errors section %q, want %d lines", lines, len(want))
	}
	for i, w := range want {
		re := regexp.MustCompile(`^  ` + regexp.QuoteMeta(w.what) + ` +-> ` + w.code + `: \S`)
		if !re.MatchString(lines[i]) {
			t.Errorf("errors section line %q, want %s -> %s and a message", lines[i], w.what, w.code)
		}
	}
}
