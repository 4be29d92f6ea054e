package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/conveyor-run/conveyor"
)

// idempotencyOf is the Idempotency-Key of a submission with its digest,
// nil when the request has none. The digest is of the method, the path
// and req as decoded and encoded again, so "the same request" means the
// same values: whitespace and the order of the body's top-level fields
// and tags do not count. EINVALID for a malformed key or two of them.
func idempotencyOf(r *http.Request, req any) (*conveyor.Idempotency, error) {
	keys := r.Header.Values("Idempotency-Key")
	switch len(keys) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, conveyor.Errorf(conveyor.EINVALID, "Idempotency-Key is given %d times; send it once", len(keys))
	}
	if err := conveyor.ValidateIdempotencyKey(keys[0]); err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(body)
	return &conveyor.Idempotency{Key: keys[0], Digest: hex.EncodeToString(h.Sum(nil))}, nil
}
