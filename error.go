package conveyor

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes. They travel unchanged from the store to the HTTP client; the
// api package maps each to one HTTP status and the client maps them back.
const (
	ENOTFOUND        = "not_found"          // no such execution or pipeline
	ECONFLICT        = "conflict"           // the request conflicts with the current state
	EINVALID         = "invalid"            // well-formed but semantically wrong input
	EUNKNOWNPIPELINE = "unknown_pipeline"   // the named pipeline does not exist
	EBADREQUEST      = "bad_request"        // malformed request
	ETOOLARGE        = "too_large"          // request body over the limit
	EUNSUPPORTED     = "unsupported_media"  // request body is not application/json
	EMETHOD          = "method_not_allowed" // the path exists, the method does not
	EUNAUTHORIZED    = "unauthorized"       // a missing or wrong API key or stream token
	ERATELIMITED     = "rate_limited"       // over a limit of the client's or the node's; retry after Retry-After
	EUNAVAILABLE     = "unavailable"        // the server cannot serve now (shutting down, database down)
	EINTERNAL        = "internal"           // a bug or an unexpected failure
	// An Idempotency-Key came back with another request than the one
	// that first used it.
	EIDEMPOTENCYMISMATCH = "idempotency_mismatch"

	// Codes an execution can fail with.
	ETIMEOUT     = "timeout"     // a step or the whole execution ran out of time
	EINTERRUPTED = "interrupted" // the node running it died and no retries were left
	ESTEPFAILED  = "step_failed" // a step returned an error
	ESTALLED     = "stalled"     // a step reported nothing for its stall_after, with on_stall: fail
)

// httpStatuses is the one table from error codes to HTTP statuses: the
// api package answers with it and the Go client reads answers with it.
// The first code of a status is the one a bare status maps back to.
var httpStatuses = []struct {
	code   string
	status int
}{
	{EBADREQUEST, http.StatusBadRequest},
	{ENOTFOUND, http.StatusNotFound},
	{ECONFLICT, http.StatusConflict},
	{ETOOLARGE, http.StatusRequestEntityTooLarge},
	{EUNSUPPORTED, http.StatusUnsupportedMediaType},
	{EINVALID, http.StatusUnprocessableEntity},
	{EUNKNOWNPIPELINE, http.StatusUnprocessableEntity},
	{EIDEMPOTENCYMISMATCH, http.StatusUnprocessableEntity},
	{EUNAVAILABLE, http.StatusServiceUnavailable},
	{EINTERNAL, http.StatusInternalServerError},
	{EMETHOD, http.StatusMethodNotAllowed},
	{EUNAUTHORIZED, http.StatusUnauthorized},
	{ERATELIMITED, http.StatusTooManyRequests},
}

// HTTPStatus is the HTTP status of an error code: 500 for codes that are
// not a request's fault or unknown.
func HTTPStatus(code string) int {
	for _, s := range httpStatuses {
		if s.code == code {
			return s.status
		}
	}
	return http.StatusInternalServerError
}

// CodeOfHTTPStatus is the error code of an HTTP error status, for answers
// without a JSON error body (a proxy's, say): EINTERNAL for any status
// the API does not answer with.
func CodeOfHTTPStatus(status int) string {
	for _, s := range httpStatuses {
		if s.status == status {
			return s.code
		}
	}
	return EINTERNAL
}

// Error is an error with a machine-readable code and a human message. It is
// both the API's error body and an execution's recorded failure.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic message for any other error so internals never leak to clients.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}
