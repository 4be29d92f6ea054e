package api

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestSSEWriteDropsAClientThatDoesNotRead: on a hijacked connection, a
// write that the client does not take within the write timeout fails,
// which ends the stream.
func TestSSEWriteDropsAClientThatDoesNotRead(t *testing.T) {
	t.Parallel()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := new(net.Dialer).DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	// Small buffers fill at once; the client never reads.
	_ = client.(*net.TCPConn).SetReadBuffer(4 << 10)
	_ = server.(*net.TCPConn).SetWriteBuffer(4 << 10)

	o := &sseWriter{started: true, conn: server, timeout: 100 * time.Millisecond}
	chunk := bytes.Repeat([]byte("data: x\n\n"), 8<<10)
	start := time.Now()
	for {
		err := o.write(chunk)
		if err == nil {
			if time.Since(start) > 10*time.Second {
				t.Fatal("writes to a client that reads nothing still succeed after 10 s")
			}
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write to a client that reads nothing: %v, want the write deadline exceeded", err)
		}
		return
	}
}
