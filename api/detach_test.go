package api_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor/api"
)

// Streams run on their hijacked connections apart from the requests that
// opened them (detach.go): these tests check what the http.Server used to
// do for them.

// untilHeartbeat reads an SSE stream up to its first heartbeat, which the
// stream sends once it runs apart from its request.
func untilHeartbeat(t *testing.T, r *bufio.Reader) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream ended before a heartbeat: %v", err)
		}
		if line == ": heartbeat\n" {
			return
		}
	}
}

// TestSSEStreamEndsOnCloseStreams: on shutdown an SSE stream sends what it
// holds and ends its response, and WaitStreams sees it end.
func TestSSEStreamEndsOnCloseStreams(t *testing.T) {
	t.Parallel()
	h, _, ex := runGated(t)
	resp := getSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", "")
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("SSE answer %d %q", resp.StatusCode, ct)
	}
	r := bufio.NewReader(resp.Body)
	untilHeartbeat(t, r)

	h.api.CloseStreams()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := h.api.WaitStreams(ctx); err != nil {
		t.Fatalf("WaitStreams after CloseStreams: %v", err)
	}
	readSSE(t, r) // returns once the response has ended
	if _, err := h.client.Cancel(ctx, ex.ID); err != nil {
		t.Fatal(err)
	}
}

// TestWaitStreamsClosesThoseLeft: streams still open when WaitStreams's
// context ends are closed, not left to hold the node.
func TestWaitStreamsClosesThoseLeft(t *testing.T) {
	t.Parallel()
	h, _, ex := runGated(t)
	resp := getSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", "")
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	untilHeartbeat(t, r)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := h.api.WaitStreams(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitStreams with its context done: %v, want context.Canceled", err)
	}
	readSSE(t, r) // returns once the connection is closed
	if _, err := h.client.Cancel(t.Context(), ex.ID); err != nil {
		t.Fatal(err)
	}
}

// TestSSEClientGoneGivesItsPlaceBack: a client that closes its SSE
// stream frees its place at once, not at the next heartbeat's failed
// write.
func TestSSEClientGoneGivesItsPlaceBack(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setupWith(t, func(cfg *api.Config) {
		cfg.MaxStreams = 1
		cfg.HeartbeatInterval = time.Hour // no write finds the client gone
	}, 1, twoSteps("gated", g))
	ex := h.submit("gated", nil)
	recv(t, g.started)
	url := h.url + "/executions/" + ex.ID + "/progress/sse"

	first := getSSE(t, url, "")
	evs := bufio.NewReader(first.Body)
	if line, err := evs.ReadString('\n'); err != nil || !strings.HasPrefix(line, "id: ") {
		t.Fatalf("first line of the stream: %q, %v", line, err)
	}
	checkRefused(t, "a second stream past the node's limit", openSSE(t, url, ""))
	first.Body.Close()

	deadline := time.Now().Add(5 * time.Second)
	for {
		a := openSSE(t, url, "")
		if a.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stream after the only one closed: %d %s", a.status, a.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(t, g.release, nil)
}
