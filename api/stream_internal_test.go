package api

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store/sqlite"
)

// FuzzResumeAfter checks where streams resume (Last-Event-ID, ?after=)
// and where the event log starts (?after=): exactly the non-negative
// decimal integers that fit an int64 are accepted, anything else is a 400.
func FuzzResumeAfter(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"42", ""}, {"", "42"}, {"7", "x"}, {"", "0"}, {"", "007"}, {"", "-1"}, {"", "-0"},
		{"", "+5"}, {"", " 5"}, {"", "5 "}, {"", "1_000"}, {"", "0x10"}, {"", "1e3"}, {"", "٣"},
		{"", "9223372036854775807"}, {"", "9223372036854775808"}, {"x", "5"},
	} {
		f.Add(s[0], s[1])
	}
	store, err := sqlite.Open(context.Background(), f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	s := New(Config{Store: store})
	f.Fuzz(func(t *testing.T, lastEventID, after string) {
		got, err := resumeAfter(lastEventID, after)
		v := lastEventID
		if v == "" {
			v = after
		}
		want, ok := decimal(v)
		switch {
		case v == "":
			if got != noResume || err != nil {
				t.Fatalf("resumeAfter(%q, %q) = %d, %v; want a fresh stream", lastEventID, after, got, err)
			}
		case ok:
			if got != want || err != nil {
				t.Fatalf("resumeAfter(%q, %q) = %d, %v; want %d", lastEventID, after, got, err, want)
			}
		default:
			if conveyor.ErrorCode(err) != conveyor.EBADREQUEST {
				t.Fatalf("resumeAfter(%q, %q) = %d, %v; want a bad request", lastEventID, after, got, err)
			}
		}

		// The event log reads ?after= the same way, and a wrong one is
		// a 400 before the execution is looked up (it does not exist).
		r := httptest.NewRequestWithContext(t.Context(), "GET", "/executions/none/events?"+url.Values{"after": {after}}.Encode(), nil)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		var body errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
			t.Fatalf("?after=%q: %d %q is not an error body", after, w.Code, w.Body)
		}
		_, ok = decimal(after)
		wantStatus, wantCode := http.StatusBadRequest, conveyor.EBADREQUEST
		if ok || after == "" {
			wantStatus, wantCode = http.StatusNotFound, conveyor.ENOTFOUND
		}
		if w.Code != wantStatus || body.Error.Code != wantCode {
			t.Fatalf("?after=%q: %d %s, want %d %s", after, w.Code, body.Error.Code, wantStatus, wantCode)
		}
	})
}

// decimal reads s as the digits of a non-negative int64: no sign, no
// spaces, no other base or notation.
func decimal(s string) (int64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}
