package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conveyor-run/conveyor"
)

func TestSubmitAnswers202WithLocation(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "only", Run: noop}}})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+"/executions", strings.NewReader(`{"pipeline":"quick","input":{"a":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/executions/") {
		t.Fatalf("Location = %q", loc)
	}
	ex, err := h.client.Get(context.Background(), strings.TrimPrefix(loc, "/executions/"))
	if err != nil {
		t.Fatalf("the Location does not resolve: %v", err)
	}
	if string(ex.Input) != `{"a":1}` || ex.Pipeline != "quick" {
		t.Fatalf("stored execution %+v", ex)
	}
}

func TestCancelPendingRunningFinalUnknown(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, 1, twoSteps("gated", g))
	ctx := context.Background()
	running := h.submit("gated", nil)
	recv(t, g.started)
	pending := h.submit("gated", nil)

	ex, err := h.client.Cancel(ctx, pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != conveyor.StatusCancelled {
		t.Fatalf("a pending execution must be cancelled at once, got %s", ex.Status)
	}
	got := h.waitStatus(pending.ID, conveyor.StatusCancelled)
	if got.StartedAt != nil || got.Attempt != 0 {
		t.Fatalf("cancelled pending execution ran: %+v", got)
	}
	if _, err := h.client.Cancel(ctx, pending.ID); code(err) != conveyor.ECONFLICT {
		t.Fatalf("cancel of a cancelled execution: %v, want conflict", err)
	}
	if _, err := h.client.Cancel(ctx, "nope"); code(err) != conveyor.ENOTFOUND {
		t.Fatalf("cancel of an unknown execution: %v, want not_found", err)
	}
	if _, err := h.client.Cancel(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(running.ID, conveyor.StatusCancelled)

	// The stream of an execution cancelled while pending: status, cancelled.
	s, err := h.client.Watch(ctx, pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ev := nextEvent(t, s); ev.Type != conveyor.EventStatus || ev.Status != conveyor.StatusCancelled {
		t.Fatalf("first message %+v", ev)
	}
	nextOfType(t, s, conveyor.EventCancelled)
	expectEOF(t, s)
}

func TestStepAndExecutionTimeouts(t *testing.T) {
	t.Parallel()
	block := func(ctx context.Context, _ *conveyor.Exec) error { <-ctx.Done(); return ctx.Err() }
	h := setup(t, 2,
		&conveyor.Pipeline{Name: "step-timeout", Steps: []conveyor.Step{{Name: "stuck", Timeout: 50 * time.Millisecond, Run: block}}},
		&conveyor.Pipeline{Name: "exec-timeout", Timeout: 50 * time.Millisecond, Steps: []conveyor.Step{{Name: "a", Run: noop}, {Name: "stuck", Run: block}}},
	)
	for _, name := range []string{"step-timeout", "exec-timeout"} {
		ex := h.submit(name, nil)
		got := h.waitStatus(ex.ID, conveyor.StatusFailed)
		if got.Error == nil || got.Error.Code != conveyor.ETIMEOUT {
			t.Fatalf("%s: error %+v, want code timeout", name, got.Error)
		}
	}
}

func TestRetriesMakeNewAttempts(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	flaky := func(context.Context, *conveyor.Exec) error {
		if calls.Add(1) == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	}
	alwaysFails := func(_ context.Context, x *conveyor.Exec) error {
		return fmt.Errorf("attempt %d fails", x.Attempt)
	}
	h := setup(t, 1,
		&conveyor.Pipeline{Name: "flaky", Retries: 2, Steps: []conveyor.Step{{Name: "s", Run: flaky}}},
		&conveyor.Pipeline{Name: "broken", Retries: 1, Steps: []conveyor.Step{{Name: "s", Run: alwaysFails}}},
	)
	ex := h.submit("flaky", nil)
	got := h.waitStatus(ex.ID, conveyor.StatusCompleted)
	if got.Attempt != 2 {
		t.Fatalf("flaky completed on attempt %d, want 2", got.Attempt)
	}
	evs, err := h.client.Events(context.Background(), ex.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, ev := range evs {
		if i > 0 && ev.Seq <= evs[i-1].Seq {
			t.Fatalf("event %d has seq %d after %d", i, ev.Seq, evs[i-1].Seq)
		}
		if ev.Type != conveyor.EventProgress {
			types = append(types, string(ev.Type))
		}
	}
	if got := strings.Join(types, ","); got != "started,retrying,started,completed" {
		t.Fatalf("status events %s", got)
	}

	ex = h.submit("broken", nil)
	got = h.waitStatus(ex.ID, conveyor.StatusFailed)
	if got.Attempt != 2 || !strings.Contains(got.Error.Message, "attempt 2 fails") {
		t.Fatalf("broken ended as %+v attempt %d, want failed on attempt 2", got.Error, got.Attempt)
	}
}

func TestHandlerWithUnknownTotal(t *testing.T) {
	t.Parallel()
	g := newGate()
	agent := func(ctx context.Context, x *conveyor.Exec) error {
		x.Progress(conveyor.Update{Step: 1, StepName: "think", Message: "planning"})
		return g.run(ctx, x)
	}
	h := setup(t, 1, &conveyor.Pipeline{Name: "agent", Handler: agent})
	ex := h.submit("agent", nil)
	recv(t, g.started)
	s := h.watch(ex.ID)
	nextOfType(t, s, conveyor.EventStatus)
	send(t, g.updates, conveyor.Update{Step: 2, StepName: "search", Message: "looking"})
	ev := nextOfType(t, s, conveyor.EventProgress)
	if ev.Progress.TotalSteps != nil || ev.Progress.Percentage != nil || ev.Progress.CurrentStep != 2 || ev.Progress.CurrentStepName != "search" {
		t.Fatalf("unknown-total progress = %+v", ev.Progress)
	}
	send(t, g.updates, conveyor.Update{Steps: 4})
	ev = nextOfType(t, s, conveyor.EventProgress)
	if ev.Progress.TotalSteps == nil || *ev.Progress.TotalSteps != 4 || *ev.Progress.Percentage != 25 {
		t.Fatalf("progress after the total became known = %+v", ev.Progress)
	}
	send(t, g.release, nil)
	final := nextOfType(t, s, conveyor.EventCompleted)
	if *final.Progress.Percentage != 100 {
		t.Fatalf("completed percentage %v", *final.Progress.Percentage)
	}
}

func TestSlowSubscriberNeverSlowsTheExecution(t *testing.T) {
	t.Parallel()
	const updates = 20000
	chatty := func(_ context.Context, x *conveyor.Exec) error {
		for i := 1; i <= updates; i++ {
			x.Progress(conveyor.Update{Done: float64(i), Total: updates, Message: fmt.Sprint(i)})
		}
		return nil
	}
	g := newGate()
	h := setup(t, 1, &conveyor.Pipeline{Name: "chatty", Steps: []conveyor.Step{{Name: "wait", Run: g.run}, {Name: "talk", Run: chatty}}})
	ex := h.submit("chatty", nil)
	recv(t, g.started)
	s := h.watch(ex.ID)
	// The client reads nothing until the execution has completed.
	send(t, g.release, nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)

	var last conveyor.Event
	n := 0
	for {
		ev := nextEvent(t, s)
		if ev.Seq <= last.Seq && n > 0 {
			t.Fatalf("seq went from %d to %d", last.Seq, ev.Seq)
		}
		n++
		if ev.Type == conveyor.EventCompleted {
			break
		}
		last = ev
	}
	if last.Type != conveyor.EventProgress || last.Progress.Message != fmt.Sprint(updates) {
		t.Fatalf("last message before completed: %+v, want the latest progress", last)
	}
	if n > updates {
		t.Fatalf("received %d messages for %d updates: nothing was conflated", n, updates)
	}
	t.Logf("%d progress updates reached a slow reader as %d messages", updates, n)
}

func TestListNewestFirstWithCursor(t *testing.T) {
	t.Parallel()
	h := setup(t, 4, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "only", Run: noop}}})
	var ids []string
	for range 7 {
		ids = append(ids, h.submit("quick", nil).ID)
	}
	var seen []string
	f := conveyor.ListFilter{Limit: 3, Pipeline: "quick"}
	for {
		page, err := h.client.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range page.Executions {
			seen = append(seen, ex.ID)
		}
		if page.NextCursor == nil {
			break
		}
		f.Cursor = *page.NextCursor
	}
	if len(seen) != len(ids) {
		t.Fatalf("listed %d executions, want %d", len(seen), len(ids))
	}
	for i := range ids {
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("listing is not newest first: %v vs submitted %v", seen, ids)
		}
	}
}

func TestLogsKeepStepStreamAndOrder(t *testing.T) {
	t.Parallel()
	talk := func(_ context.Context, x *conveyor.Exec) error {
		x.LogTo("stdout", "out 1")
		x.LogTo("stderr", "err 1")
		x.Log("note")
		return nil
	}
	h := setup(t, 1, &conveyor.Pipeline{Name: "talk", Steps: []conveyor.Step{{Name: "speak", Run: talk}}})
	ex := h.submit("talk", nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)
	lines, err := h.client.Logs(context.Background(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Step+"/"+l.Stream+"/"+l.Line)
	}
	if s := strings.Join(got, ","); s != "speak/stdout/out 1,speak/stderr/err 1,speak/log/note" {
		t.Fatalf("logs = %s", s)
	}
}

func TestWebSocketRejectsForeignOrigin(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	for origin, want := range map[string]int{
		"http://evil.example": http.StatusForbidden,
		h.url:                 http.StatusSwitchingProtocols, // same origin
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+"/executions/x/progress/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("Origin %s: status %d, want %d", origin, resp.StatusCode, want)
		}
	}
}

// TestCloseStreamsSendsWhatIsQueuedThenGoesAway: on shutdown a stream
// sends the events it already holds, then closes with 1001 going away.
func TestCloseStreamsSendsWhatIsQueuedThenGoesAway(t *testing.T) {
	t.Parallel()
	h, _, ex := runGated(t)
	s := h.watch(ex.ID)
	nextOfType(t, s, conveyor.EventStatus)

	h.api.CloseStreams()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := s.Next(ctx)
		if err == nil {
			continue
		}
		if websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("stream ended with %v, want close 1001 going away", err)
		}
		break
	}
	if _, err := h.client.Cancel(ctx, ex.ID); err != nil {
		t.Fatal(err)
	}
}

func TestTagsRoundTripAndFilter(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	ctx := context.Background()
	acme, err := h.client.SubmitWithTags(ctx, "quick", nil, conveyor.Tags{"tenant": "acme", "kind": "resize"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.SubmitWithTags(ctx, "quick", nil, conveyor.Tags{"tenant": "other"}); err != nil {
		t.Fatal(err)
	}
	plain := h.submit("quick", nil)

	got, err := h.client.Get(ctx, acme.ID)
	if err != nil || got.Tags["tenant"] != "acme" || got.Tags["kind"] != "resize" || got.BatchID != nil {
		t.Fatalf("Get = tags %v, batch %v, %v", got.Tags, got.BatchID, err)
	}
	page, err := h.client.List(ctx, conveyor.ListFilter{Tags: []conveyor.Tag{{Key: "tenant", Value: "acme"}}})
	if err != nil || len(page.Executions) != 1 || page.Executions[0].ID != acme.ID {
		t.Fatalf("list by tag = %+v, %v; want only %s", page, err, acme.ID)
	}

	// Every execution's JSON has "tags" (an object) and "batch_id".
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/executions/"+plain.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["tags"]) != "{}" || string(raw["batch_id"]) != "null" {
		t.Errorf("untagged execution: tags %s, batch_id %s; want {} and null", raw["tags"], raw["batch_id"])
	}
}
