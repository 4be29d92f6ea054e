package pipeline_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/pipeline"
)

func TestHTTP(t *testing.T) {
	t.Parallel()
	type request struct {
		method, body, token, execution, attempt string
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- request{r.Method, string(b), r.Header.Get("X-Token"), r.Header.Get("X-Conveyor-Execution-Id"), r.Header.Get("X-Conveyor-Attempt")}
		switch r.URL.Path {
		case "/created":
			w.WriteHeader(http.StatusCreated)
		case "/broken":
			http.Error(w, "database is down", http.StatusInternalServerError)
		case "/moved":
			http.Redirect(w, r, "/created", http.StatusFound)
		}
	}))
	defer srv.Close()

	rec := &recorder{}
	s := &pipeline.HTTPSpec{Method: "POST", URL: srv.URL + "/created", Expect: 201, Body: "done", Headers: map[string]string{"X-Token": "abc"}}
	if err := s.Run(t.Context(), rec.exec()); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r != (request{"POST", "done", "abc", "ex-1", "2"}) {
		t.Errorf("request = %+v", r)
	}

	s = &pipeline.HTTPSpec{Method: "GET", URL: srv.URL + "/broken", Expect: 200}
	err := s.Run(t.Context(), rec.exec())
	<-got
	var ce *conveyor.Error
	if !errors.As(err, &ce) || ce.Code != conveyor.ESTEPFAILED || !strings.Contains(ce.Message, "500 Internal Server Error") || !strings.Contains(ce.Message, "want 200") {
		t.Errorf("err = %v, want step_failed naming status 500", err)
	}
	if lines := rec.lines(); len(lines) != 1 || !strings.Contains(lines[0], "database is down") {
		t.Errorf("log = %q, want the response body", lines)
	}

	// A 3xx is expected only when redirects are not followed.
	s = &pipeline.HTTPSpec{Method: "GET", URL: srv.URL + "/moved", Expect: 302}
	if err := s.Run(t.Context(), rec.exec()); err != nil {
		t.Errorf("expect 302: %v", err)
	}
	<-got
}

func TestHTTPCancel(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- (&pipeline.HTTPSpec{Method: "GET", URL: srv.URL, Expect: 200}).Run(ctx, (&recorder{}).exec())
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the step did not return after cancel")
	}
}

func TestHTTPUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := (&pipeline.HTTPSpec{Method: "GET", URL: url, Expect: 200}).Run(t.Context(), (&recorder{}).exec())
	if conveyor.ErrorCode(err) != conveyor.ESTEPFAILED {
		t.Errorf("err = %v, want step_failed", err)
	}
}
