package api_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event string
	data      conveyor.Event
}

// readSSE reads events until the response ends.
func readSSE(t *testing.T, body io.Reader) []sseEvent {
	t.Helper()
	var (
		out []sseEvent
		cur sseEvent
	)
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatalf("data line %q: %v", line, err)
			}
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return out
}

// getSSE opens the Server-Sent Events stream at url, resuming after
// lastEventID unless it is empty. The caller closes the response body.
func getSSE(t *testing.T, url, lastEventID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestSSELiveThenResumeWithLastEventID(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)

	resp := getSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", "")
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.StatusCode != 200 {
		t.Fatalf("SSE answer %d %q", resp.StatusCode, ct)
	}
	send(t, g.updates, conveyor.Update{Done: 1, Total: 2, Message: "half"})
	send(t, g.release, nil)
	live := readSSE(t, resp.Body)
	if len(live) < 2 || live[0].event != "status" || live[len(live)-1].event != "completed" {
		t.Fatalf("live SSE events %+v", live)
	}
	for i, ev := range live {
		if ev.id != strconv.FormatInt(ev.data.Seq, 10) || ev.event != string(ev.data.Type) {
			t.Fatalf("event %d: id %q event %q for %+v", i, ev.id, ev.event, ev.data)
		}
		if i > 0 && ev.data.Seq <= live[i-1].data.Seq {
			t.Fatalf("seq went from %d to %d", live[i-1].data.Seq, ev.data.Seq)
		}
	}

	// Reconnect after the started event: everything stored after it.
	resp = getSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", "1")
	defer resp.Body.Close()
	resumed := readSSE(t, resp.Body)
	if len(resumed) == 0 || resumed[0].data.Seq <= 1 || resumed[len(resumed)-1].event != "completed" {
		t.Fatalf("resumed SSE events %+v", resumed)
	}
	for _, ev := range resumed {
		if ev.event == "status" {
			t.Fatal("a resumed stream sent a status message")
		}
	}
}

func TestSSEErrors(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	resp := getSSE(t, h.url+"/executions/nope/progress/sse", "")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown execution: %d, want 404", resp.StatusCode)
	}
	resp = getSSE(t, h.url+"/executions/nope/progress/sse", "x")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed Last-Event-ID: %d, want 400", resp.StatusCode)
	}
}

func TestWebSocketResumeAfter(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "a", Run: noop}, {Name: "b", Run: noop}}})
	ex := h.submit("quick", nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)
	s, err := h.client.WatchAfter(t.Context(), ex.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The stored events after seq 1; progress shorter-lived than the
	// store's sampling interval is carried by the completed event alone.
	first := nextEvent(t, s)
	if first.Type == conveyor.EventStatus || first.Seq <= 1 {
		t.Fatalf("first resumed message %+v, want a stored event after seq 1", first)
	}
	if first.Type != conveyor.EventCompleted {
		nextOfType(t, s, conveyor.EventCompleted)
	}
	expectEOF(t, s)
}

func TestSSEHeartbeatWhileIdle(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)
	resp := getSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", "")
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == ": heartbeat" {
			break
		}
	}
	if sc.Err() != nil {
		t.Fatal(sc.Err())
	}
	send(t, g.release, nil)
	if evs := readSSE(t, resp.Body); len(evs) == 0 || evs[len(evs)-1].event != "completed" {
		t.Fatalf("after the heartbeat: %+v", evs)
	}
}

// TestResumeAtTheFinalEventEnds: a client that already has the final event
// (a browser EventSource reconnecting after it) gets an ended stream, not
// one held open forever.
func TestResumeAtTheFinalEventEnds(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "a", Run: noop}}})
	ex := h.submit("quick", nil)
	done := h.waitStatus(ex.ID, conveyor.StatusCompleted)

	resp := getSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", strconv.FormatInt(done.LastSeq, 10))
	defer resp.Body.Close()
	if evs := readSSE(t, resp.Body); len(evs) != 0 {
		t.Fatalf("SSE resumed at the final seq sent %+v", evs)
	}
	s, err := h.client.WatchAfter(t.Context(), ex.ID, done.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	expectEOF(t, s)
}
