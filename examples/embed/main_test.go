package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestAgent runs the embedded node on a free port, submits an agent
// execution and watches it over WebSocket to the end. The agent takes a
// step only when the test has seen the progress of the previous one, so
// every report arrives as its own message, in order.
func TestAgent(t *testing.T) {
	proceed := make(chan struct{})
	testOver := make(chan struct{})
	pause := func(ctx context.Context) error {
		select {
		case <-proceed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-testOver:
			return errors.New("the test is over")
		}
	}
	c := setup(t, pause, testOver)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ex, err := c.Submit(ctx, "agent", map[string]any{"question": "why?", "searches": 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Watch(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var seen []conveyor.Progress
	var final conveyor.Event
	for final.Type == "" {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		switch {
		case ev.Type == conveyor.EventProgress, ev.Type == conveyor.EventStatus && ev.Progress != nil:
			seen = append(seen, *ev.Progress)
			select { // let the agent take its next step
			case proceed <- struct{}{}:
			case <-ctx.Done():
				t.Fatalf("the agent did not wait for its next step after %+v", ev.Progress)
			}
		case ev.Type.Final():
			final = ev
		}
	}
	if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after the final message: %v, want a normal close", err)
	}

	// Searching: total unknown. Then reading and answering: 7 steps in all.
	type row struct {
		step    int
		total   any // nil: unknown
		name    string
		message string
	}
	want := []row{
		{1, nil, "search", "search round 1: 2 sources so far"},
		{2, nil, "search", "search round 2: 4 sources so far"},
		{3, 7, "read", "reading source-1"},
		{4, 7, "read", "reading source-2"},
		{5, 7, "read", "reading source-3"},
		{6, 7, "read", "reading source-4"},
		{7, 7, "answer", "writing the answer"},
	}
	if len(seen) != len(want) {
		t.Fatalf("saw %d progress messages, want %d: %+v", len(seen), len(want), seen)
	}
	lastPct := 0.0
	for i, p := range seen {
		got := row{p.CurrentStep, nil, p.CurrentStepName, p.Message}
		if p.TotalSteps != nil {
			got.total = *p.TotalSteps
		}
		if got != want[i] {
			t.Errorf("progress %d = %+v, want %+v", i+1, got, want[i])
		}
		switch {
		case p.TotalSteps == nil && p.Percentage != nil:
			t.Errorf("progress %d: percentage %v with an unknown total, want null", i+1, *p.Percentage)
		case p.TotalSteps != nil && (p.Percentage == nil || *p.Percentage < lastPct || *p.Percentage >= 100):
			t.Errorf("progress %d: percentage %v after %v, want rising and below 100", i+1, p.Percentage, lastPct)
		case p.Percentage != nil:
			lastPct = *p.Percentage
		}
	}

	if final.Type != conveyor.EventCompleted {
		t.Fatalf("final message %s %+v, want completed", final.Type, final.Error)
	}
	if p := final.Progress; p == nil || p.Percentage == nil || *p.Percentage != 100 || p.CurrentStep != 7 || *p.TotalSteps != 7 {
		t.Fatalf("completed progress %+v, want step 7 of 7 at 100%%", p)
	}
	wantResult := agentResult{
		Question: "why?",
		Sources:  []string{"source-1", "source-2", "source-3", "source-4"},
		Tokens:   2000,
		Answer:   `an answer to "why?" from 4 sources`,
	}
	stored, err := c.Get(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != conveyor.StatusCompleted {
		t.Fatalf("stored status %s, want completed", stored.Status)
	}
	for what, raw := range map[string]json.RawMessage{"streamed": final.Result, "stored": stored.Result} {
		var got agentResult
		if err := json.Unmarshal(raw, &got); err != nil || !reflect.DeepEqual(got, wantResult) {
			t.Errorf("%s result %s (%v), want %+v", what, raw, err, wantResult)
		}
	}
}

// setup runs main's node on a free loopback port with a fresh data folder
// until the test ends, and returns a client for it.
func setup(t *testing.T, pause func(context.Context) error, testOver chan struct{}) *client.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := open(ctx, options{
		Addr:    "127.0.0.1:0",
		DataDir: t.TempDir(),
		Pause:   pause,
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()

	httpClient := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		close(testOver) // a stuck agent returns, so shutdown does not wait for it
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
		httpClient.CloseIdleConnections()
	})
	return client.New("http://"+srv.Addr(), httpClient)
}
