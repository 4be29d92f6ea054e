package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"strconv"

	"github.com/conveyor-run/conveyor"
)

// Stream is a live WebSocket stream of one execution's events.
//
// A stream reopens itself when its connection drops (it breaks without a
// close from the server): it resumes after the seq of the last event Next
// returned, so the caller sees one sequence, seq strictly rising, with no
// event twice. Progress the execution made while the stream was away
// comes as the stored events (the server keeps progress at intervals, not
// every update); status changes are never missed. A close by the server
// (the final event, an error, 1001 when it shuts down) is not a drop and
// ends the stream as before.
type Stream struct {
	conn  *streamConn
	query url.Values // of every connection, but for after and logs_after
	after int64      // seq of the last event returned; noResume before the first
	done  bool

	logFunc   func(conveyor.LogLine) // WatchOpts.LogFunc
	logsAfter int64                  // number of the last line given to logFunc
}

// WatchOpts are the options of WatchWith.
type WatchOpts struct {
	// LogFunc, when set, is given the execution's log lines, mixed into
	// the stream (?logs=true): the kept ones after the status message,
	// then each as the server stores it, the last ones before the final
	// event. It is called from Next, which returns only events. After a
	// reconnect the stream goes on after the last line given.
	LogFunc func(conveyor.LogLine)
}

// logMessageType is the type of a log message in a stream.
const logMessageType = "log"

// noResume is a stream's after before it has an event: a new connection
// then opens with a status message, as the first did.
const noResume = -1

// Watch opens the WebSocket stream of an execution. The first event is
// always of type status. An unknown execution is an error of code
// conveyor.ENOTFOUND, from Watch or the first Next.
func (c *Client) Watch(ctx context.Context, id string) (*Stream, error) {
	return c.watch(ctx, id, url.Values{}, noResume)
}

// WatchAfter resumes a stream: instead of a status message it starts with
// the stored events after seq, then goes on live.
func (c *Client) WatchAfter(ctx context.Context, id string, seq int64) (*Stream, error) {
	return c.watch(ctx, id, url.Values{}, seq)
}

// WatchWithToken opens a stream with a token from StreamToken instead of
// the API key, as a browser does.
func (c *Client) WatchWithToken(ctx context.Context, id, token string) (*Stream, error) {
	return c.watch(ctx, id, url.Values{"token": {token}}, noResume)
}

// WatchWith is Watch with options; nil opts is Watch.
func (c *Client) WatchWith(ctx context.Context, id string, opts *WatchOpts) (*Stream, error) {
	q := url.Values{}
	if opts != nil && opts.LogFunc != nil {
		q.Set("logs", "true")
		return c.watchWithLogs(ctx, id, q, noResume, opts.LogFunc)
	}
	return c.watch(ctx, id, q, noResume)
}

func (c *Client) watch(ctx context.Context, id string, q url.Values, after int64) (*Stream, error) {
	return c.watchWithLogs(ctx, id, q, after, nil)
}

func (c *Client) watchWithLogs(ctx context.Context, id string, q url.Values, after int64, logFunc func(conveyor.LogLine)) (*Stream, error) {
	s := &Stream{query: q, after: after, logFunc: logFunc}
	conn, err := c.openStream(ctx, "/executions/"+url.PathEscape(id)+"/progress/ws", s.resumeQuery())
	if err != nil {
		return nil, err
	}
	s.conn = conn
	return s, nil
}

// resumeQuery is the query of a (re)connection: after the last event.
func (s *Stream) resumeQuery() url.Values {
	if s.after == noResume && s.logsAfter == 0 {
		return s.query
	}
	q := maps.Clone(s.query)
	if s.after != noResume {
		q.Set("after", strconv.FormatInt(s.after, 10))
	}
	if s.logsAfter > 0 {
		q.Set("logs_after", strconv.FormatInt(s.logsAfter, 10))
	}
	return q
}

// Next returns the next event. After the final event (completed, failed,
// cancelled) it returns io.EOF. An error message from the server is
// returned as its *conveyor.Error. A dropped connection is reopened
// (see Stream); when that fails (the server refuses with a 4xx, or about
// 9 s of tries found no server) Next returns the error.
func (s *Stream) Next(ctx context.Context) (conveyor.Event, error) {
	for !s.done {
		b, err := s.conn.next(ctx, s.resumeQuery)
		if err != nil {
			s.done = true
			return conveyor.Event{}, err
		}
		var ev conveyor.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			s.done = true
			return conveyor.Event{}, fmt.Errorf("decode stream message: %w", err)
		}
		switch {
		case ev.Type == logMessageType && s.logFunc != nil:
			var l conveyor.LogLine
			if err := json.Unmarshal(b, &l); err != nil {
				s.done = true
				return conveyor.Event{}, fmt.Errorf("decode log message: %w", err)
			}
			if l.Number > s.logsAfter {
				l.ExecutionID = ev.ExecutionID
				s.logsAfter = l.Number
				s.logFunc(l)
			}
			continue
		case ev.Type == conveyor.EventError:
			s.done = true
			if ev.Error == nil {
				return ev, errors.New("stream error without details")
			}
			return ev, ev.Error
		case ev.Seq > 0 && ev.Seq <= s.after:
			continue // sent again after a reconnect
		case ev.Type.Final():
			s.done = true
		}
		s.after = max(s.after, ev.Seq)
		return ev, nil
	}
	return conveyor.Event{}, io.EOF
}

// Close closes the stream.
func (s *Stream) Close() error {
	return s.conn.close()
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
