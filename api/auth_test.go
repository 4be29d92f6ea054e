package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

func TestAPIKeyIsRequired(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setupWithKey(t, "s3cret", 1, twoSteps("gated", g))
	ctx := context.Background()
	anon := client.New(h.url, nil)
	wrong := anon.WithAPIKey("guess")

	if _, err := anon.Submit(ctx, "gated", nil); code(err) != conveyor.EUNAUTHORIZED {
		t.Fatalf("submit without a key: %v, want unauthorized", err)
	}
	if _, err := wrong.List(ctx, conveyor.ListFilter{}); code(err) != conveyor.EUNAUTHORIZED {
		t.Fatalf("list with a wrong key: %v, want unauthorized", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz without a key: %d, want 200", resp.StatusCode)
	}

	ex := h.submit("gated", nil) // the harness client has the key
	recv(t, g.started)
	if _, err := anon.Watch(ctx, ex.ID); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("stream without a key or token: %v, want a 401 handshake", err)
	}
	if _, err := anon.StreamToken(ctx, ex.ID); code(err) != conveyor.EUNAUTHORIZED {
		t.Fatalf("token without a key: %v", err)
	}
	token, err := h.client.StreamToken(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}

	// A browser opens the stream with the token in the URL.
	other := h.submit("gated", nil)
	if _, err := anon.WatchWithToken(ctx, other.ID, token); err == nil {
		t.Fatal("a token opened another execution's stream")
	}
	if _, err := h.client.Cancel(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	s, err := anon.WatchWithToken(ctx, ex.ID, token)
	if err != nil {
		t.Fatalf("stream with its token: %v", err)
	}
	defer s.Close()
	if ev := nextEvent(t, s); ev.Type != conveyor.EventStatus || ev.Status != conveyor.StatusRunning {
		t.Fatalf("first message %+v", ev)
	}
	send(t, g.release, nil)
	nextOfType(t, s, conveyor.EventCompleted)
}

// TestSSEStreamOpensWithItsToken: a browser's EventSource cannot send the
// key either, so the Server-Sent Events stream takes the same tokens as the
// WebSocket (the dashboard uses them).
func TestSSEStreamOpensWithItsToken(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setupWithKey(t, "s3cret", 1, twoSteps("gated", g))
	ctx := context.Background()
	ex := h.submit("gated", nil)
	if id := recv(t, g.started); id != ex.ID {
		t.Fatalf("started %s, want %s", id, ex.ID)
	}
	other := h.submit("gated", nil) // pending behind ex
	token, err := h.client.StreamToken(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	sse := func(id string) string { return h.url + "/executions/" + id + "/progress/sse" }
	for _, url := range []string{sse(ex.ID), sse(ex.ID) + "?token=garbage", sse(other.ID) + "?token=" + token} {
		resp := getSSE(t, url, "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", url, resp.StatusCode)
		}
	}
	if _, err := h.client.Cancel(ctx, other.ID); err != nil {
		t.Fatal(err)
	}

	resp := getSSE(t, sse(ex.ID)+"?token="+token, "")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE with its token: %d, want 200", resp.StatusCode)
	}
	send(t, g.release, nil)
	evs := readSSE(t, resp.Body)
	if len(evs) < 2 || evs[0].event != "status" || evs[len(evs)-1].event != "completed" {
		t.Fatalf("events %+v, want status first and completed last", evs)
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	h := setupWithKey(t, "0123456789abcdef", 1)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+"/executions", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", scheme+" 0123456789abcdef")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("scheme %q: %d, want 200", scheme, resp.StatusCode)
		}
	}
}
