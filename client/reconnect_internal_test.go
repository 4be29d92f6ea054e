package client

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// failingDial is a dialFunc whose first fails tries fail (refused if
// refuse) and the rest succeed; tries counts them.
func failingDial(fails int, refuse bool, tries *int) dialFunc {
	return func(context.Context) (*websocket.Conn, bool, error) {
		*tries++
		if *tries <= fails {
			return nil, refuse, errors.New("connection refused")
		}
		return nil, false, nil
	}
}

func TestRedialBacksOffThenGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r redialer
		tries := 0
		start := time.Now()
		_, err := r.redial(t.Context(), errors.New("dropped"), failingDial(redialAttempts, false, &tries))
		if err == nil || tries != redialAttempts {
			t.Fatalf("after %d tries: %v, want an error after %d", tries, err, redialAttempts)
		}
		// 0, 50ms, 100ms, …, 1.6s, then 2s each.
		want := time.Duration(0)
		for i := range redialAttempts {
			want += backoff(i)
		}
		if got := time.Since(start); got != want {
			t.Errorf("waited %s, want %s", got, want)
		}
		if backoff(0) != 0 || backoff(1) != redialFirstWait || backoff(redialAttempts) != redialMaxWait {
			t.Errorf("backoff %s, %s, …, %s", backoff(0), backoff(1), backoff(redialAttempts))
		}
	})
}

func TestRedialStartsAfreshAfterAMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r redialer
		tries := 0
		start := time.Now()
		if _, err := r.redial(t.Context(), errors.New("dropped"), failingDial(2, false, &tries)); err != nil {
			t.Fatal(err)
		}
		if got, want := time.Since(start), backoff(1)+backoff(2); tries != 3 || got != want {
			t.Fatalf("%d tries in %s, want 3 in %s", tries, got, want)
		}
		// The new connection drops before any message: the next try waits.
		start, tries = time.Now(), 0
		if _, err := r.redial(t.Context(), errors.New("dropped"), failingDial(0, false, &tries)); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != backoff(3) {
			t.Errorf("a drop without a message in between waited %s, want %s", got, backoff(3))
		}
		// After a message the next drop is retried at once.
		r.received()
		start = time.Now()
		if _, err := r.redial(t.Context(), errors.New("dropped"), failingDial(0, false, &tries)); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("a drop after a message waited %s, want 0", got)
		}
	})
}

func TestRedialStopsAtARefusalOrTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r redialer
		tries := 0
		if _, err := r.redial(t.Context(), errors.New("dropped"), failingDial(1, true, &tries)); err == nil || tries != 1 {
			t.Errorf("refused: %d tries, %v; want 1 and the refusal", tries, err)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		r, tries = redialer{}, 0
		_, err := r.redial(ctx, errors.New("dropped"), failingDial(redialAttempts, false, &tries))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("context ended while waiting: %v after %d tries, want its error", err, tries)
		}
	})
}
