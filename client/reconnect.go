package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// How a stream reconnects after a dropped connection. The first try is
// at once; each further one waits twice as long as the one before, up
// to redialMaxWait. A stream gives up after redialAttempts tries in a
// row without a message (about 9 s of waiting), so a server that is gone
// for good ends the stream instead of holding the caller forever.
const (
	redialAttempts  = 10
	redialFirstWait = 50 * time.Millisecond
	redialMaxWait   = 2 * time.Second
)

// streamReadLimit bounds one stream message.
const streamReadLimit = 1 << 20

// dialFunc opens one WebSocket connection. refused reports an answer that
// trying again will not change: a 4xx handshake (a bad filter, a missing
// key or token).
type dialFunc func(ctx context.Context) (conn *websocket.Conn, refused bool, err error)

// dialStream returns the dialFunc of the WebSocket at path (from the
// base URL, e.g. "/executions/ID/progress/ws") with query q.
func (c *Client) dialStream(path string, q url.Values) dialFunc {
	u := "ws" + strings.TrimPrefix(c.baseURL+path, "http")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return func(ctx context.Context) (*websocket.Conn, bool, error) {
		header := http.Header{}
		c.authorize(header)
		conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: header}) //nolint:bodyclose // Dial closes the body itself: "You never need to close resp.Body yourself."
		if err != nil {
			if resp != nil && resp.StatusCode >= 300 && resp.Body != nil {
				// The answer's body (Dial keeps its first KiB) carries the
				// API's error, and with it the code callers test.
				refused := resp.StatusCode >= 400 && resp.StatusCode < 500
				return nil, refused, fmt.Errorf("open stream: %w: %w", err, decodeError(resp))
			}
			return nil, false, fmt.Errorf("open stream: %w", err)
		}
		conn.SetReadLimit(streamReadLimit)
		return conn, false, nil
	}
}

// dropped reports whether err, from reading a stream, means the
// connection was lost rather than ended: it broke without a close frame
// from the server, and not because ctx ended.
func dropped(ctx context.Context, err error) bool {
	return ctx.Err() == nil && websocket.CloseStatus(err) == -1
}

// redialer reopens a stream whose connection dropped, with backoff. It
// counts the tries since the stream last received a message, so a server
// that accepts and at once drops every connection is not hammered.
type redialer struct {
	failures int   // tries since the last message
	cause    error // why the last try or connection failed
}

// received notes a message: the connection works, the next drop starts
// the backoff afresh.
func (r *redialer) received() { r.failures = 0 }

// redial opens a new connection with dial after one was lost for cause.
// It returns the error of a refused try or of ctx at once, and an error
// wrapping the last failure after redialAttempts failures in a row.
func (r *redialer) redial(ctx context.Context, cause error, dial dialFunc) (*websocket.Conn, error) {
	r.cause = cause
	for {
		if r.failures >= redialAttempts {
			return nil, fmt.Errorf("stream lost, %d reconnects failed: %w", r.failures, r.cause)
		}
		if wait := backoff(r.failures); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		r.failures++
		conn, refused, err := dial(ctx)
		switch {
		case err == nil:
			return conn, nil
		case refused:
			return nil, err
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		r.cause = err
	}
}

// backoff is the wait before the try after failures failed ones.
func backoff(failures int) time.Duration {
	if failures == 0 {
		return 0
	}
	wait := redialFirstWait
	for range failures - 1 {
		if wait >= redialMaxWait {
			break
		}
		wait *= 2
	}
	return min(wait, redialMaxWait)
}

// notEOF keeps a failure from passing for the end of a stream: callers
// test errors.Is(err, io.EOF) for that, and a connection that broke
// often says EOF deep in its error. Such an error keeps its text only.
func notEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New(err.Error())
	}
	return err
}

// errClosed is what Next returns on a stream closed by Close.
var errClosed = errors.New("stream closed")

// streamConn is the connection of a stream that reopens itself after a
// drop. Next's goroutine reads and reopens it; Close may come from any
// goroutine, so the connection is swapped under mu.
type streamConn struct {
	client   *Client
	path     string
	redialer redialer // Next's goroutine only

	// Next's goroutine only: the buffer of read, and what watch watches.
	reading atomic.Int64 // the watch of the read under way, 0 if none; read by watch's callbacks
	buf     bytes.Buffer
	watched struct {
		n    int64 // numbers the watches
		done <-chan struct{}
		conn *websocket.Conn
		stop func() bool
	}

	mu     sync.Mutex
	conn   *websocket.Conn
	closed bool
	cancel context.CancelFunc // of a reopen under way
}

// openStream opens the stream at path with query q.
func (c *Client) openStream(ctx context.Context, path string, q url.Values) (*streamConn, error) {
	conn, _, err := c.dialStream(path, q)(ctx)
	if err != nil {
		return nil, err
	}
	return &streamConn{client: c, path: path, conn: conn}, nil
}

// next returns the next message. After a dropped connection it reopens
// the stream with the query resume returns (where to pick up) and reads
// on. It returns io.EOF after a normal close, and any other close or
// failure as an error.
func (sc *streamConn) next(ctx context.Context, resume func() url.Values) ([]byte, error) {
	for {
		sc.mu.Lock()
		conn, closed := sc.conn, sc.closed
		sc.mu.Unlock()
		if closed {
			return nil, errClosed
		}
		b, err := sc.read(ctx, conn)
		if err == nil {
			sc.redialer.received()
			return b, nil
		}
		switch {
		case sc.isClosed():
			return nil, errClosed
		case ctx.Err() != nil:
			return nil, ctx.Err() // it closed conn (watch)
		case websocket.CloseStatus(err) == websocket.StatusNormalClosure:
			return nil, io.EOF
		case !dropped(ctx, err):
			return nil, notEOF(err)
		}
		if err := sc.reopen(ctx, err, resume()); err != nil {
			return nil, notEOF(err)
		}
	}
}

// read reads conn's next message into sc's buffer, valid until the next
// read. conn's own reads with a context register a cancellation
// callback each, and io.ReadAll allocates each message afresh: at ten
// messages a second on each of a thousand streams, that was a fifth of
// what a process watching them allocated. So conn is read without a
// context, and watch closes it when ctx ends.
func (sc *streamConn) read(ctx context.Context, conn *websocket.Conn) ([]byte, error) {
	sc.reading.Store(sc.watch(ctx, conn))
	defer sc.reading.Store(0)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, r, err := conn.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	if sc.buf.Cap() > keptBuffer {
		sc.buf = bytes.Buffer{} // let a rare big message go
	}
	sc.buf.Reset()
	if _, err := sc.buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return sc.buf.Bytes(), nil
}

// keptBuffer is the most a stream keeps of its read buffer between
// messages.
const keptBuffer = 64 << 10

// watch has conn closed when ctx ends during a read with it, registered
// once for each context and connection that come in a row: callers often
// pass the same ctx to every Next. It returns the watch's number, which
// read sets in reading while it reads. A ctx that ends between reads, or
// during a read with another, leaves conn open (it was one Next's, not
// the stream's); should it end just as a read returns, the next read
// finds conn closed and the stream reopens.
func (sc *streamConn) watch(ctx context.Context, conn *websocket.Conn) int64 {
	done := ctx.Done()
	if done == sc.watched.done && conn == sc.watched.conn {
		return sc.watched.n
	}
	if sc.watched.stop != nil {
		sc.watched.stop()
	}
	sc.watched.n++
	n := sc.watched.n
	sc.watched.done, sc.watched.conn, sc.watched.stop = done, conn, nil
	if done != nil {
		sc.watched.stop = context.AfterFunc(ctx, func() {
			if sc.reading.Load() == n {
				conn.CloseNow()
			}
		})
	}
	return n
}

// reopen replaces a dropped connection with a new one opened with query
// q; Close cuts it short.
func (sc *streamConn) reopen(ctx context.Context, cause error, q url.Values) error {
	sc.mu.Lock()
	if sc.closed {
		sc.mu.Unlock()
		return errClosed
	}
	sc.conn.CloseNow()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc.cancel = cancel
	sc.mu.Unlock()

	conn, err := sc.redialer.redial(ctx, cause, sc.client.dialStream(sc.path, q))
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.cancel = nil
	switch {
	case sc.closed:
		if conn != nil {
			conn.CloseNow()
		}
		return errClosed
	case err != nil:
		return err
	}
	sc.conn = conn
	return nil
}

func (sc *streamConn) isClosed() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.closed
}

// close closes the connection and stops a reopen under way.
func (sc *streamConn) close() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.closed = true
	if sc.cancel != nil {
		sc.cancel()
	}
	return sc.conn.CloseNow()
}
