package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
)

// logGate is a step that logs "kept 1" and "kept 2", then a line for
// each string the test sends, until the test releases it.
type logGate struct {
	lines   chan string
	release chan error
}

func newLogGate() *logGate {
	return &logGate{lines: make(chan string), release: make(chan error)}
}

func (g *logGate) run(ctx context.Context, x *conveyor.Exec) error {
	x.Log("kept 1")
	x.Log("kept 2")
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l := <-g.lines:
			x.Log(l)
		case err := <-g.release:
			return err
		}
	}
}

// runLogging starts a node (configured by configure, if not nil) with
// the logging pipeline, submits an execution and waits until its two
// first lines are stored.
func runLogging(t *testing.T, configure func(*api.Config)) (*harness, *logGate, *conveyor.Execution) {
	t.Helper()
	g := newLogGate()
	h := setupWith(t, configure, 1, &conveyor.Pipeline{Name: "logger", Steps: []conveyor.Step{{Name: "talk", Kind: "go", Run: g.run}}})
	ex := h.submit("logger", nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		lines, err := h.client.Logs(t.Context(), ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines stored, want the 2 kept ones", len(lines))
		}
	}
	return h, g, ex
}

// streamMessage is the data of a stream message: a log message or an
// event.
type streamMessage struct {
	Type        string `json:"type"`
	ExecutionID string `json:"execution_id"`
	Seq         int64  `json:"seq"`
	Number      int64  `json:"number"`
	Attempt     int    `json:"attempt"`
	Step        string `json:"step"`
	Stream      string `json:"stream"`
	Line        string `json:"line"`
	Timestamp   string `json:"timestamp"`
}

// sseMessage is one Server-Sent Event: id ("" without an id: line),
// event and data.
type sseMessage struct {
	id, event string
	data      streamMessage
}

// logStreamReader reads a Server-Sent Events stream one message at a time.
type logStreamReader struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

// openSSE GETs the stream at path, with Last-Event-ID unless it is "",
// failing unless it answers 200. The body is closed when the test ends.
func (h *harness) openSSE(t *testing.T, path, lastEventID string) *logStreamReader {
	t.Helper()
	resp := getSSE(t, h.url+path, lastEventID)
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &logStreamReader{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next returns the next message, skipping heartbeats; io.EOF when the
// stream ended.
func (r *logStreamReader) next() (sseMessage, error) {
	r.t.Helper()
	var m sseMessage
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if m.event != "" {
				return m, nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			m.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			m.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m.data); err != nil {
				r.t.Fatalf("data line %q: %v", line, err)
			}
		default:
			r.t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if err := r.sc.Err(); err != nil {
		return m, err
	}
	return m, io.EOF
}

// must returns the next message, failing at the end of the stream.
func (r *logStreamReader) must() sseMessage {
	r.t.Helper()
	m, err := r.next()
	if err != nil {
		r.t.Fatalf("stream ended early: %v", err)
	}
	return m
}

// wantLog fails unless m is the log message of line, with its number as
// its id when withID.
func wantLog(t *testing.T, m sseMessage, ex *conveyor.Execution, line string, withID bool) {
	t.Helper()
	d := m.data
	if m.event != "log" || d.Type != "log" || d.Line != line || d.ExecutionID != ex.ID || d.Number <= 0 ||
		d.Attempt != 1 || d.Step != "talk" || d.Stream != "log" || d.Timestamp == "" {
		t.Fatalf("message %+v, want the log message of %q", m, line)
	}
	if wantID := strconv.FormatInt(d.Number, 10); withID && m.id != wantID || !withID && m.id != "" {
		t.Fatalf("log message %q has id %q (number %d), want %v", line, m.id, d.Number, map[bool]string{true: wantID, false: "none"}[withID])
	}
}

// wantEnd fails unless m is the completed event without an id and the
// stream then ends.
func (r *logStreamReader) wantEnd(m sseMessage, withID bool) {
	r.t.Helper()
	if m.event != "completed" || m.data.Type != "completed" || (m.id == "") == withID {
		r.t.Fatalf("message %+v, want the completed event (id: %v)", m, withID)
	}
	if m, err := r.next(); !errors.Is(err, io.EOF) {
		r.t.Fatalf("after the final event: %+v, %v; want the end", m, err)
	}
}

// TestFollowLogs: ?follow=true sends the kept lines, then each new line as
// the step logs it, then the final event, and ends; Last-Event-ID and
// ?after= resume after a line.
func TestFollowLogs(t *testing.T) {
	t.Parallel()
	h, g, ex := runLogging(t, nil)
	path := "/executions/" + ex.ID + "/logs?follow=true"
	r := h.openSSE(t, path, "")
	wantLog(t, r.must(), ex, "kept 1", true)
	kept2 := r.must()
	wantLog(t, kept2, ex, "kept 2", true)

	// A line logged now reaches the follower while the step runs on.
	send(t, g.lines, "live 3")
	live3 := r.must()
	wantLog(t, live3, ex, "live 3", true)
	if live3.data.Number <= kept2.data.Number {
		t.Fatalf("numbers %d then %d do not rise", kept2.data.Number, live3.data.Number)
	}
	// The line logged just before the end still comes, before the end.
	send(t, g.lines, "live 4")
	send(t, g.release, nil)
	wantLog(t, r.must(), ex, "live 4", true)
	r.wantEnd(r.must(), false)

	// Resuming after kept 2 gets the later lines only, also once the
	// execution is over; the header wins over ?after=.
	for _, resume := range []struct{ path, lastEventID string }{
		{path, kept2.id},
		{path + "&after=" + kept2.id, ""},
		{path + "&after=0", kept2.id},
	} {
		r := h.openSSE(t, resume.path, resume.lastEventID)
		wantLog(t, r.must(), ex, "live 3", true)
		wantLog(t, r.must(), ex, "live 4", true)
		r.wantEnd(r.must(), false)
	}
}

// TestProgressStreamsWithLogs: ?logs=true mixes log messages (with their
// number, and on SSE without an id:) into the SSE and WebSocket progress
// streams: the kept lines after the status message, then new ones, the
// last ones before the final event. ?logs_after skips lines.
func TestProgressStreamsWithLogs(t *testing.T) {
	t.Parallel()
	h, g, ex := runLogging(t, nil)
	sse := h.openSSE(t, "/executions/"+ex.ID+"/progress/sse?logs=true", "")
	if m := sse.must(); m.event != "status" || m.id == "" {
		t.Fatalf("first message %+v, want status with an id", m)
	}
	wantLog(t, sse.must(), ex, "kept 1", false)
	kept2 := sse.must()
	wantLog(t, kept2, ex, "kept 2", false)

	ws := dialWS(t, h.url+"/executions/"+ex.ID+"/progress/ws?logs=true&logs_after="+strconv.FormatInt(kept2.data.Number-1, 10))
	if m := ws.must(); m.Type != "status" {
		t.Fatalf("first WebSocket message %+v, want status", m)
	}
	if m := ws.must(); m.Type != "log" || m.Line != "kept 2" || m.Number != kept2.data.Number {
		t.Fatalf("WebSocket message %+v, want kept 2 only (logs_after skips kept 1)", m)
	}
	// Without logs=true, no log message.
	plain := h.openSSE(t, "/executions/"+ex.ID+"/progress/sse", "")
	if m := plain.must(); m.event != "status" {
		t.Fatalf("first message %+v, want status", m)
	}

	send(t, g.lines, "live 3")
	wantLog(t, sse.must(), ex, "live 3", false)
	if m := ws.must(); m.Type != "log" || m.Line != "live 3" {
		t.Fatalf("WebSocket message %+v, want live 3", m)
	}
	send(t, g.lines, "live 4")
	send(t, g.release, nil)
	wantLog(t, sse.must(), ex, "live 4", false)
	sse.wantEnd(nextNonProgress(sse), true)
	if m := ws.mustSkipProgress(); m.Type != "log" || m.Line != "live 4" {
		t.Fatalf("WebSocket message %+v, want live 4", m)
	}
	if m := ws.mustSkipProgress(); m.Type != "completed" {
		t.Fatalf("WebSocket message %+v, want completed", m)
	}
	if m := nextNonProgress(plain); m.event != "completed" {
		t.Fatalf("plain stream: %+v, want completed and no log message", m)
	}
}

// nextNonProgress returns the next message that is not progress.
func nextNonProgress(r *logStreamReader) sseMessage {
	r.t.Helper()
	for {
		if m := r.must(); m.event != "progress" {
			return m
		}
	}
}

// wsReader reads a WebSocket stream's messages.
type wsReader struct {
	t *testing.T
	c *websocket.Conn
}

func dialWS(t *testing.T, url string) *wsReader {
	t.Helper()
	c, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(url, "http"), nil) //nolint:bodyclose // Dial closes the body itself
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsReader{t, c}
}

func (r *wsReader) must() streamMessage {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 10*time.Second)
	defer cancel()
	var m streamMessage
	if err := wsjson.Read(ctx, r.c, &m); err != nil {
		r.t.Fatalf("WebSocket: %v", err)
	}
	return m
}

func (r *wsReader) mustSkipProgress() streamMessage {
	r.t.Helper()
	for {
		if m := r.must(); m.Type != "progress" {
			return m
		}
	}
}

// TestFollowLogsOfFinishedExecution: a follower of an execution that
// already ended gets its kept lines and the final event.
func TestFollowLogsOfFinishedExecution(t *testing.T) {
	t.Parallel()
	h, g, ex := runLogging(t, nil)
	send(t, g.release, nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)
	r := h.openSSE(t, "/executions/"+ex.ID+"/logs?follow=true", "")
	wantLog(t, r.must(), ex, "kept 1", true)
	wantLog(t, r.must(), ex, "kept 2", true)
	r.wantEnd(r.must(), false)
}

// TestFollowLogsBadInput: malformed parameters are 400 and an unknown
// execution 404, before any stream starts.
func TestFollowLogsBadInput(t *testing.T) {
	t.Parallel()
	h, g, ex := runLogging(t, nil)
	defer send(t, g.release, nil)
	p := "/executions/" + ex.ID
	h.wantBadRequest(p+"/logs?follow=maybe", `follow must be true or false, not "maybe"`)
	h.wantBadRequest(p+"/logs?follow=true&after=-1", "after must be a non-negative integer line number")
	h.wantBadRequest(p+"/logs?follow=true&after=x", "after must be a non-negative integer line number")
	h.wantBadRequest(p+"/progress/sse?logs=1", `logs must be true or false, not "1"`)
	h.wantBadRequest(p+"/progress/ws?logs=yes", `logs must be true or false, not "yes"`)
	h.wantBadRequest(p+"/progress/sse?logs_after=3", "logs_after needs logs=true")
	h.wantBadRequest(p+"/progress/sse?logs=true&logs_after=-3", "logs_after must be a non-negative integer line number")
	var body struct{ Error conveyor.Error }
	h.getJSON("/executions/nope/logs?follow=true", http.StatusNotFound, &body)
	if body.Error.Code != conveyor.ENOTFOUND {
		t.Errorf("follow of an unknown execution: %+v, want not_found", body.Error)
	}
	// follow=false is the page.
	var page conveyor.LogPage
	h.getJSON(p+"/logs?follow=false", http.StatusOK, &page)
	if len(page.Lines) != 2 || page.Lines[1].Number != page.Last {
		t.Errorf("page %+v, want the 2 kept lines, numbered", page)
	}
}

// TestFollowLogsWithStreamToken: on a server with an API key, a stream
// token of the execution opens its log stream (as the dashboard does),
// but not its page of lines, which needs the key.
func TestFollowLogsWithStreamToken(t *testing.T) {
	t.Parallel()
	const key = "0123456789abcdef-key"
	h, g, ex := runLogging(t, func(cfg *api.Config) { cfg.APIKey = key })
	token, err := h.client.StreamToken(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := fmt.Sprintf("/executions/%s/logs?follow=true&token=%s", ex.ID, token)
	r := h.openSSE(t, p, "")
	wantLog(t, r.must(), ex, "kept 1", true)
	send(t, g.release, nil)
	wantLog(t, r.must(), ex, "kept 2", true)
	r.wantEnd(r.must(), false)
	for _, path := range []string{
		fmt.Sprintf("/executions/%s/logs?token=%s", ex.ID, token),
		fmt.Sprintf("/executions/%s/logs?follow=false&token=%s", ex.ID, token),
	} {
		resp := getSSE(t, h.url+path, "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", path, resp.StatusCode)
		}
	}
}
