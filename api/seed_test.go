package api_test

// The nine scenarios of the original progress-API spec, against a real
// server and a real WebSocket client.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// getRaw returns the status code and body of a GET of url.
func getRaw(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err != nil {
			break
		}
	}
	return resp.StatusCode, body
}

func TestSeedProgressUnknownIs404(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	for _, path := range []string{"/executions/nope/progress", "/executions/nope", "/executions/0191b5a2-0000-7000-8000-000000000000/progress"} {
		status, body := getRaw(t, h.url+path)
		if status != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", path, status)
		}
		var e struct{ Error conveyor.Error }
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != conveyor.ENOTFOUND {
			t.Fatalf("GET %s body %s: want a not_found JSON error", path, body)
		}
	}
}

func TestSeedProgressPendingIs204(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, 1, twoSteps("gated", g))
	first := h.submit("gated", nil)
	recv(t, g.started)
	second := h.submit("gated", nil)

	status, body := getRaw(t, h.url+"/executions/"+second.ID+"/progress")
	if status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("pending progress: %d %q, want 204 and no body", status, body)
	}
	if ex := h.waitStatus(second.ID, conveyor.StatusPending); ex.StartedAt != nil {
		t.Fatalf("a second execution started with --concurrency 1")
	}
	send(t, g.release, nil)
	h.waitStatus(first.ID, conveyor.StatusCompleted)
	recv(t, g.started)
	send(t, g.release, nil)
	h.waitStatus(second.ID, conveyor.StatusCompleted)
}

func TestSeedProgressRunningIs200(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)
	send(t, g.updates, conveyor.Update{Done: 1, Total: 4, Message: "a quarter", Metrics: map[string]float64{"rows": 250}})

	var p *conveyor.Progress
	deadline := time.Now().Add(10 * time.Second)
	for p == nil || p.Message != "a quarter" {
		if time.Now().After(deadline) {
			t.Fatalf("progress never showed the update: %+v", p)
		}
		var err error
		if p, err = h.client.Progress(context.Background(), ex.ID); err != nil {
			t.Fatal(err)
		}
	}
	if p.CurrentStep != 2 || p.TotalSteps == nil || *p.TotalSteps != 2 || p.CurrentStepName != "work" {
		t.Fatalf("progress = %+v, want step 2 of 2 named work", p)
	}
	if p.Percentage == nil || *p.Percentage != 62.5 {
		t.Fatalf("percentage = %v, want 62.5 (one step done, a quarter of the second)", p.Percentage)
	}
	if p.Metrics["rows"] != 250 {
		t.Fatalf("metrics = %v", p.Metrics)
	}
	send(t, g.release, nil)
}

func TestSeedProgressCompletedIs100(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, 1, twoSteps("gated", g))
	ex := h.submit("gated", map[string]any{"n": 1})
	recv(t, g.started)
	send(t, g.release, nil)
	done := h.waitStatus(ex.ID, conveyor.StatusCompleted)
	if done.FinishedAt == nil || done.StartedAt == nil || done.Attempt != 1 || done.Error != nil {
		t.Fatalf("completed execution = %+v", done)
	}
	p, err := h.client.Progress(context.Background(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Percentage == nil || *p.Percentage != 100 || p.CurrentStep != 2 || *p.TotalSteps != 2 {
		t.Fatalf("completed progress = %+v, want 100%% at step 2 of 2", p)
	}
}

func TestSeedStreamUnknownExecution(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	s, err := h.client.Watch(context.Background(), "nope")
	if err != nil {
		t.Fatalf("the upgrade must be accepted: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if code(err) != conveyor.ENOTFOUND || ev.Type != conveyor.EventError || ev.ExecutionID != "nope" || ev.Time.IsZero() {
		t.Fatalf("first message %+v, err %v: want an error message with code not_found", ev, err)
	}
	expectEOF(t, s)
}

func TestSeedStreamAlreadyCompleted(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "only", Run: noop}}})
	ex := h.submit("quick", nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)

	s := h.watch(ex.ID)
	status := nextEvent(t, s)
	if status.Type != conveyor.EventStatus || status.Status != conveyor.StatusCompleted || status.ExecutionID != ex.ID {
		t.Fatalf("first message %+v, want status completed", status)
	}
	final := nextEvent(t, s)
	if final.Type != conveyor.EventCompleted || final.Seq <= status.Seq || *final.Progress.Percentage != 100 {
		t.Fatalf("second message %+v, want completed with a higher seq than %d", final, status.Seq)
	}
	expectEOF(t, s)
}

func TestSeedStreamLiveProgress(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)

	s := h.watch(ex.ID)
	status := nextEvent(t, s)
	if status.Type != conveyor.EventStatus || status.Status != conveyor.StatusRunning {
		t.Fatalf("first message %+v, want status running", status)
	}
	seq := status.Seq
	for i := 1; i <= 3; i++ {
		msg := "part " + string(rune('0'+i))
		send(t, g.updates, conveyor.Update{Done: float64(i), Total: 4, Message: msg})
		ev := nextEvent(t, s)
		if i == 1 && ev.Type == conveyor.EventProgress && ev.Progress != nil && ev.Progress.Message == "" {
			// The step's start, published after the status snapshot was
			// taken (the emitter runs on its own goroutine): not an update.
			seq = ev.Seq
			ev = nextEvent(t, s)
		}
		if ev.Type != conveyor.EventProgress || ev.Progress == nil || ev.Progress.Message != msg {
			t.Fatalf("update %d: got %+v", i, ev)
		}
		if ev.Seq <= seq || ev.ExecutionID != ex.ID || ev.Time.IsZero() {
			t.Fatalf("update %d: seq %d after %d, execution %q", i, ev.Seq, seq, ev.ExecutionID)
		}
		seq = ev.Seq
	}
	send(t, g.release, nil)
	final := nextOfType(t, s, conveyor.EventCompleted)
	if final.Seq <= seq {
		t.Fatalf("completed seq %d not above %d", final.Seq, seq)
	}
	expectEOF(t, s)
}

func TestSeedStreamCancellation(t *testing.T) {
	t.Parallel()
	h, _, ex := runGated(t)
	s := h.watch(ex.ID)
	nextOfType(t, s, conveyor.EventStatus)

	if _, err := h.client.Cancel(context.Background(), ex.ID); err != nil {
		t.Fatal(err)
	}
	nextOfType(t, s, conveyor.EventCancelled)
	expectEOF(t, s)
	if got := h.waitStatus(ex.ID, conveyor.StatusCancelled); got.FinishedAt == nil {
		t.Fatal("cancelled execution has no finished_at")
	}
}

func TestSeedStreamFailure(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)
	s := h.watch(ex.ID)
	nextOfType(t, s, conveyor.EventStatus)

	send(t, g.release, errors.New("disk full"))
	failed := nextOfType(t, s, conveyor.EventFailed)
	if failed.Error == nil || failed.Error.Code != conveyor.ESTEPFAILED || !strings.Contains(failed.Error.Message, "disk full") {
		t.Fatalf("failed message error = %+v", failed.Error)
	}
	expectEOF(t, s)
	if got := h.waitStatus(ex.ID, conveyor.StatusFailed); got.Error == nil || got.Error.Code != conveyor.ESTEPFAILED {
		t.Fatalf("stored error = %+v", got.Error)
	}
}
