package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// checkMetricsAddr tells what is wrong with a --metrics-addr, if
// anything: it must be host:port, as net.Listen takes it.
func checkMetricsAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		if _, perr := strconv.ParseUint(port, 10, 16); perr != nil {
			err = fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
	}
	if err != nil {
		return fmt.Errorf("metrics address %q must be host:port, e.g. 127.0.0.1:9090 or :9090: %w", addr, err)
	}
	return nil
}

// serveMetrics serves GET /metrics, and nothing else, without the API
// key on a listener of its own: what a Prometheus server on a private
// network scrapes. Beyond loopback anyone who reaches it reads the
// metrics, which hold counts and pipeline names, no execution: allowed,
// with a warning.
func (s *Server) serveMetrics(ctx context.Context, addr string) error {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics)
	var handler http.Handler = mux
	if loopback(addr) {
		handler = loopbackHostsOnly(mux)
	}
	s.metricsHTTP = &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
	s.metricsLn = ln
	if loopback(addr) {
		s.cfg.Logger.Info("metrics listening", "addr", ln.Addr().String())
	} else {
		s.cfg.Logger.Warn("metrics listening beyond loopback without an API key: anyone who reaches it reads pipeline names and counts; keep it on a private network",
			"addr", ln.Addr().String())
	}
	go func() {
		if err := s.metricsHTTP.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("metrics", "err", err)
		}
	}()
	return nil
}

// loopbackHostsOnly answers 403 to a request whose Host is not a
// loopback name or address, as the API does without a key: otherwise a
// page on another site whose name resolves to 127.0.0.1 could read the
// metrics (DNS rebinding).
func loopbackHostsOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "the metrics listener on loopback answers only a loopback Host", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// MetricsAddr is the address of the metrics listener, "" without one.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}
