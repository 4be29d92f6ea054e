package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/conveyor-run/conveyor"
)

// manyMessage is a message of a stream of many executions: an execution's
// event or a batch message.
type manyMessage struct {
	id string
	conveyor.Event
	BatchID string          `json:"batch_id"`
	Counts  conveyor.Counts `json:"counts"`
	Total   int             `json:"total"`
}

// sseReader reads Server-Sent Events one at a time.
type sseReader struct {
	t  *testing.T
	sc *bufio.Scanner
}

// next returns the next message, ok false when the response ended.
func (r *sseReader) next() (m manyMessage, ok bool) {
	r.t.Helper()
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "" && m.Type != "":
			return m, true
		case strings.HasPrefix(line, "id: "):
			m.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m); err != nil {
				r.t.Fatalf("data line %q: %v", line, err)
			}
		}
	}
	return m, false
}

func openMany(t *testing.T, url, lastEventID string) (*http.Response, *sseReader) {
	t.Helper()
	resp := getSSE(t, url, lastEventID)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return resp, &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}
}

// gatedBatch starts a node whose "gated" pipeline waits on a gate, and
// submits a batch of n of it.
func gatedBatch(t *testing.T, n int) (*harness, *gate, *conveyor.Batch) {
	t.Helper()
	g := newGate()
	h := setup(t, n, &conveyor.Pipeline{Name: "gated", Steps: []conveyor.Step{{Name: "wait", Run: g.run}}},
		&conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	items := make([]conveyor.NewExecution, n)
	for i := range items {
		items[i] = conveyor.NewExecution{Pipeline: "gated"}
	}
	b, err := h.client.SubmitBatch(t.Context(), items, conveyor.Tags{"team": "a"})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		recv(t, g.started)
	}
	return h, g, b
}

func TestBatchStreamFollowsEveryMemberToTheEnd(t *testing.T) {
	t.Parallel()
	h, g, b := gatedBatch(t, 3)
	resp, r := openMany(t, h.url+"/executions/progress/sse?batch="+b.ID, "")
	defer resp.Body.Close()

	statuses := map[string]bool{}
	for len(statuses) < 3 {
		m, ok := r.next()
		if !ok || m.Type != conveyor.EventStatus {
			t.Fatalf("opening message %+v (ok %v), want a status message per member", m, ok)
		}
		statuses[m.ExecutionID] = true
	}
	if m, _ := r.next(); m.Type != "batch" || m.BatchID != b.ID || m.Counts.Running != 3 || m.Total != 3 {
		t.Fatalf("after the statuses: %+v, want the batch message", m)
	}
	for range 3 {
		send(t, g.release, nil)
	}
	completed := map[string]bool{}
	var last manyMessage
	for {
		m, ok := r.next()
		if !ok {
			break
		}
		if m.id == "" {
			t.Fatalf("message without an id: %+v", m)
		}
		if m.Type == conveyor.EventCompleted {
			completed[m.ExecutionID] = true
		}
		last = m
	}
	if len(completed) != 3 {
		t.Errorf("completed messages of %d members, want 3", len(completed))
	}
	if last.Type != "batch" || last.Status != conveyor.StatusCompleted || last.Counts.Completed != 3 {
		t.Errorf("last message %+v, want the final batch message", last)
	}
}

func TestBatchStreamResumeLosesNoFinalMessage(t *testing.T) {
	t.Parallel()
	h, g, b := gatedBatch(t, 2)
	resp, r := openMany(t, h.url+"/executions/progress/sse?batch="+b.ID, "")
	var lastID string
	for range 3 { // two statuses and the batch message
		m, ok := r.next()
		if !ok {
			t.Fatal("stream ended early")
		}
		lastID = m.id
	}
	resp.Body.Close() // the client goes away
	send(t, g.release, nil)
	members, err := h.client.List(t.Context(), conveyor.ListFilter{Batch: b.ID, Status: conveyor.StatusCompleted})
	for err == nil && len(members.Executions) == 0 {
		time.Sleep(5 * time.Millisecond)
		members, err = h.client.List(t.Context(), conveyor.ListFilter{Batch: b.ID, Status: conveyor.StatusCompleted})
	}
	if err != nil {
		t.Fatal(err)
	}
	done := members.Executions[0].ID

	resp, r = openMany(t, h.url+"/executions/progress/sse?batch="+b.ID, lastID)
	defer resp.Body.Close()
	gotFinal := false
	for !gotFinal {
		m, ok := r.next()
		if !ok {
			t.Fatal("resumed stream ended before the final message of the member that ended while away")
		}
		gotFinal = m.ExecutionID == done && m.Type == conveyor.EventCompleted
	}
	send(t, g.release, nil)
	for {
		m, ok := r.next()
		if !ok {
			t.Fatal("stream ended before the final batch message")
		}
		if m.Type == "batch" && m.Status == conveyor.StatusCompleted {
			break
		}
	}
}

func TestTagStreamFollowsNewExecutions(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, 2, &conveyor.Pipeline{Name: "gated", Steps: []conveyor.Step{{Name: "wait", Run: g.run}}})
	ctx := t.Context()
	resp, r := openMany(t, h.url+"/executions/progress/sse?tag=team:a", "")
	defer resp.Body.Close()

	other, err := h.client.SubmitWithTags(ctx, "gated", nil, conveyor.Tags{"team": "b"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := h.client.SubmitWithTags(ctx, "gated", nil, conveyor.Tags{"team": "a"})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, g.started)
	recv(t, g.started)
	send(t, g.release, nil)
	send(t, g.release, nil)
	for {
		m, ok := r.next()
		if !ok {
			t.Fatal("a stream without batch= ended")
		}
		if m.ExecutionID == other.ID {
			t.Fatalf("message of an execution the filter does not select: %+v", m)
		}
		if m.ExecutionID == mine.ID && m.Type == conveyor.EventCompleted {
			break
		}
	}
}

func TestBatchWebSocketClosesNormallyAfterTheFinalBatchMessage(t *testing.T) {
	t.Parallel()
	h, g, b := gatedBatch(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/executions/progress/ws?batch="+b.ID, nil) //nolint:bodyclose // Dial closes the body itself: "You never need to close resp.Body yourself."
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	send(t, g.release, nil)
	var last manyMessage
	for {
		var m manyMessage
		err := wsjson.Read(ctx, c, &m)
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			break
		}
		if err != nil {
			t.Fatalf("read: %v (last %+v)", err, last)
		}
		last = m
	}
	if last.Type != "batch" || last.Status != conveyor.StatusCompleted {
		t.Errorf("last message %+v, want the final batch message", last)
	}
}

func TestManyStreamBadInput(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	for _, tc := range []struct {
		query  string
		status int
	}{
		{"", 400},
		{"?status=done", 400},
		{"?tag=nocolon", 400},
		{"?batch=a&batch=b", 400},
		{"?batch=nope", 404},
		{"?pipeline=x&after=abc", 400},
	} {
		resp := getSSE(t, h.url+"/executions/progress/sse"+tc.query, "")
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("SSE %q: %d, want %d", tc.query, resp.StatusCode, tc.status)
		}
	}
}

func TestBatchStreamToken(t *testing.T) {
	t.Parallel()
	h := setupWithKey(t, "0123456789abcdef-key", 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	b, err := h.client.SubmitBatch(t.Context(), []conveyor.NewExecution{{Pipeline: "quick"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, body string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer 0123456789abcdef-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, _ := post("/batches/"+b.ID+"/token", `{"ttl_seconds": 0}`); code != 422 {
		t.Errorf("ttl_seconds 0: %d, want 422", code)
	}
	if code, _ := post("/batches/"+b.ID+"/token", `{"ttl_seconds": 86401}`); code != 422 {
		t.Errorf("ttl_seconds 86401: %d, want 422", code)
	}
	if code, _ := post("/batches/nope/token", ``); code != 404 {
		t.Errorf("token of an unknown batch: %d, want 404", code)
	}
	code, out := post("/batches/"+b.ID+"/token", `{"ttl_seconds": 60}`)
	token, _ := out["token"].(string)
	if code != 201 || token == "" {
		t.Fatalf("batch token: %d %v", code, out)
	}
	resp := getSSE(t, h.url+"/executions/progress/sse?batch="+b.ID+"&token="+token, "")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("batch stream with its token: %d", resp.StatusCode)
	}
	for _, q := range []string{"?pipeline=quick&token=" + token, "?batch=other&token=" + token} {
		resp := getSSE(t, h.url+"/executions/progress/sse"+q, "")
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401 (the token opens only its batch's streams)", q, resp.StatusCode)
		}
	}
}

func TestTagStreamResumeSendsWhatEndedWhileAway(t *testing.T) {
	t.Parallel()
	h := setup(t, 2, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	resp, r := openMany(t, h.url+"/executions/progress/sse?tag=team:a", "")
	// Submitted once the stream is open, so its final message comes live.
	first, err := h.client.SubmitWithTags(t.Context(), "quick", nil, conveyor.Tags{"team": "a"})
	if err != nil {
		t.Fatal(err)
	}
	var lastID string
	for {
		m, ok := r.next()
		if !ok {
			t.Fatal("stream ended")
		}
		if n, err := strconv.ParseInt(m.id, 10, 64); err != nil || n < time.Now().Add(-time.Hour).UnixMilli() {
			t.Fatalf("id %q, want the time in Unix milliseconds", m.id)
		}
		lastID = m.id
		if m.ExecutionID == first.ID && m.Type.Final() {
			break
		}
	}
	resp.Body.Close() // away
	away, err := h.client.SubmitWithTags(t.Context(), "quick", nil, conveyor.Tags{"team": "a"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitStatus(away.ID, conveyor.StatusCompleted)

	resp, r = openMany(t, h.url+"/executions/progress/sse?tag=team:a", lastID)
	defer resp.Body.Close()
	for {
		m, ok := r.next()
		if !ok {
			t.Fatal("resumed stream ended")
		}
		if m.ExecutionID == away.ID && m.Type == conveyor.EventCompleted {
			return
		}
	}
}

// TestManyStreamOpensWithTheNewestProgress: progress reaches the store
// only now and then, so a stream of many opened between two samples
// carries the newest progress published, as a stream of one does.
func TestManyStreamOpensWithTheNewestProgress(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)
	send(t, g.updates, conveyor.Update{Done: 1, Total: 2, Message: "half"})
	// Published once the one-execution stream has it.
	ws := h.watch(ex.ID)
	waitProgress := func() bool {
		ev := nextEvent(t, ws)
		return ev.Progress != nil && ev.Progress.Message == "half"
	}
	for !waitProgress() { //nolint:revive // reads until the progress arrives
	}

	resp, r := openMany(t, h.url+"/executions/progress/sse?pipeline=gated", "")
	defer resp.Body.Close()
	m, ok := r.next()
	if !ok || m.Type != conveyor.EventStatus || m.ExecutionID != ex.ID || m.Progress == nil || m.Progress.Message != "half" {
		t.Fatalf("first message %+v (progress %+v), want the status of %s with the progress just published", m.Event, m.Progress, ex.ID)
	}
	send(t, g.release, nil)
}
