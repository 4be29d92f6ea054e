package engine

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// lockedBuffer is a log the engine writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFinalLogLineHasErrorOnlyOnFailure: the line that ends an execution
// names its error when it failed and has no error attribute otherwise.
func TestFinalLogLineHasErrorOnlyOnFailure(t *testing.T) {
	t.Parallel()
	var log lockedBuffer
	pipelines := map[string]*conveyor.Pipeline{
		"ok":   {Name: "ok", Handler: func(context.Context, *conveyor.Exec) error { return nil }},
		"boom": {Name: "boom", Handler: func(context.Context, *conveyor.Exec) error { return errors.New("out of paint") }},
	}
	e, pub := startEngine(t, Config{Pipelines: pipelines, PollInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	for _, tt := range []struct {
		pipeline, msg, want string // want: the error attribute, "" for none
	}{
		{"ok", `msg="execution completed"`, ""},
		{"boom", `msg="execution failed"`, `error="step_failed: out of paint"`},
	} {
		ex, err := e.Submit(t.Context(), tt.pipeline, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub.waitFinal(t, ex.ID)
		line := logLine(t, &log, tt.msg, ex.ID)
		switch {
		case tt.want == "" && strings.Contains(line, "error="):
			t.Errorf("%s: logged with an error attribute: %s", tt.pipeline, line)
		case tt.want != "" && !strings.Contains(line, tt.want):
			t.Errorf("%s: logged without %s: %s", tt.pipeline, tt.want, line)
		}
	}
}

// logLine waits for the line of log that holds both msg and id: the
// engine writes an execution's last line just after publishing its final
// event.
func logLine(t *testing.T, log *lockedBuffer, msg, id string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for l := range strings.Lines(log.String()) {
			if strings.Contains(l, msg) && strings.Contains(l, id) {
				return l
			}
		}
	}
	t.Fatalf("no log line with %s for %s in:\n%s", msg, id, log)
	return ""
}
