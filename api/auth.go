package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"time"

	"github.com/conveyor-run/conveyor"
)

// StreamTokenTTL is how long a stream token is valid.
const StreamTokenTTL = 10 * time.Minute

// access is who may use a route when the server has an API key; each
// route says which when it is registered.
type access int

const (
	keyOnly          access = iota // "Authorization: Bearer KEY"
	keyOrStreamToken               // or ?token= for the route's execution: browsers cannot set headers on a WebSocket or an EventSource
	public                         // anyone (the health check)
)

// authorized reports whether r may proceed on a route with access a.
// Without an API key every request may.
func (s *Server) authorized(r *http.Request, a access) bool {
	if s.cfg.APIKey == "" || a == public {
		return true
	}
	if key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) == 1
	}
	if a == keyOrStreamToken {
		return s.validStreamToken(r.URL.Query().Get("token"), r.PathValue("id"), time.Now())
	}
	return false
}

// streamToken returns a token that opens the stream of execution id until
// expires: the expiry and an HMAC of it and the id under the API key.
func (s *Server) streamToken(id string, expires time.Time) string {
	var exp [8]byte
	binary.BigEndian.PutUint64(exp[:], uint64(expires.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(exp[:], s.tokenMAC(id, exp[:])...))
}

func (s *Server) tokenMAC(id string, exp []byte) []byte {
	m := hmac.New(sha256.New, []byte(s.cfg.APIKey))
	m.Write(exp)
	m.Write([]byte(id))
	return m.Sum(nil)
}

func (s *Server) validStreamToken(token, id string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	if time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0).Before(now) {
		return false
	}
	return hmac.Equal(b[8:], s.tokenMAC(id, b[:8]))
}

// createStreamToken serves POST /executions/{id}/token: a short-lived token
// that lets a browser open this execution's stream and nothing else.
func (s *Server) createStreamToken(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if _, err := s.cfg.Store.GetExecution(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.APIKey == "" {
		s.writeError(w, r, conveyor.Errorf(conveyor.ECONFLICT, "the server has no API key, so streams need no token"))
		return
	}
	expires := time.Now().Add(StreamTokenTTL).Truncate(time.Second)
	writeJSON(w, http.StatusCreated, map[string]any{"token": s.streamToken(id, expires), "expires_at": expires.UTC()})
}
