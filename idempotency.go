package conveyor

import (
	"fmt"
	"time"
)

// Idempotent submissions: a client that sends a submission again with the
// same Idempotency-Key (a retry after a timeout, say) gets what the first
// one created instead of a second execution or batch. The store records
// the key in the transaction that creates what it names, so two requests
// with one key, on one node or on two, create one thing.

// IdempotencyTTL is how long a key names what it created: a key first
// used longer ago than that is free again, and expired keys are deleted
// (Store.DeleteExpiredKeys).
const IdempotencyTTL = 24 * time.Hour

// MaxIdempotencyKeyLen is the longest Idempotency-Key accepted.
const MaxIdempotencyKeyLen = 255

// Idempotency is the Idempotency-Key a submission came with and a digest
// of its request: the method, the path and the body, so that a repeat can
// be told from a different request under the same key.
type Idempotency struct {
	Key    string
	Digest string
}

// ValidateIdempotencyKey checks an Idempotency-Key: 1 to
// MaxIdempotencyKeyLen printable ASCII characters (space to tilde), as an
// HTTP header carries them unchanged.
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return Errorf(EINVALID, "Idempotency-Key must be 1 to %d characters, not %d", MaxIdempotencyKeyLen, len(key))
	}
	for i := range len(key) {
		if c := key[i]; c < ' ' || c > '~' {
			return Errorf(EINVALID, "Idempotency-Key must be printable ASCII; byte %d is %#x", i, c)
		}
	}
	return nil
}

// KeyTaken is the error a store returns when a submission's Idempotency-Key
// names something created within IdempotencyTTL: nothing was created, and
// it says what the key names. Its code is ECONFLICT.
type KeyTaken struct {
	Key         string
	Digest      string // of the request that first used the key
	ExecutionID string // what it created: an execution,
	BatchID     string // or a batch
	CreatedAt   time.Time
}

func (k *KeyTaken) Error() string { return k.Unwrap().Error() }

// Unwrap makes a KeyTaken an ECONFLICT *Error for ErrorCode.
func (k *KeyTaken) Unwrap() error {
	return Errorf(ECONFLICT, "Idempotency-Key %q was used at %s", k.Key, k.CreatedAt.Format(time.RFC3339))
}

// Replay is what a submission whose key is taken answers: nil when it is
// a repeat of the first request (the caller answers with what that one
// created), EIDEMPOTENCYMISMATCH when the request differs.
func (k *KeyTaken) Replay(id *Idempotency) error {
	if id.Digest == k.Digest {
		return nil
	}
	what := "execution " + k.ExecutionID
	if k.BatchID != "" {
		what = "batch " + k.BatchID
	}
	return &Error{Code: EIDEMPOTENCYMISMATCH, Message: fmt.Sprintf(
		"Idempotency-Key %q was used for another request (which created %s); send that request again, or use a new key", k.Key, what)}
}

// RepeatedKey is ECONFLICT when two of es carry the same Idempotency-Key:
// one transaction cannot create both, nor tell which the key names.
func RepeatedKey(es []*Execution) error {
	seen := make(map[string]bool)
	for _, e := range es {
		if e.Idempotency == nil {
			continue
		}
		if seen[e.Idempotency.Key] {
			return Errorf(ECONFLICT, "Idempotency-Key %q is on more than one execution of the batch", e.Idempotency.Key)
		}
		seen[e.Idempotency.Key] = true
	}
	return nil
}
