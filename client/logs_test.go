package client_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

// talker is the handler of the "talk" pipeline: it logs each line the
// test sends until the test closes done.
type talker struct {
	lines chan string
	done  chan struct{}
}

func (tk *talker) run(ctx context.Context, x *conveyor.Exec) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l := <-tk.lines:
			x.Log(l)
		case <-tk.done:
			return nil
		}
	}
}

func (tk *talker) say(t *testing.T, line string) {
	t.Helper()
	select {
	case tk.lines <- line:
	case <-time.After(10 * time.Second):
		t.Fatal("no execution took the line")
	}
}

// setupTalk starts a node with the "talk" pipeline and submits one.
func setupTalk(t *testing.T) (*node, *talker, *conveyor.Execution) {
	t.Helper()
	tk := &talker{lines: make(chan string), done: make(chan struct{})}
	n := setup(t, 1, func(c *server.Config) {
		c.Pipelines = append(c.Pipelines, &conveyor.Pipeline{Name: "talk", Handler: tk.run})
	})
	ex, err := n.ctl.Submit(t.Context(), "talk", nil)
	if err != nil {
		t.Fatal(err)
	}
	return n, tk, ex
}

func recvLine(t *testing.T, c <-chan conveyor.LogLine) conveyor.LogLine {
	t.Helper()
	select {
	case l := <-c:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no log line within 10s")
		panic("unreachable")
	}
}

// TestFollowLogsSurvivesADroppedConnection: FollowLogs gives each line
// once, in order, across a cut connection, and returns the final event.
func TestFollowLogsSurvivesADroppedConnection(t *testing.T) {
	t.Parallel()
	n, tk, ex := setupTalk(t)
	proxy := newCutter(t, n.url)
	got := make(chan conveyor.LogLine, 10)
	type result struct {
		final conveyor.Event
		err   error
	}
	res := make(chan result, 1)
	go func() {
		final, err := newClient(t, proxy.url).FollowLogs(t.Context(), ex.ID, 0, func(l conveyor.LogLine) error {
			got <- l
			return nil
		})
		res <- result{final, err}
	}()
	tk.say(t, "one")
	one := recvLine(t, got)
	proxy.cut()
	tk.say(t, "two")
	two := recvLine(t, got)
	close(tk.done)
	r := <-res
	if r.err != nil || r.final.Type != conveyor.EventCompleted || r.final.ExecutionID != ex.ID {
		t.Fatalf("FollowLogs = %+v, %v; want the completed event", r.final, r.err)
	}
	if one.Line != "one" || two.Line != "two" || two.Number <= one.Number || one.ExecutionID != ex.ID || one.Stream != "log" {
		t.Fatalf("lines %+v, %+v; want one then two, numbered", one, two)
	}
	if len(got) != 0 {
		t.Fatalf("a line came twice: %+v", <-got)
	}
	if proxy.connections() < 2 {
		t.Fatalf("%d connections, want a reconnect after the cut", proxy.connections())
	}
	// An unknown execution is the server's not_found.
	if _, err := n.ctl.FollowLogs(t.Context(), "nope", 0, func(conveyor.LogLine) error { return nil }); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Fatalf("FollowLogs of an unknown execution: %v, want not_found", err)
	}
}

// TestWatchWithLogFunc: a stream with LogFunc gives the log lines to it
// and only events to its caller.
func TestWatchWithLogFunc(t *testing.T) {
	t.Parallel()
	n, tk, ex := setupTalk(t)
	var lines []string
	s, err := n.ctl.WatchWith(t.Context(), ex.ID, &client.WatchOpts{LogFunc: func(l conveyor.LogLine) { lines = append(lines, l.Line) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tk.say(t, "a")
	tk.say(t, "b")
	close(tk.done)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var types []conveyor.EventType
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
	}
	if !slices.Equal(lines, []string{"a", "b"}) {
		t.Errorf("LogFunc got %q, want a, b", lines)
	}
	if slices.Contains(types, "log") || types[len(types)-1] != conveyor.EventCompleted {
		t.Errorf("Next returned %v; want events only, completed last", types)
	}
}
