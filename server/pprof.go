package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// servePprof exposes net/http/pprof on its own loopback listener, apart
// from the API so it is never reachable through it.
func (s *Server) servePprof(ctx context.Context, addr string) error {
	if !loopback(addr) {
		return fmt.Errorf("--pprof must be a loopback address, got %s", addr)
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout}
	s.cfg.Logger.Info("pprof listening", "addr", ln.Addr().String())
	go func() {
		if err := s.pprof.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("pprof", "err", err)
		}
	}()
	return nil
}
