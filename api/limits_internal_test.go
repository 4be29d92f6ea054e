package api

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestClientOf(t *testing.T) {
	t.Parallel()
	keyed := &Server{cfg: Config{APIKey: "k"}}
	open := &Server{}
	client := func(s *Server, remote, auth string) string {
		r := httptest.NewRequestWithContext(t.Context(), "GET", "/executions", nil)
		r.RemoteAddr = remote
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return s.clientOf(r)
	}
	same := []struct{ name, a, b string }{
		{"the key from anywhere", client(keyed, "192.0.2.1:1000", "Bearer k"), client(keyed, "198.51.100.7:2000", "Bearer k")},
		{"an address on any port", client(open, "192.0.2.1:1000", ""), client(open, "192.0.2.1:2000", "")},
		{"an IPv6 /64", client(open, "[2001:db8:1:2::1]:1000", ""), client(open, "[2001:db8:1:2:ffff::9]:1000", "")},
		{"IPv4 mapped into IPv6", client(open, "[::ffff:192.0.2.1]:1000", ""), client(open, "192.0.2.1:1000", "")},
		// A server without a key never saw one: a made-up key is no way
		// to a fresh bucket.
		{"a key the server does not have", client(open, "192.0.2.1:1000", "Bearer made-up"), client(open, "192.0.2.1:1000", "")},
	}
	for _, c := range same {
		if c.a != c.b {
			t.Errorf("%s: %q and %q, want one client", c.name, c.a, c.b)
		}
	}
	differ := []struct{ name, a, b string }{
		{"two addresses", client(open, "192.0.2.1:1000", ""), client(open, "192.0.2.2:1000", "")},
		{"two IPv6 /64s", client(open, "[2001:db8:1:2::1]:1000", ""), client(open, "[2001:db8:1:3::1]:1000", "")},
		{"the key and its address", client(keyed, "192.0.2.1:1000", "Bearer k"), client(keyed, "192.0.2.1:1000", "")},
	}
	for _, c := range differ {
		if c.a == c.b {
			t.Errorf("%s: both %q, want two clients", c.name, c.a)
		}
	}
	if got := client(keyed, "192.0.2.1:1000", "Bearer k"); got == "k" || len(got) < 10 {
		t.Errorf("a key's client is %q, want a digest of the key", got)
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	l := newRateLimiter(2) // bursts of 4
	now := time.Unix(1_000_000, 0)
	for i := range 4 {
		if _, ok := l.take("a", now); !ok {
			t.Fatalf("take %d of a burst of 4 refused", i+1)
		}
	}
	if wait, ok := l.take("a", now); ok || wait != 500*time.Millisecond {
		t.Fatalf("fifth take = %v, %v; want refused, a token in 500ms", wait, ok)
	}
	if _, ok := l.take("b", now); !ok {
		t.Fatal("another client's first take refused")
	}
	now = now.Add(250 * time.Millisecond) // half a token
	if wait, ok := l.take("a", now); ok || wait != 250*time.Millisecond {
		t.Fatalf("take after 250ms = %v, %v; want refused, a token in 250ms", wait, ok)
	}
	now = now.Add(250 * time.Millisecond)
	if _, ok := l.take("a", now); !ok {
		t.Fatal("take after 500ms refused")
	}
	if _, ok := l.take("a", now.Add(-time.Second)); ok {
		t.Fatal("a clock that went back made tokens")
	}

	// Buckets that filled up again are forgotten, and a forgotten
	// client starts with a full bucket, as it would have had.
	now = now.Add(2 * time.Second)
	if _, ok := l.take("c", now); !ok {
		t.Fatal("a new client refused")
	}
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after the others filled up, want 1", len(l.buckets))
	}
	if _, ok := l.take("a", now); !ok || l.buckets["a"].tokens != 3 {
		t.Errorf("a forgotten client has %v tokens after a take, want 3", l.buckets["a"].tokens)
	}

	if slow := newRateLimiter(0.25); slow.burst != 1 {
		t.Errorf("burst at 0.25/s = %v, want 1 (at least one submission)", slow.burst)
	}
}

func TestStreamCounter(t *testing.T) {
	t.Parallel()
	c := &streamCounter{perClient: 2, total: 3, open: map[string]int{}}
	a1, le := c.acquire("a")
	if le != nil {
		t.Fatal(le.err)
	}
	if _, le := c.acquire("a"); le != nil {
		t.Fatal(le.err)
	}
	if _, le := c.acquire("a"); le == nil {
		t.Fatal("a third stream of a client with a limit of 2 was counted")
	}
	b1, le := c.acquire("b")
	if le != nil {
		t.Fatal(le.err)
	}
	if _, le := c.acquire("b"); le == nil {
		t.Fatal("a fourth stream on a node with a limit of 3 was counted")
	}
	b1()
	b1() // a second release is a no-op
	if c.n != 2 || len(c.open) != 1 {
		t.Fatalf("after b's stream ended: %d open, clients %v; want 2, only a", c.n, c.open)
	}
	a1()
	if _, le := c.acquire("a"); le != nil {
		t.Fatalf("a's stream after one of its two ended: %v", le.err)
	}
}
