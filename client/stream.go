package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/conveyor-run/conveyor"
)

// Stream is a live WebSocket stream of one execution's events.
type Stream struct {
	conn *websocket.Conn
	done bool
}

// Watch opens the WebSocket stream of an execution. The first event is
// always of type status. An unknown execution is an error of code
// conveyor.ENOTFOUND, from Watch or the first Next.
func (c *Client) Watch(ctx context.Context, id string) (*Stream, error) {
	return c.watch(ctx, id, url.Values{})
}

// WatchAfter resumes a stream: instead of a status message it starts with
// the stored events after seq, then goes on live.
func (c *Client) WatchAfter(ctx context.Context, id string, seq int64) (*Stream, error) {
	return c.watch(ctx, id, url.Values{"after": {strconv.FormatInt(seq, 10)}})
}

// WatchWithToken opens a stream with a token from StreamToken instead of
// the API key, as a browser does.
func (c *Client) WatchWithToken(ctx context.Context, id, token string) (*Stream, error) {
	return c.watch(ctx, id, url.Values{"token": {token}})
}

func (c *Client) watch(ctx context.Context, id string, q url.Values) (*Stream, error) {
	u := c.baseURL + "/executions/" + url.PathEscape(id) + "/progress/ws"
	u = "ws" + strings.TrimPrefix(u, "http")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	header := http.Header{}
	c.authorize(header)
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: header}) //nolint:bodyclose // Dial closes the body itself: "You never need to close resp.Body yourself."
	if err != nil && resp != nil && resp.StatusCode >= 300 {
		// A refusal of the handshake is an API error answer: keep its code.
		return nil, fmt.Errorf("open stream: %s: %w", resp.Status, decodeError(resp))
	}
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	return &Stream{conn: conn}, nil
}

// Next returns the next event. After the final event (completed, failed,
// cancelled) it returns io.EOF. An error message from the server is
// returned as its *conveyor.Error.
func (s *Stream) Next(ctx context.Context) (conveyor.Event, error) {
	if s.done {
		return conveyor.Event{}, io.EOF
	}
	var ev conveyor.Event
	if err := wsjson.Read(ctx, s.conn, &ev); err != nil {
		s.done = true
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			return conveyor.Event{}, io.EOF
		}
		return conveyor.Event{}, err
	}
	switch {
	case ev.Type == conveyor.EventError:
		s.done = true
		if ev.Error == nil {
			return ev, errors.New("stream error without details")
		}
		return ev, ev.Error
	case ev.Type.Final():
		s.done = true
	}
	return ev, nil
}

// Close closes the stream.
func (s *Stream) Close() error {
	return s.conn.CloseNow()
}

// Wait streams an execution until it ends and returns it as stored.
func (c *Client) Wait(ctx context.Context, id string) (*conveyor.Execution, error) {
	s, err := c.Watch(ctx, id)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	for {
		ev, err := s.Next(ctx)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if err != nil || ev.Type.Final() {
			return c.Get(ctx, id)
		}
	}
}
