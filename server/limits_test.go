package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor/server"
)

// syncBuffer is a log that the node writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// open starts a node on a free loopback port with cfg, serving until the
// test ends.
func open(t *testing.T, cfg server.Config) (*server.Server, *syncBuffer) {
	t.Helper()
	return openIn(t, t.TempDir(), cfg)
}

// openIn is open on the data folder dir.
func openIn(t *testing.T, dir string, cfg server.Config) (*server.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Addr, cfg.DataDir = "127.0.0.1:0", dir
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	ctx, stop := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return srv, logs
}

func TestStreamLimitFitsTheOpenFileLimit(t *testing.T) {
	t.Parallel()
	files, err := server.OpenFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	srv, logs := open(t, server.Config{})
	conns, streams := srv.Limits()
	wantConns := server.ConnectionBudget(files)
	wantStreams := min(server.DefaultMaxStreams, server.StreamBudget(wantConns))
	if conns != wantConns || streams != wantStreams || streams >= int(files) {
		t.Errorf("with %d open files: %d connections, %d streams; want %d, %d", files, conns, streams, wantConns, wantStreams)
	}
	if lowered := strings.Contains(logs.String(), "stream limit lowered"); lowered != (wantStreams < server.DefaultMaxStreams) {
		t.Errorf("logged that the stream limit was lowered: %v, want %v; log:\n%s", lowered, !lowered, logs)
	}

	srv, logs = open(t, server.Config{MaxConnections: 100, MaxStreams: 1000})
	if conns, streams := srv.Limits(); conns != 100 || streams != 88 {
		t.Errorf("100 connections: %d connections, %d streams; want 100, 88", conns, streams)
	}
	if !strings.Contains(logs.String(), "stream limit lowered") || !strings.Contains(logs.String(), "max_streams=88") {
		t.Errorf("no log line says the stream limit was lowered to 88:\n%s", logs)
	}
}

func TestBudgets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		files          uint64
		conns, streams int
	}{
		{20_000, 17_500, 15_313},
		{1024, 896, 784},
		{100, 36, 32},
		{10, 1, 1},
		{1 << 40, 1879048192, 1644167168},
	} {
		conns := server.ConnectionBudget(tc.files)
		if streams := server.StreamBudget(conns); conns != tc.conns || streams != tc.streams {
			t.Errorf("%d open files: %d connections, %d streams; want %d, %d", tc.files, conns, streams, tc.conns, tc.streams)
		}
	}
}

// rawGet sends one request on a new connection and reads the answer; it
// reports whether the server closed the connection after it.
func rawGet(t *testing.T, addr, req string) (status int, header http.Header, body string, closed bool) {
	t.Helper()
	c, err := new(net.Dialer).DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("answer to %q: the connection stayed open", req)
	}
	return resp.StatusCode, resp.Header, string(b), err != nil
}

func TestFullNodeAnswersHealthz(t *testing.T) {
	t.Parallel()
	srv, _ := open(t, server.Config{MaxConnections: 2})
	addr := srv.Addr()
	// Two idle connections take the node's two places.
	var held []net.Conn
	for range 2 {
		c, err := new(net.Dialer).DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}

	status, _, body, closed := rawGet(t, addr, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if status != http.StatusOK || !strings.Contains(body, `"ok"`) || !closed {
		t.Fatalf("healthz on a full node: %d %s, closed %v; want 200 ok and the connection closed", status, body, closed)
	}
	status, header, body, closed := rawGet(t, addr, "GET /executions HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if status != http.StatusTooManyRequests || header.Get("Retry-After") == "" || !strings.Contains(body, `"code":"rate_limited"`) || !closed {
		t.Fatalf("a request to a full node: %d, Retry-After %q, %s, closed %v; want 429 rate_limited with Retry-After, closed",
			status, header.Get("Retry-After"), body, closed)
	}
	status, _, _, closed = rawGet(t, addr, "POST /executions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	if status != http.StatusTooManyRequests || !closed {
		t.Fatalf("a submission whose body never comes, to a full node: %d, closed %v; want 429 at once, closed", status, closed)
	}

	// A place frees up when a connection closes.
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, body, _ := rawGet(t, addr, "GET /executions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		if status == http.StatusOK {
			break
		}
		if status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after a connection closed: %d %s, want 200", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
