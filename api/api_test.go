package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/engine"
	"github.com/conveyor-run/conveyor/hub"
	"github.com/conveyor-run/conveyor/live"
	"github.com/conveyor-run/conveyor/server"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

// harness is a real node on a loopback port: SQLite in a temp folder, the
// engine, the hub and the API, with pipelines made of Go steps the test
// controls.
type harness struct {
	t      testing.TB
	url    string
	client *client.Client
	store  conveyor.Store
	engine *engine.Engine
	api    *api.Server
}

func setup(t testing.TB, concurrency int, pipelines ...*conveyor.Pipeline) *harness {
	t.Helper()
	return setupWithKey(t, "", concurrency, pipelines...)
}

// setupWithKey is setup for a server that requires apiKey; the harness's
// client sends it.
func setupWithKey(t testing.TB, apiKey string, concurrency int, pipelines ...*conveyor.Pipeline) *harness {
	t.Helper()
	return setupWith(t, func(cfg *api.Config) { cfg.APIKey = apiKey }, concurrency, pipelines...)
}

// setupWith is setup with an API configured by configure; the harness's
// client sends the API key it sets.
func setupWith(t testing.TB, configure func(*api.Config), concurrency int, pipelines ...*conveyor.Pipeline) *harness {
	t.Helper()
	store, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return setupStore(t, store, configure, concurrency, pipelines...)
}

// setupStore is setupWith on a store the caller opened; the harness
// closes it. A nil configure leaves the API's defaults.
func setupStore(t testing.TB, store conveyor.Store, configure func(*api.Config), concurrency int, pipelines ...*conveyor.Pipeline) *harness {
	t.Helper()
	ctx := context.Background()
	byName := map[string]*conveyor.Pipeline{}
	for _, p := range pipelines {
		byName[p.Name] = p
	}
	h, wakeups := hub.New(), hub.NewWakeups()
	eng, err := engine.New(engine.Config{
		Store: store, Pipelines: byName, PublishFunc: h.Publish, LogsStoredFunc: wakeups.Wake, Concurrency: concurrency,
		ProgressStoreInterval: server.ProgressStoreInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Store: store, Runner: eng, Executions: live.New(store, h), LogWakeups: wakeups}
	if _, isTest := t.(*testing.T); isTest {
		// Tests ping and heartbeat often so every stream exercises both;
		// benchmarks keep the defaults, as pings would skew what they
		// measure.
		cfg.PingInterval, cfg.HeartbeatInterval = 50*time.Millisecond, 50*time.Millisecond
	}
	if configure != nil {
		configure(&cfg)
	}
	a := api.New(cfg)
	var handler http.Handler = a
	if tt, isTest := t.(*testing.T); isTest {
		// Benchmarks measure the server alone.
		handler = checkContract(tt, a)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		eng.Stop(stopCtx)
		srv.CloseClientConnections()
		srv.Close()
		store.Close()
	})
	return &harness{t: t, url: srv.URL, client: client.New(srv.URL, srv.Client()).WithAPIKey(cfg.APIKey), store: store, engine: eng, api: a}
}

func (h *harness) submit(pipeline string, input any) *conveyor.Execution {
	h.t.Helper()
	ex, err := h.client.Submit(context.Background(), pipeline, input)
	if err != nil {
		h.t.Fatalf("submit %s: %v", pipeline, err)
	}
	return ex
}

// watch opens the WebSocket stream of execution id, closed when the test
// ends.
func (h *harness) watch(id string) *client.Stream {
	h.t.Helper()
	s, err := h.client.Watch(context.Background(), id)
	if err != nil {
		h.t.Fatalf("watch %s: %v", id, err)
	}
	h.t.Cleanup(func() { s.Close() })
	return s
}

// waitStatus polls until the execution has the status, failing after a
// deadline.
func (h *harness) waitStatus(id string, want conveyor.Status) *conveyor.Execution {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ex, err := h.client.Get(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if ex.Status == want {
			return ex
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("execution %s is %s, want %s", id, ex.Status, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gate is a step that blocks until the test opens it, reporting whatever
// updates the test sends meanwhile.
type gate struct {
	started chan string // receives the execution id when the step starts
	updates chan conveyor.Update
	release chan error // the step returns what is sent here
}

func newGate() *gate {
	return &gate{started: make(chan string, 100), updates: make(chan conveyor.Update), release: make(chan error)}
}

func (g *gate) run(ctx context.Context, x *conveyor.Exec) error {
	g.started <- x.ID
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u := <-g.updates:
			x.Progress(u)
		case err := <-g.release:
			return err
		}
	}
}

func noop(context.Context, *conveyor.Exec) error { return nil }

// runGated starts a node with one gated pipeline, submits an execution
// of it and waits until its gate step runs.
func runGated(t testing.TB) (*harness, *gate, *conveyor.Execution) {
	t.Helper()
	g := newGate()
	h := setup(t, 1, twoSteps("gated", g))
	ex := h.submit("gated", nil)
	recv(t, g.started)
	return h, g, ex
}

// twoSteps is a pipeline whose second step is the gate.
func twoSteps(name string, g *gate) *conveyor.Pipeline {
	return &conveyor.Pipeline{Name: name, Steps: []conveyor.Step{
		{Name: "prepare", Kind: "go", Run: noop},
		{Name: "work", Kind: "go", Run: g.run},
	}}
}

func recv[T any](t testing.TB, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func send[T any](t testing.TB, c chan<- T, v T) {
	t.Helper()
	select {
	case c <- v:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out sending")
	}
}

func code(err error) string { return conveyor.ErrorCode(err) }

// nextEvent reads the next stream event, failing the test on error.
func nextEvent(t testing.TB, s *client.Stream) conveyor.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return ev
}

// nextOfType skips progress events until one of the given type arrives.
func nextOfType(t testing.TB, s *client.Stream, typ conveyor.EventType) conveyor.Event {
	t.Helper()
	for {
		ev := nextEvent(t, s)
		if ev.Type == typ {
			return ev
		}
		if ev.Type != conveyor.EventProgress {
			t.Fatalf("got %s event, want %s", ev.Type, typ)
		}
	}
}

func expectEOF(t testing.TB, s *client.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after the final message: %v, want a normal close", err)
	}
}

// getJSON GETs path and decodes the answer into v, failing unless the
// status is want.
func (h *harness) getJSON(path string, want int, v any) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		h.t.Fatalf("GET %s: %d, want %d", path, resp.StatusCode, want)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
}

// wantBadRequest GETs path and fails unless the answer is 400 bad_request
// with an error message containing message.
func (h *harness) wantBadRequest(path, message string) {
	h.t.Helper()
	var body struct {
		Error conveyor.Error `json:"error"`
	}
	h.getJSON(path, http.StatusBadRequest, &body)
	if body.Error.Code != conveyor.EBADREQUEST || !strings.Contains(body.Error.Message, message) {
		h.t.Errorf("GET %s: %+v, want bad_request saying %q", path, body.Error, message)
	}
}
