package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

// node is a Conveyor node running in the test: SQLite in a temp folder,
// on a loopback port, with one pipeline, "gated", whose executions wait
// for the test.
type node struct {
	url  string
	gate *gate
	// ctl talks to the node directly, for what the test does beside the
	// stream under test.
	ctl *client.Client
}

// setup starts a node running up to concurrency executions at once and
// stops it when the test ends. cfg, if not nil, adjusts its Config.
func setup(t *testing.T, concurrency int, cfg func(*server.Config)) *node {
	t.Helper()
	g := &gate{started: make(chan string, 100), updates: make(chan conveyor.Update), release: map[string]chan struct{}{}}
	c := server.Config{
		Addr:        "127.0.0.1:0",
		DataDir:     t.TempDir(),
		Pipelines:   []*conveyor.Pipeline{{Name: "gated", Handler: g.run}},
		Concurrency: concurrency,
		// Executions a failed test left waiting are cancelled soon.
		ShutdownTimeout: time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	}
	if cfg != nil {
		cfg(&c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, c)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	})
	url := "http://" + srv.Addr()
	return &node{url: url, gate: g, ctl: newClient(t, url).WithAPIKey(c.APIKey)}
}

// newClient returns a client of url with a transport of its own, whose
// idle connections are closed when the test ends (goleak checks).
func newClient(t *testing.T, url string) *client.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return client.New(url, &http.Client{Transport: tr})
}

// gate is the handler of the "gated" pipeline: an execution reports
// that it started, then reports the updates the test sends until the
// test releases it.
type gate struct {
	started chan string // execution ids
	updates chan conveyor.Update

	mu      sync.Mutex
	release map[string]chan struct{}
}

func (g *gate) run(ctx context.Context, x *conveyor.Exec) error {
	g.started <- x.ID
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u := <-g.updates:
			x.Progress(u)
		case <-g.releaseOf(x.ID):
			return nil
		}
	}
}

func (g *gate) releaseOf(id string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.release[id]
	if !ok {
		c = make(chan struct{})
		g.release[id] = c
	}
	return c
}

// open lets execution id complete.
func (g *gate) open(id string) { close(g.releaseOf(id)) }

// update makes the running execution report u.
func (g *gate) update(t *testing.T, u conveyor.Update) {
	t.Helper()
	select {
	case g.updates <- u:
	case <-time.After(10 * time.Second):
		t.Fatal("no execution took the update")
	}
}

// waitStarted returns the ids of the next n executions that start.
func (g *gate) waitStarted(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		select {
		case ids[i] = <-g.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d executions started", i, n)
		}
	}
	return ids
}

// waitStatus polls until execution id has status want.
func (n *node) waitStatus(t *testing.T, id string, want conveyor.Status) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ex, err := n.ctl.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s is %s, want %s", id, ex.Status, want)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

// cutter is a TCP proxy in front of a node whose connections the test
// cuts, as a failing network or a restarting load balancer would.
type cutter struct {
	url    string
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  []net.Conn // both ends of every open connection
	opened int
	closed bool
	wg     sync.WaitGroup
}

// newCutter starts a proxy to the node at url ("http://host:port").
func newCutter(t *testing.T, url string) *cutter {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutter{url: "http://" + ln.Addr().String(), ln: ln, target: url[len("http://"):]}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutter) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			down.Close()
			up.Close()
			continue
		}
		p.conns = append(p.conns, down, up)
		p.opened++
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(down, up)
		go p.pipe(up, down)
	}
}

func (p *cutter) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every connection open now; new ones are let through.
func (p *cutter) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// connections is how many connections the proxy let through.
func (p *cutter) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opened
}
