package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/conveyor-run/conveyor"
)

// maxLogMessage bounds one message of a log stream: a line of 64 KiB,
// escaped, with what goes with it.
const maxLogMessage = 1 << 20

// FollowLogs calls fn with the log lines of an execution after line
// number after (0: from the oldest kept), then with each new line as the
// server stores it, until the execution has ended and its last lines
// were given. It returns the execution's final event. A dropped
// connection is reopened after the last line given (see Stream for the
// backoff); an error of fn ends it and is returned.
func (c *Client) FollowLogs(ctx context.Context, id string, after int64, fn func(conveyor.LogLine) error) (conveyor.Event, error) {
	var r redialer
	for {
		final, ended, err := c.followLogsOnce(ctx, id, &after, &r, fn)
		switch {
		case ended:
			return final, err
		case ctx.Err() != nil:
			return conveyor.Event{}, ctx.Err()
		}
		// The stream ended without the final event: the connection
		// broke, or the node shut down. Resume after the last line.
		if r.failures >= redialAttempts {
			return conveyor.Event{}, fmt.Errorf("log stream lost, %d reconnects failed: %w", r.failures, err)
		}
		if wait := backoff(r.failures); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return conveyor.Event{}, ctx.Err()
			case <-t.C:
			}
		}
		r.failures++
	}
}

// followLogsOnce reads one connection of a log stream. ended says that
// trying again will not help: the final event came (then final is it),
// the server refused the stream, or fn failed.
func (c *Client) followLogsOnce(ctx context.Context, id string, after *int64, r *redialer, fn func(conveyor.LogLine) error) (final conveyor.Event, ended bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/executions/"+url.PathEscape(id)+"/logs?follow=true", nil)
	if err != nil {
		return final, true, err
	}
	c.authorize(req.Header)
	req.Header.Set("Accept", "text/event-stream")
	if *after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*after, 10))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return final, false, fmt.Errorf("open log stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := decodeError(resp)
		return final, resp.StatusCode < 500, err // a 4xx will not change; a 5xx may
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, maxLogMessage)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if event == "" {
				continue
			}
			switch {
			case event == "log":
				var l conveyor.LogLine
				if err := json.Unmarshal(data, &l); err != nil {
					return final, true, fmt.Errorf("decode log message: %w", err)
				}
				r.received()
				l.ExecutionID = id
				if err := fn(l); err != nil {
					return final, true, err
				}
				*after = max(*after, l.Number)
			case conveyor.EventType(event).Final():
				if err := json.Unmarshal(data, &final); err != nil {
					return final, true, fmt.Errorf("decode final event: %w", err)
				}
				return final, true, nil
			}
			event, data = "", data[:0]
		case line[0] == ':': // a heartbeat
		default:
			name, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(name) {
			case "event":
				event = string(value)
			case "data":
				data = append(data, value...)
			}
		}
	}
	err = sc.Err()
	if err == nil {
		err = errors.New("log stream ended before the execution did")
	}
	return final, false, err
}
