package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
	"github.com/conveyor-run/conveyor/client"
)

// clock is a fake clock for the limits: time moves only when the test
// says.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// wantRateLimited fails unless err is a rate_limited error.
func wantRateLimited(t *testing.T, what string, err error) {
	t.Helper()
	if code(err) != conveyor.ERATELIMITED {
		t.Fatalf("%s: %v, want rate_limited", what, err)
	}
}

// rawAnswer is an HTTP answer, read whole.
type rawAnswer struct {
	status int
	header http.Header
	body   string
	closed bool // the server closed the connection after it (rawRequest only)
}

func readRawAnswer(t *testing.T, resp *http.Response) rawAnswer {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// rawRequest writes req on a new connection and reads the answer. The
// server must answer by itself: if it waits for more of the request, the
// read times out and the test fails. It also reports whether the server
// then closed the connection.
func rawRequest(t *testing.T, baseURL, req string) rawAnswer {
	t.Helper()
	c, err := new(net.Dialer).DialContext(t.Context(), "tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read the answer to %q: %v (the server waited for the body?)", req, err)
	}
	a := readRawAnswer(t, resp)
	_, err = r.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server neither closed the connection nor sent anything more")
	}
	a.closed = err != nil
	return a
}

// postWithoutBody is a POST that announces a body it never sends.
func postWithoutBody(path, apiKey string) string {
	req := "POST " + path + " HTTP/1.1\r\nHost: conveyor\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
	if apiKey != "" {
		req += "Authorization: Bearer " + apiKey + "\r\n"
	}
	return req + "\r\n"
}

func checkRefused(t *testing.T, what string, a rawAnswer) {
	t.Helper()
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" ||
		!strings.Contains(a.body, `"code":"rate_limited"`) {
		t.Fatalf("%s: %d, Retry-After %q, %s; want 429 with Retry-After and code rate_limited",
			what, a.status, a.header.Get("Retry-After"), a.body)
	}
}

func TestRateLimitCountsEachSubmissionOnce(t *testing.T) {
	t.Parallel()
	clk := newClock()
	h := setupWith(t, func(cfg *api.Config) { cfg.RateLimit, cfg.Now = 1, clk.Now }, 1,
		&conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "s", Run: noop}}})
	ctx := t.Context()

	// A burst of twice the rate: one execution and a batch of 100, each
	// one submission.
	ex := h.submit("quick", nil)
	items := make([]conveyor.NewExecution, 100)
	for i := range items {
		items[i] = conveyor.NewExecution{Pipeline: "quick"}
	}
	if _, err := h.client.SubmitBatch(ctx, items, nil); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.Submit(ctx, "quick", nil)
	wantRateLimited(t, "third submission within a second", err)
	_, err = h.client.SubmitBatch(ctx, items[:1], nil)
	wantRateLimited(t, "batch after the burst", err)

	// Refused before anything is read: a body that never comes is not
	// waited for.
	a := rawRequest(t, h.url, postWithoutBody("/executions", ""))
	checkRefused(t, "a submission whose body never comes", a)
	if a.header.Get("Retry-After") != "1" || !a.closed {
		t.Errorf("Retry-After %q, connection closed %v; want 1 (a token a second) and closed", a.header.Get("Retry-After"), a.closed)
	}

	// Reads and cancels are not submissions.
	h.waitStatus(ex.ID, conveyor.StatusCompleted) // reads, many of them
	if _, err := h.client.Cancel(ctx, ex.ID); code(err) != conveyor.ECONFLICT {
		t.Fatalf("cancel of a completed execution while rate limited: %v, want conflict", err)
	}

	clk.advance(time.Second) // one more token
	h.submit("quick", nil)
	_, err = h.client.Submit(ctx, "quick", nil)
	wantRateLimited(t, "second submission after a second", err)
}

func TestMaxPending(t *testing.T) {
	t.Parallel()
	clk := newClock()
	g := newGate()
	h := setupWith(t, func(cfg *api.Config) { cfg.MaxPending, cfg.Now = 2, clk.Now }, 1, twoSteps("gated", g))
	ctx := t.Context()

	// The count is read from the store at the first submission, then
	// counts what this node admits until a second has passed: the limit
	// holds however fast submissions come.
	a, b := h.submit("gated", nil), h.submit("gated", nil)
	_, err := h.client.Submit(ctx, "gated", nil)
	wantRateLimited(t, "a third pending execution", err)
	_, err = h.client.SubmitBatch(ctx, []conveyor.NewExecution{{Pipeline: "gated"}}, nil)
	wantRateLimited(t, "a batch past the limit", err)
	refused := rawRequest(t, h.url, postWithoutBody("/batches", ""))
	checkRefused(t, "a batch whose body never comes", refused)
	if !refused.closed {
		t.Error("the connection stayed open after a refusal before the body was read")
	}

	for _, ex := range []*conveyor.Execution{a, b} {
		if _, err := h.client.Cancel(ctx, ex.ID); err != nil {
			t.Fatal(err)
		}
		h.waitStatus(ex.ID, conveyor.StatusCancelled)
	}
	clk.advance(time.Second) // the count is read again: nothing pending
	// A batch below the limit is admitted whole, even past it.
	batch, err := h.client.SubmitBatch(ctx, make3("gated"), nil)
	if err != nil {
		t.Fatalf("batch once the executions were cancelled: %v", err)
	}
	_, err = h.client.Submit(ctx, "gated", nil)
	wantRateLimited(t, "a submission after the batch", err)
	if _, err := h.client.CancelBatch(ctx, batch.ID); err != nil {
		t.Fatal(err)
	}
}

func make3(pipeline string) []conveyor.NewExecution {
	return []conveyor.NewExecution{{Pipeline: pipeline}, {Pipeline: pipeline}, {Pipeline: pipeline}}
}

// openSSE opens an SSE stream; once it returns the server has counted
// it (it answers when it sends the first message). It returns a refusal
// read whole, and for an open stream 200 and nothing more: the stream is
// closed when the test ends.
func openSSE(t *testing.T, url, apiKey string) rawAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return readRawAnswer(t, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return rawAnswer{status: resp.StatusCode, header: resp.Header}
}

func TestStreamLimits(t *testing.T) {
	t.Parallel()
	const key = "s3cret"
	g := newGate()
	h := setupWith(t, func(cfg *api.Config) {
		cfg.APIKey, cfg.MaxStreamsPerClient, cfg.MaxStreams = key, 2, 3
	}, 1, twoSteps("gated", g))
	ctx := t.Context()
	ex := h.submit("gated", nil)
	recv(t, g.started)

	// Requests with the key are one client: a WebSocket stream of one
	// execution and an SSE stream of many take its two.
	ws := h.watch(ex.ID)
	nextEvent(t, ws)
	if a := openSSE(t, h.url+"/executions/progress/sse?pipeline=gated", key); a.status != http.StatusOK {
		t.Fatalf("second stream of the key: %d %s", a.status, a.body)
	}
	_, err := h.client.Watch(ctx, ex.ID)
	wantRateLimited(t, "third WebSocket stream of the key", err)
	checkRefused(t, "third SSE stream of the key", openSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", key))

	// A browser with a stream token is a client of its own, its address;
	// the node's third stream is its last.
	token, err := h.client.StreamToken(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	anon := client.New(h.url, nil)
	browser, err := anon.WatchWithToken(ctx, ex.ID, token)
	if err != nil {
		t.Fatalf("a token's first stream: %v", err)
	}
	defer browser.Close()
	nextEvent(t, browser)
	checkRefused(t, "a stream past the node's limit", openSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse?token="+token, ""))
	_, err = anon.WatchWithToken(ctx, ex.ID, token)
	wantRateLimited(t, "a WebSocket stream past the node's limit", err)

	// A stream that ends gives its place back.
	ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := h.client.Watch(ctx, ex.ID)
		if err == nil {
			s.Close()
			break
		}
		if code(err) != conveyor.ERATELIMITED || time.Now().After(deadline) {
			t.Fatalf("stream after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(t, g.release, nil)
}

func TestUnauthenticatedBodyIsNotAwaited(t *testing.T) {
	t.Parallel()
	h := setupWithKey(t, "s3cret", 1)
	// The key is checked before the body is read, and the answer closes
	// the connection rather than wait for a body nobody will read.
	a := rawRequest(t, h.url, postWithoutBody("/executions", ""))
	if a.status != http.StatusUnauthorized || !strings.Contains(a.body, `"code":"unauthorized"`) || !a.closed {
		t.Fatalf("POST without a key or its body: %d %s, closed %v; want 401 unauthorized and the connection closed", a.status, a.body, a.closed)
	}
}

func TestStreamsOutliveReadTimeout(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)
	// The same API behind a server that gives every request 200 ms to
	// arrive, body included, as serve does with a longer timeout.
	const readTimeout = 200 * time.Millisecond
	srv := httptest.NewUnstartedServer(h.api)
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	defer srv.Close()

	ws, err := client.New(srv.URL, nil).Watch(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	nextEvent(t, ws)
	resp := getSSE(t, srv.URL+"/executions/"+ex.ID+"/progress/sse", "")
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)

	// Heartbeats arrive every 50 ms: read them until several read
	// timeouts have passed.
	start := time.Now()
	for time.Since(start) < 5*readTimeout {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("SSE stream cut after %s: %v", time.Since(start), err)
		}
	}
	send(t, g.release, nil)
	rest := readSSE(t, r)
	if len(rest) == 0 || rest[len(rest)-1].event != "completed" {
		t.Fatalf("SSE stream after the read timeout: %+v, want it to end with completed", rest)
	}
	if ev := nextOfType(t, ws, conveyor.EventCompleted); ev.ExecutionID != ex.ID {
		t.Fatalf("WebSocket completed event %+v", ev)
	}
	expectEOF(t, ws)
}

func TestWebSocketRefusesDataMessages(t *testing.T) {
	t.Parallel()
	h, g, ex := runGated(t)
	defer send(t, g.release, nil)
	for _, size := range []int{1, 5000} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/executions/"+ex.ID+"/progress/ws", nil) //nolint:bodyclose // Dial closes the body itself

		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", size))); err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, _, err = c.Read(ctx) // the status message, then the close
		}
		if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
			t.Fatalf("after a %d-byte data message: %v (status %d), want close 1008", size, err, got)
		}
	}
}

// TestWatchingFunc: the node hears when it comes to have streams open and
// when its last one closes, whatever their transports, and only then.
func TestWatchingFunc(t *testing.T) {
	t.Parallel()
	told := make(chan bool, 10)
	g := newGate()
	h := setupWith(t, func(cfg *api.Config) { cfg.WatchingFunc = func(streams bool) { told <- streams } }, 1, twoSteps("gated", g))
	ex := h.submit("gated", nil)
	recv(t, g.started)

	ws := h.watch(ex.ID)
	nextEvent(t, ws)
	if got := recv(t, told); !got {
		t.Fatal("told false at the first stream, want true")
	}
	ctx, closeSSE := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/executions/progress/sse?pipeline=gated", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE stream: %v %v", resp, err)
	}
	ws.Close()
	closeSSE()
	resp.Body.Close()
	if got := recv(t, told); got {
		t.Fatal("told true when the last stream closed, want false")
	}
	select {
	case got := <-told:
		t.Errorf("told %v more, want nothing", got)
	default:
	}
	send(t, g.release, nil)
}
