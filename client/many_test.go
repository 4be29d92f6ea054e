package client_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

// gatedBatch submits a batch of n "gated" executions and waits until
// they all run; it returns the batch and its members.
func gatedBatch(t *testing.T, n *node, size int) (*conveyor.Batch, []string) {
	t.Helper()
	items := make([]conveyor.NewExecution, size)
	for i := range items {
		items[i] = conveyor.NewExecution{Pipeline: "gated"}
	}
	b, err := n.ctl.SubmitBatch(t.Context(), items, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, n.gate.waitStarted(t, size)
}

// nextMany reads the next message, failing the test on an error.
func nextMany(t *testing.T, s *client.ManyStream) client.ManyMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("next message: %v", err)
	}
	return m
}

// manyLog is what a test saw of a stream of many.
type manyLog struct {
	finals  map[string]int   // final events per execution
	lastSeq map[string]int64 // per execution
	last    client.ManyMessage
}

// note records m, failing the test on an execution's seq that does not
// rise.
func (l *manyLog) note(t *testing.T, m client.ManyMessage) {
	t.Helper()
	if l.finals == nil {
		l.finals, l.lastSeq = map[string]int{}, map[string]int64{}
	}
	l.last = m
	ev := m.Event
	if ev == nil {
		return
	}
	if last, ok := l.lastSeq[ev.ExecutionID]; ok && ev.Seq <= last {
		t.Fatalf("execution %s: %s seq %d after seq %d", ev.ExecutionID, ev.Type, ev.Seq, last)
	}
	l.lastSeq[ev.ExecutionID] = ev.Seq
	if ev.Type.Final() {
		l.finals[ev.ExecutionID]++
	}
}

// readOpening reads the opening messages of a stream of batch b whose
// members all run: a status message each, then the batch message.
func (l *manyLog) readOpening(t *testing.T, s *client.ManyStream, b *conveyor.Batch, members []string) {
	t.Helper()
	for range members {
		m := nextMany(t, s)
		if m.Event == nil || m.Event.Type != conveyor.EventStatus || m.Event.Status != conveyor.StatusRunning {
			t.Fatalf("opening message %+v, want a status message per running member", m)
		}
		l.note(t, m)
	}
	m := nextMany(t, s)
	if m.Batch == nil || m.Batch.BatchID != b.ID || m.Batch.Counts.Running != len(members) || m.Batch.Time.IsZero() {
		t.Fatalf("after the status messages: %+v, want the batch message", m)
	}
	l.note(t, m)
}

// readUntil reads and notes messages until done says stop for one.
func (l *manyLog) readUntil(t *testing.T, s *client.ManyStream, done func(client.ManyMessage) bool) {
	t.Helper()
	for {
		m := nextMany(t, s)
		l.note(t, m)
		if done(m) {
			return
		}
	}
}

// readToEnd reads and notes messages until io.EOF.
func (l *manyLog) readToEnd(t *testing.T, s *client.ManyStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		m, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("next message: %v", err)
		}
		l.note(t, m)
	}
}

// checkBatchEnd checks that every member ended completed, once, and that
// the last message was the final batch message.
func (l *manyLog) checkBatchEnd(t *testing.T, members []string) {
	t.Helper()
	for _, id := range members {
		if l.finals[id] != 1 {
			t.Errorf("member %s: %d final events, want 1", id, l.finals[id])
		}
	}
	if b := l.last.Batch; b == nil || b.Status != conveyor.StatusCompleted || b.Counts.Completed != len(members) || b.Total != len(members) {
		t.Errorf("last message %+v, want the final batch message", l.last)
	}
}

func finalOf(id string) func(client.ManyMessage) bool {
	return func(m client.ManyMessage) bool {
		return m.Event != nil && m.Event.ExecutionID == id && m.Event.Type.Final()
	}
}

func TestWatchManyFollowsABatchToTheEnd(t *testing.T) {
	t.Parallel()
	n := setup(t, 3, nil)
	b, members := gatedBatch(t, n, 3)
	s, err := n.ctl.WatchMany(t.Context(), client.ManyFilter{Batch: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var log manyLog
	log.readOpening(t, s, b, members)
	for _, id := range members {
		n.gate.open(id)
	}
	log.readToEnd(t, s)
	log.checkBatchEnd(t, members)
	if _, err := s.Next(t.Context()); !errors.Is(err, io.EOF) {
		t.Errorf("Next after the end: %v, want io.EOF", err)
	}
}

// TestWatchManySurvivesADroppedConnection cuts the stream's connection
// after one member ended; another ends while the client is away. The
// stream reconnects by itself and the caller sees every member's final
// event once.
func TestWatchManySurvivesADroppedConnection(t *testing.T) {
	t.Parallel()
	n := setup(t, 3, nil)
	b, members := gatedBatch(t, n, 3)
	proxy := newCutter(t, n.url)
	s, err := newClient(t, proxy.url).WatchMany(t.Context(), client.ManyFilter{Batch: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var log manyLog
	// Opening messages first: a member that ended before the stream
	// opened would have only its status message.
	log.readOpening(t, s, b, members)
	n.gate.open(members[0])
	log.readUntil(t, s, finalOf(members[0]))

	proxy.cut()
	n.gate.open(members[1])
	n.waitStatus(t, members[1], conveyor.StatusCompleted) // ended while the client was away
	log.readUntil(t, s, finalOf(members[1]))

	n.gate.open(members[2])
	log.readToEnd(t, s)
	log.checkBatchEnd(t, members)
	if got := proxy.connections(); got < 2 {
		t.Errorf("%d connections, want a reconnection", got)
	}
}

// TestWatchManyRefusals: what trying again cannot fix is an error, from
// WatchMany (a refused handshake) or the first Next (an error message).
func TestWatchManyRefusals(t *testing.T) {
	t.Parallel()
	n := setup(t, 1, func(c *server.Config) { c.APIKey = "0123456789abcdef-key" })
	ctx := t.Context()
	if _, err := n.ctl.WatchMany(ctx, client.ManyFilter{}); conveyor.ErrorCode(err) != conveyor.EBADREQUEST {
		t.Errorf("no filter: %v, want %s", err, conveyor.EBADREQUEST)
	}
	if _, err := newClient(t, n.url).WatchMany(ctx, client.ManyFilter{Pipeline: "gated"}); conveyor.ErrorCode(err) != conveyor.EUNAUTHORIZED {
		t.Errorf("no key: %v, want %s", err, conveyor.EUNAUTHORIZED)
	}
	s, err := n.ctl.WatchMany(ctx, client.ManyFilter{Batch: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Next(ctx); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("unknown batch: %v, want %s", err, conveyor.ENOTFOUND)
	}
	if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Next after the error: %v, want io.EOF", err)
	}
}
