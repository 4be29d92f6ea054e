package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/conveyor-run/conveyor"
)

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error *conveyor.Error `json:"error"`
}

// writeError answers with err's code and message. Errors that are not a
// *conveyor.Error are logged and answered as internal, so no internals leak.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = s.classify(r.Context(), err)
	code := conveyor.ErrorCode(err)
	status := conveyor.HTTPStatus(code)
	if status == http.StatusInternalServerError {
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, errorBody{Error: &conveyor.Error{Code: code, Message: conveyor.ErrorMessage(err)}})
}

// classify turns an unexpected error met while the store is unreachable
// into EUNAVAILABLE: not a bug but an outage, so clients should retry.
func (s *Server) classify(ctx context.Context, err error) error {
	if conveyor.ErrorCode(err) != conveyor.EINTERNAL || !s.storeUnreachable(ctx) {
		return err
	}
	s.logger.Warn("request failed: store unreachable", "err", err)
	return conveyor.Errorf(conveyor.EUNAVAILABLE, "the database is unreachable; retry later")
}

// storeUnreachable reports whether the store fails a quick ping.
func (s *Server) storeUnreachable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	return s.cfg.Store.Ping(ctx) != nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("encode response", "err", err)
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A client that went away cannot be told; the status is already sent.
	_, _ = w.Write(append(b, '\n'))
}
