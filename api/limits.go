package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Limits. A request over one is answered 429 with Retry-After and the
// code rate_limited before any of its work is done (its body is not even
// read). Config sets each; zero means no limit.
//
//   - Submissions (POST /executions, POST /batches) per client: a token
//     bucket of Config.RateLimit tokens a second holding twice that. A
//     request is one submission however many executions it holds.
//     Cancels, stream tokens and reads are not counted: a client that
//     flooded the node can always cancel what it started.
//   - Open streams (WebSocket and Server-Sent Events, of one execution or
//     of many) per client and on the node.
//   - Pending executions, read from the store at most once every
//     pendingRefresh and counted up between reads with what this node
//     admits: approximate, since other nodes' submissions and claims show
//     only at the next read, and a batch admitted below the limit is
//     admitted whole.
//
// A client is the API key a request presents (on a server with a key) or
// else the address it comes from: a stream opened with a token is its
// browser's address. IPv6 addresses count by their /64, which one host
// usually holds whole. Behind a reverse proxy every request comes from
// the proxy's address; X-Forwarded-For is not trusted, since anyone can
// send it.

// pendingRefresh is how long a count of pending executions is used
// before the store is asked again.
const pendingRefresh = time.Second

// streamRetryAfter is the Retry-After of a stream refused for a limit: a
// place frees up when another stream ends, which no one can foresee.
const streamRetryAfter = 5 * time.Second

// limits holds the state of the limits of a Server.
type limits struct {
	now     func() time.Time
	rate    *rateLimiter    // nil without RateLimit
	streams *streamCounter  // nil without either stream limit
	pending *pendingCounter // nil without MaxPending
}

func newLimits(cfg Config) *limits {
	l := &limits{now: cfg.Now}
	if l.now == nil {
		l.now = time.Now
	}
	if cfg.RateLimit > 0 {
		l.rate = newRateLimiter(cfg.RateLimit)
	}
	if cfg.MaxStreamsPerClient > 0 || cfg.MaxStreams > 0 {
		l.streams = &streamCounter{perClient: cfg.MaxStreamsPerClient, total: cfg.MaxStreams, open: map[string]int{}}
	}
	if cfg.MaxPending > 0 {
		l.pending = &pendingCounter{store: cfg.Store, limit: cfg.MaxPending, logger: cfg.Logger}
	}
	return l
}

// limitError is a refusal for a limit.
type limitError struct {
	limit      string // limitRate, …: the label of the refusal's metric
	retryAfter time.Duration
	err        *conveyor.Error
}

func refusal(limit string, retryAfter time.Duration, format string, args ...any) *limitError {
	return &limitError{limit, retryAfter, conveyor.Errorf(conveyor.ERATELIMITED, format, args...)}
}

// refuse answers a request refused for a limit: 429 with Retry-After in
// whole seconds.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, le *limitError) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.LimitRejected(le.limit)
	}
	secs := max(1, int64(math.Ceil(le.retryAfter.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	closeUnreadBody(w, r)
	s.writeError(w, r, le.err)
}

// closeUnreadBody makes an answer given before the request's body was
// read close the connection at once. Otherwise net/http reads (and waits
// for) up to 256 KiB of the body before it answers, to keep the
// connection; and with "Connection: close" alone it answers, but still
// reads the body before it closes. A client that announces a body and
// never sends it would hold the connection until the read timeout: the
// read deadline of now ends that read.
func closeUnreadBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

// liftReadDeadline frees a stream's connection from the server's
// ReadTimeout, which bounds how long a request takes to arrive, not how
// long its answer lasts. A deadline that passes under a stream cancels
// the request, so the stream would end. net/http lifts it itself once a
// request is read, and a WebSocket's hijack does too; this keeps that a
// guarantee of the streams rather than a detail of net/http
// (TestStreamsOutliveReadTimeout).
func liftReadDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// admitSubmission reports whether a submission may go on, and answers it
// if not. The caller reports what it submitted with submitted.
func (s *Server) admitSubmission(w http.ResponseWriter, r *http.Request) bool {
	l := s.limits
	now := l.now()
	if l.pending != nil {
		if n, full := l.pending.full(r.Context(), now); full {
			s.refuse(w, r, refusal(limitPending, pendingRefresh, "about %d executions are pending, and this node takes no more past %d; retry later", n, l.pending.limit))
			return false
		}
	}
	if l.rate != nil {
		if wait, ok := l.rate.take(s.clientOf(r), now); !ok {
			s.refuse(w, r, refusal(limitRate, wait, "more than %g submissions a second from this client", l.rate.rate))
			return false
		}
	}
	return true
}

// submitted counts n executions just submitted toward the pending limit.
func (s *Server) submitted(n int) {
	if s.limits.pending != nil {
		s.limits.pending.add(n)
	}
}

// openStream counts a stream of r's client, or answers r if a limit is
// reached. The caller calls release when the stream ends.
func (s *Server) openStream(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	release = func() {}
	if s.limits.streams != nil {
		var le *limitError
		if release, le = s.limits.streams.acquire(s.clientOf(r)); le != nil {
			s.refuse(w, r, le)
			return nil, false
		}
	}
	if m := s.cfg.Metrics; m != nil {
		transport, limitRelease := transportOf(r), release
		m.StreamOpened(transport)
		release = func() {
			limitRelease()
			m.StreamClosed(transport)
		}
	}
	if s.cfg.WatchingFunc != nil {
		s.countStream(1)
		var once sync.Once
		countedRelease := release
		release = func() {
			countedRelease()
			once.Do(func() { s.countStream(-1) })
		}
	}
	return release, true
}

// countStream adds d to the streams open and tells Config.WatchingFunc
// when there come to be some, or none: under the lock, so that it hears
// the changes in order.
func (s *Server) countStream(d int) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	before := s.streams
	s.streams += d
	if (before == 0) != (s.streams == 0) {
		s.cfg.WatchingFunc(s.streams > 0)
	}
}

// clientOf is the client r counts against: its API key, or its address.
// Only requests that passed the key check get here, so a key is the
// server's own (never one a client made up to get a fresh bucket).
func (s *Server) clientOf(r *http.Request) string {
	if s.cfg.APIKey != "" {
		if key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			sum := sha256.Sum256([]byte(key)) // never the key itself in memory that lives this long
			return "key " + hex.EncodeToString(sum[:8])
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "addr " + host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return "addr " + p.String()
	}
	return "addr " + addr.String()
}

// rateLimiter is a token bucket per client: rate tokens a second, up to
// twice that (at least one) banked.
type rateLimiter struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

func newRateLimiter(rate float64) *rateLimiter {
	return &rateLimiter{rate: rate, burst: max(1, 2*rate), buckets: map[string]*bucket{}}
}

// take takes a token of client's bucket at now. If there is none it
// returns how long until there is one.
func (l *rateLimiter) take(client string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[client]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[client] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}

// sweep forgets the buckets that have filled up again, so that the map
// holds only clients of the last few seconds: a full bucket is what a
// new client gets anyway.
func (l *rateLimiter) sweep(now time.Time) {
	fill := time.Duration(l.burst / l.rate * float64(time.Second))
	if now.Sub(l.swept) < fill {
		return
	}
	l.swept = now
	for client, b := range l.buckets {
		if now.Sub(b.at) >= fill {
			delete(l.buckets, client)
		}
	}
}

// streamCounter counts open streams per client and in all.
type streamCounter struct {
	perClient, total int // 0: no limit

	mu   sync.Mutex
	open map[string]int // clients with streams open; none with 0
	n    int
}

func (c *streamCounter) acquire(client string) (release func(), _ *limitError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.perClient > 0 && c.open[client] >= c.perClient:
		return nil, refusal(limitStreamsPerClient, streamRetryAfter, "this client has %d streams open, the most it may", c.open[client])
	case c.total > 0 && c.n >= c.total:
		return nil, refusal(limitStreams, streamRetryAfter, "the node has %d streams open, the most it serves; retry later or on another node", c.n)
	}
	c.open[client]++
	c.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.n--
			if c.open[client]--; c.open[client] == 0 {
				delete(c.open, client)
			}
		})
	}, nil
}

// pendingCounter is an approximate count of pending executions: read
// from the store (no further than the limit: that is all it needs to
// know) at most once every pendingRefresh, plus what this node admitted
// since. Between reads it only grows, so it errs toward refusing.
type pendingCounter struct {
	store  conveyor.Store
	limit  int
	logger *slog.Logger

	mu         sync.Mutex
	n          int
	at         time.Time // of the last read
	known      bool      // a read has succeeded
	refreshing bool      // a request is reading it now
}

// full reports whether the count has reached the limit, reading it from
// the store if it is older than pendingRefresh. A store that cannot be
// read admits the submission: it meets the same store next and fails
// there with a better error.
func (p *pendingCounter) full(ctx context.Context, now time.Time) (int, bool) {
	p.mu.Lock()
	if p.known && (p.refreshing || now.Sub(p.at) < pendingRefresh) {
		n := p.n
		p.mu.Unlock()
		return n, n >= p.limit
	}
	p.refreshing = true
	p.mu.Unlock()

	n, err := p.store.CountPending(ctx, p.limit)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshing = false
	if err != nil {
		if ctx.Err() == nil {
			p.logger.Warn("count pending executions", "err", err)
		}
		return p.n, p.known && p.n >= p.limit
	}
	p.n, p.at, p.known = n, now, true
	return n, n >= p.limit
}

func (p *pendingCounter) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += n
}
