package conveyor_test

import (
	"net/http"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func TestHTTPStatusOfCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code   string
		status int
		back   string // the code a bare status maps back to
	}{
		{conveyor.EBADREQUEST, http.StatusBadRequest, conveyor.EBADREQUEST},
		{conveyor.EUNAUTHORIZED, http.StatusUnauthorized, conveyor.EUNAUTHORIZED},
		{conveyor.ENOTFOUND, http.StatusNotFound, conveyor.ENOTFOUND},
		{conveyor.EUNKNOWNPIPELINE, http.StatusUnprocessableEntity, conveyor.EINVALID},
		{conveyor.ERATELIMITED, http.StatusTooManyRequests, conveyor.ERATELIMITED},
		{conveyor.EUNAVAILABLE, http.StatusServiceUnavailable, conveyor.EUNAVAILABLE},
		{conveyor.ESTEPFAILED, http.StatusInternalServerError, conveyor.EINTERNAL},
	} {
		if got := conveyor.HTTPStatus(tc.code); got != tc.status {
			t.Errorf("HTTPStatus(%q) = %d, want %d", tc.code, got, tc.status)
		}
		if got := conveyor.CodeOfHTTPStatus(tc.status); got != tc.back {
			t.Errorf("CodeOfHTTPStatus(%d) = %q, want %q", tc.status, got, tc.back)
		}
	}
}
