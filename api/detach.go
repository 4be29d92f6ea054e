package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
)

// Memory per stream. An idle stream costs what its goroutines' stacks and
// its buffers hold, so a stream whose connection can be taken over
// (hijacked) is followed apart from the request that opened it:
//
//   - The handler opens the stream (reads the store, sends the opening
//     messages) on net/http's goroutine for the connection, whose stack
//     grows to do so, then hands the rest to a new goroutine (detach) and
//     returns. net/http's goroutine ends, and with it its stack (16 KiB
//     or more) and the request, the response and their buffers; the new
//     goroutine starts with a small stack and an idle stream keeps it
//     small (see follower.run).
//   - Hijacking drops net/http's 4 KiB read and write buffers. WebSocket
//     gets small ones of its own (smallBuffers); SSE needs none (each
//     message is one write).
//   - The stream's context is not the request's: a context derived from
//     it keeps the request's and the connection's contexts alive.
//
// A detached stream outlives its handler, so http.Server.Shutdown neither
// waits for it nor closes its connection: CloseStreams ends it, and
// WaitStreams waits for that.

// Buffer sizes of a hijacked WebSocket connection. Clients send only
// control frames (at most 125 bytes and a 14-byte header, see
// serveWebSocket's read limit); a message longer than the write buffer
// takes two writes instead of one.
const (
	wsReadBufferSize  = 256
	wsWriteBufferSize = 512
)

// detachedStream is a stream that runs on a goroutine of its own.
type detachedStream struct {
	closeNow func() // closes its connection at once
}

// detach runs follow, the rest of a stream whose connection is hijacked,
// on a new goroutine tracked for WaitStreams, then end with its error.
// closeNow closes the stream's connection. A panic in follow is logged,
// not fatal, as net/http does for handlers.
func (s *Server) detach(closeNow func(), follow func() error, end func(error)) {
	d := &detachedStream{closeNow: closeNow}
	s.detachedMu.Lock()
	s.detached[d] = struct{}{}
	s.detachedMu.Unlock()
	go s.runDetached(d, follow, end)
}

// errPanicked ends a stream whose follow panicked.
var errPanicked = errors.New("stream panicked")

// runDetached is a detached stream's goroutine. Its frame is small, as
// follow's is (see follower.run): it lies under an idle stream's.
func (s *Server) runDetached(d *detachedStream, follow func() error, end func(error)) {
	err := errPanicked
	defer s.endDetached(d, &err, end)
	err = follow()
}

func (s *Server) endDetached(d *detachedStream, err *error, end func(error)) {
	if v := recover(); v != nil {
		s.logger.Error("stream panicked", "panic", v, "stack", string(debug.Stack()))
	}
	end(*err)
	s.detachedMu.Lock()
	delete(s.detached, d)
	close(s.detachedGone)
	s.detachedGone = make(chan struct{})
	s.detachedMu.Unlock()
}

// WaitStreams waits until every stream that runs apart from its request
// has ended: after CloseStreams, they send what they hold and end. If
// ctx ends first, it closes their connections, waits for them to end and
// returns ctx's error. A node calls it after CloseStreams, alongside
// http.Server.Shutdown, which does not wait for them (their connections
// are hijacked).
func (s *Server) WaitStreams(ctx context.Context) error {
	var err error
	for {
		s.detachedMu.Lock()
		n, gone := len(s.detached), s.detachedGone
		if n > 0 && err != nil {
			for d := range s.detached {
				d.closeNow()
			}
		}
		s.detachedMu.Unlock()
		if n == 0 {
			return err
		}
		if err != nil {
			<-gone // a closed connection ends its stream soon
			continue
		}
		select {
		case <-gone:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
}

// smallBuffers is a ResponseWriter for websocket.Accept whose Hijack
// gives the connection small buffers instead of net/http's 4 KiB ones,
// which would otherwise stay with the connection as long as it is open.
type smallBuffers struct {
	http.ResponseWriter
}

// Hijack hijacks the connection. Bytes net/http already read past the
// request (a client that did not wait for the handshake's answer) stay
// first in the new read buffer.
func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var r io.Reader = conn
	n := brw.Reader.Buffered()
	if n > 0 {
		b, _ := brw.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	br := bufio.NewReaderSize(r, max(wsReadBufferSize, n))
	if n > 0 {
		// Buffer them now: websocket.Accept keeps what is buffered and
		// reads the connection itself for the rest.
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, wsWriteBufferSize)), nil
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// waitClosed cancels when conn's peer closes it or sends anything, or
// conn is closed: a stream's client sends nothing. It runs on a goroutine
// of its own, which ends with the connection.
func waitClosed(conn net.Conn, cancel context.CancelFunc) {
	var b [1]byte
	_, _ = conn.Read(b[:])
	cancel()
}
