package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
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

// TestWebSocketMessageLongerThanItsBuffer: a message longer than a
// WebSocket stream's write buffer arrives whole.
func TestWebSocketMessageLongerThanItsBuffer(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789", 10_000)
	h := setup(t, 1, &conveyor.Pipeline{Name: "big", Steps: []conveyor.Step{{Name: "s", Run: func(_ context.Context, x *conveyor.Exec) error {
		return x.SetResult(big)
	}}}})
	ex := h.submit("big", nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)
	s := h.watch(ex.ID)
	nextOfType(t, s, conveyor.EventStatus)
	final := nextOfType(t, s, conveyor.EventCompleted)
	if string(final.Result) != `"`+big+`"` {
		t.Fatalf("completed message's result has %d bytes, want the %d of the result", len(final.Result), len(big)+2)
	}
	expectEOF(t, s)
}

// TestWebSocketFrameSentWithTheHandshake: a client that sends a frame
// right behind its handshake, before the answer, has it read: the bytes
// net/http read past the request move to the stream's own buffer.
func TestWebSocketFrameSentWithTheHandshake(t *testing.T) {
	t.Parallel()
	h, _, ex := runGated(t)
	c, err := new(net.Dialer).DialContext(t.Context(), "tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	handshake := "GET /executions/" + ex.ID + "/progress/ws HTTP/1.1\r\nHost: conveyor\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	// A masked ping (opcode 9) with the payload "hi", mask 1 2 3 4.
	ping := []byte{0x89, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}
	if _, err := c.Write(append([]byte(handshake), ping...)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("handshake answer: %v", err)
	}
	resp.Body.Close() // a 101 has none: the connection is the stream's
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answer: %s", resp.Status)
	}
	for {
		opcode, payload := readFrame(t, r)
		if opcode == 0xA { // pong
			if string(payload) != "hi" {
				t.Fatalf("pong with %q, want the ping's %q", payload, "hi")
			}
			break
		}
	}
	if _, err := h.client.Cancel(t.Context(), ex.ID); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads one unmasked WebSocket frame (a server's).
func readFrame(t *testing.T, r *bufio.Reader) (opcode byte, payload []byte) {
	t.Helper()
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		t.Fatalf("read a frame: %v", err)
	}
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126, 127:
		ext := make([]byte, map[uint64]int{126: 2, 127: 8}[n])
		if _, err := io.ReadFull(r, ext); err != nil {
			t.Fatalf("read a frame's length: %v", err)
		}
		n = 0
		for _, b := range ext {
			n = n<<8 | uint64(b)
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatalf("read a frame's payload: %v", err)
	}
	return head[0] & 0x0f, payload
}
