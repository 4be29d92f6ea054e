package api

import (
	"context"
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
	keyOnly                  access = iota // "Authorization: Bearer KEY"
	keyOrStreamToken                       // or ?token= for the route's execution: browsers cannot set headers on a WebSocket or an EventSource
	keyOrStreamTokenToFollow               // keyOrStreamToken with ?follow=true (a stream), else keyOnly
	public                                 // anyone (the health check, the OpenAPI document)
)

// authorized reports whether r may proceed on a route with access a.
// Without an API key every request may.
func (s *Server) authorized(r *http.Request, a access) bool {
	if s.cfg.APIKey == "" || a == public {
		return true
	}
	if scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		// The scheme is case-insensitive (RFC 9110 11.1), the key is not.
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(key)), []byte(s.cfg.APIKey)) == 1
	}
	if a == keyOrStreamTokenToFollow && r.URL.Query().Get("follow") == "true" {
		a = keyOrStreamToken
	}
	if scope := tokenScope(r); a == keyOrStreamToken && scope != "" {
		return s.validStreamToken(r.URL.Query().Get("token"), scope, time.Now())
	}
	return false
}

// tokenScope is what a stream token for r must have been made for: the
// execution of a stream of one, "batch/ID" for a stream of batch ID, and
// "" (no token fits) for any other stream of many.
func tokenScope(r *http.Request) string {
	if id := r.PathValue("id"); id != "" {
		return id
	}
	if q := r.URL.Query(); len(q["batch"]) == 1 && q.Get("batch") != "" {
		return "batch/" + q.Get("batch")
	}
	return ""
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
	// Strict: the spare bits of the last character must be zero, so a
	// token has one spelling.
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	if time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0).Before(now) {
		return false
	}
	return hmac.Equal(b[8:], s.tokenMAC(id, b[:8]))
}

// MaxStreamTokenTTL is the longest a stream token may be asked to live.
const MaxStreamTokenTTL = 24 * time.Hour

// createStreamToken serves POST /executions/{id}/token: a short-lived token
// that lets a browser open this execution's streams and nothing else.
func (s *Server) createStreamToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.issueToken(w, r, id, func(ctx context.Context) error {
		_, err := s.cfg.Store.GetExecution(ctx, id)
		return err
	})
}

// createBatchToken serves POST /batches/{id}/token: a token that opens
// the streams of this batch (?batch=ID&token=) and nothing else.
func (s *Server) createBatchToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.issueToken(w, r, "batch/"+id, func(ctx context.Context) error {
		_, err := s.cfg.Store.GetBatch(ctx, id)
		return err
	})
}

// issueToken answers with a token for scope once exists says the thing
// exists. The body may hold {"ttl_seconds": N}: 1 to a day, 600 by
// default.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request, scope string, exists func(context.Context) error) {
	var body struct {
		TTLSeconds *int64 `json:"ttl_seconds"`
	}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	ttl := StreamTokenTTL
	if body.TTLSeconds != nil {
		ttl = time.Duration(*body.TTLSeconds) * time.Second
		if *body.TTLSeconds < 1 || ttl > MaxStreamTokenTTL {
			s.writeError(w, r, conveyor.Errorf(conveyor.EINVALID, "ttl_seconds must be from 1 to %d", int64(MaxStreamTokenTTL/time.Second)))
			return
		}
	}
	if err := exists(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.APIKey == "" {
		s.writeError(w, r, conveyor.Errorf(conveyor.ECONFLICT, "the server has no API key, so streams need no token"))
		return
	}
	expires := time.Now().Add(ttl).Truncate(time.Second)
	writeJSON(w, http.StatusCreated, map[string]any{"token": s.streamToken(scope, expires), "expires_at": expires.UTC()})
}
