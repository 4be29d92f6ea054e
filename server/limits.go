package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/metrics"
)

// Defaults of the limits of Config (docs/deploy.md#limits); the api
// package enforces them.
const (
	DefaultRateLimit           = 1000      // submissions a second per client
	DefaultMaxStreamsPerClient = 1000      // open streams per client
	DefaultMaxStreams          = 20_000    // open streams on the node, if the open-file limit allows
	DefaultMaxPending          = 1_000_000 // pending executions
)

// defaultLimits gives the limits left zero their defaults.
func (c *Config) defaultLimits() error {
	if c.MaxConnections < 0 {
		return fmt.Errorf("max connections must not be negative, got %d", c.MaxConnections)
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	for _, l := range []struct {
		v   *int
		def int
	}{
		{&c.MaxStreamsPerClient, DefaultMaxStreamsPerClient},
		{&c.MaxStreams, DefaultMaxStreams},
		{&c.MaxPending, DefaultMaxPending},
	} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	return nil
}

// healthSpares is how many connections past Config.MaxConnections a node
// accepts to answer /healthz: a full node is busy, not dead, and a load
// balancer that cannot reach the health check would take it out. On such
// a connection every other request gets 429 rate_limited, and each
// answer closes it.
const healthSpares = 16

// connectionBudget is how many connections the open-file limit leaves
// room for: an eighth of it, and at least 64, is kept for everything
// else (the database, the data folder's lock, pipes of exec steps, the
// health spares).
func connectionBudget(openFiles uint64) int {
	files := int(min(openFiles, math.MaxInt32))
	return max(1, files-max(64, files/8))
}

// streamBudget is how many of conns connections streams may take: seven
// eighths, so that requests still get through when streams are at their
// limit.
func streamBudget(conns int) int { return max(1, conns-conns/8) }

// openFileLimit is the process's RLIMIT_NOFILE; Go raises the soft limit
// to the hard one at start.
func openFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	return lim.Cur, nil
}

// fitFileLimit lowers MaxConnections, then MaxStreams, to what the
// open-file limit allows, and says so in the log.
func (c *Config) fitFileLimit(openFiles uint64) {
	conns := connectionBudget(openFiles)
	if c.MaxConnections == 0 {
		c.MaxConnections = conns
	} else if c.MaxConnections > conns {
		c.Logger.Warn("connection limit lowered to fit the open-file limit (ulimit -n, LimitNOFILE=)",
			"max_connections", conns, "asked", c.MaxConnections, "open_files", openFiles)
		c.MaxConnections = conns
	}
	if streams := streamBudget(c.MaxConnections); c.MaxStreams > streams {
		c.Logger.Info("stream limit lowered to fit the open-file limit (ulimit -n, LimitNOFILE=)",
			"max_streams", streams, "asked", c.MaxStreams, "max_connections", c.MaxConnections, "open_files", openFiles)
		c.MaxStreams = streams
	}
}

// capListener accepts at most maxConns connections at once, plus up to
// healthSpares spare ones that only answer /healthz (see healthOnly).
// Past both it waits in Accept, and new connections wait in the
// kernel's backlog, until one closes.
type capListener struct {
	net.Listener
	slots  chan struct{} // a token per open connection
	spares chan struct{} // a token per open spare connection
	done   chan struct{}
	once   sync.Once
}

func newCapListener(ln net.Listener, maxConns int) *capListener {
	return &capListener{Listener: ln, slots: make(chan struct{}, maxConns), spares: make(chan struct{}, healthSpares), done: make(chan struct{})}
}

// Accept takes a slot, else a spare, then waits for a connection.
func (l *capListener) Accept() (net.Conn, error) {
	spare, err := l.acquire()
	if err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release(spare)
		return nil, err
	}
	if spare {
		// A slot may have freed while this waited for the connection.
		select {
		case l.slots <- struct{}{}:
			<-l.spares
			spare = false
		default:
		}
	}
	return &capConn{Conn: c, l: l, spare: spare}, nil
}

func (l *capListener) acquire() (spare bool, err error) {
	select {
	case l.slots <- struct{}{}:
		return false, nil
	default:
	}
	select {
	case l.slots <- struct{}{}:
		return false, nil
	case l.spares <- struct{}{}:
		return true, nil
	case <-l.done:
		return false, net.ErrClosed
	}
}

func (l *capListener) release(spare bool) {
	if spare {
		<-l.spares
	} else {
		<-l.slots
	}
}

// Close stops Accept, including one that waits for a slot.
func (l *capListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// capConn gives its place back when it closes.
type capConn struct {
	net.Conn
	l     *capListener
	spare bool
	once  sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.spare) })
	return err
}

// spareConnKey marks the context of a request that came on a spare
// connection.
type spareConnKey struct{}

// connContext is http.Server.ConnContext: it marks spare connections.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*capConn); ok && cc.spare {
		return context.WithValue(ctx, spareConnKey{}, true)
	}
	return ctx
}

// healthOnly serves requests that came on a spare connection: /healthz
// as usual, everything else 429 rate_limited. Either answer closes the
// connection, at once, without reading a body.
func healthOnly(next http.Handler, maxConns int, m *metrics.Metrics) http.Handler {
	refusal, _ := json.Marshal(map[string]*conveyor.Error{"error": conveyor.Errorf(conveyor.ERATELIMITED,
		"the node has %d connections open, the most it takes; retry later", maxConns)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(spareConnKey{}) == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		}
		if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		m.LimitRejected(metrics.LimitConnections)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write(append(refusal, '\n'))
	})
}
