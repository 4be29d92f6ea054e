package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// next returns the next notice, failing after 10 s.
func (n *notices) next() conveyor.Notice {
	n.t.Helper()
	select {
	case got := <-n.ch:
		return got
	case <-time.After(10 * time.Second):
		n.t.Fatal("no notice within 10s")
		return conveyor.Notice{}
	}
}

// TestAnnounce: announced events reach the other node in order, each
// with itself and its Prev, in payloads PostgreSQL takes; one too large
// for a payload comes as a mark, whose receivers read the store.
func TestAnnounce(t *testing.T) {
	t.Parallel()
	a, b := twoNodes(t)
	n := listen(t, b)
	at := base.Add(1500 * time.Microsecond)
	var evs []conveyor.Announced
	for i := range 100 { // about 25 KiB of JSON: several payloads
		pct := float64(i)
		evs = append(evs, conveyor.Announced{Prev: int64(i), Event: conveyor.Event{
			Type: conveyor.EventProgress, ExecutionID: "x", Seq: int64(i + 1), Time: at, Attempt: 1,
			Progress: &conveyor.Progress{CurrentStep: 1, Percentage: &pct, CurrentStepName: "step", Message: strings.Repeat("m", 150)}}})
	}
	big := json.RawMessage(fmt.Sprintf(`{"blob": %q}`, strings.Repeat("b", maxLivePayload)))
	evs = append(evs,
		conveyor.Announced{Prev: 100, Event: conveyor.Event{Type: conveyor.EventData, ExecutionID: "x", Seq: 101, Time: at, Attempt: 1, Data: big}},
		conveyor.Announced{Prev: 0, Event: conveyor.Event{Type: conveyor.EventStarted, ExecutionID: "y", Seq: 1, Time: at, Attempt: 1, Status: conveyor.StatusRunning}})
	if err := a.Announce(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	for _, an := range append(evs[:100:100], evs[101]) {
		got := n.next()
		if got.Kind != conveyor.NoticeEvents || got.ExecutionID != an.Event.ExecutionID || got.Seq != an.Event.Seq ||
			got.Prev != an.Prev || got.Event == nil || !reflect.DeepEqual(*got.Event, an.Event) {
			t.Fatalf("notice %+v (event %+v), want %s #%d prev %d carrying %+v", got, got.Event, an.Event.ExecutionID, an.Event.Seq, an.Prev, an.Event)
		}
	}
	n.want(conveyor.Notice{Kind: conveyor.NoticeEvents, ExecutionID: "x", Seq: 101}) // the mark of the one too large
}

func TestDeliverLive(t *testing.T) {
	ev := conveyor.Event{Type: conveyor.EventProgress, ExecutionID: "x", Seq: 7, Time: base, Attempt: 1}
	line, err := conveyor.EncodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	var got []conveyor.Notice
	payload := strings.Join([]string{"6 " + string(line), "", "no-space", "-1 " + string(line), "x " + string(line), "5 {bad", `3 {"type":"progress"}`, "6 " + string(line)}, "\n")
	deliver(&pgconn.Notification{Channel: channelLive, Payload: payload}, func(n conveyor.Notice) { got = append(got, n) })
	if len(got) != 2 {
		t.Fatalf("%d notices from one payload with two good lines: %+v", len(got), got)
	}
	for _, n := range got {
		if n.Kind != conveyor.NoticeEvents || n.ExecutionID != "x" || n.Seq != 7 || n.Prev != 6 || n.Event == nil || !reflect.DeepEqual(*n.Event, ev) {
			t.Errorf("notice %+v, want x #7 prev 6 carrying the event", n)
		}
	}
}

// TestUnwatchedNotifiesNoOne: a node sends neither announcements nor
// event marks, which only feed other nodes' streams, while no other node
// has streams open; it does from the moment one says it has, and stops
// when it says it has none. The node that opens its first stream
// resyncs its streams once the others have had time to hear it: what
// they stored before they did, nobody notified.
func TestUnwatchedNotifiesNoOne(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, dbURL := pgtest.NewDatabase(t)
	a, b := open(t, dbURL, "a"), open(t, dbURL, "b")
	watcher, err := pgx.Connect(ctx, dbURL) // not a node: it never says hello
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.Background())
	if _, err := watcher.Exec(ctx, "LISTEN "+channelLive+"; LISTEN "+channelEvents); err != nil {
		t.Fatal(err)
	}
	next := func() *pgconn.Notification {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := watcher.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return n
	}
	waitUnwatched := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); a.unwatched.Load() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("unwatched = %v after 10s, want %v", !want, want)
			}
		}
	}
	ev := conveyor.Event{Type: conveyor.EventProgress, ExecutionID: "x", Seq: 2, Time: base, Attempt: 1}
	silent := func() {
		t.Helper()
		if err := a.Announce(ctx, []conveyor.Announced{{Event: ev, Prev: 1}}); err != nil {
			t.Fatal(err)
		}
		a.notifyEvents(ctx, []eventMark{{"x", 2}})
		// What a sent would come before what the watcher sends after it.
		if _, err := watcher.Exec(ctx, "NOTIFY "+channelLive+", 'after'"); err != nil {
			t.Fatal(err)
		}
		if n := next(); n.Payload != "after" {
			t.Fatalf("unwatched, node a notified %s %q", n.Channel, n.Payload)
		}
	}
	heard := func() {
		t.Helper()
		if err := a.Announce(ctx, []conveyor.Announced{{Event: ev, Prev: 1}}); err != nil {
			t.Fatal(err)
		}
		if n := next(); n.Channel != channelLive || !strings.Contains(n.Payload, `"execution_id":"x"`) {
			t.Fatalf("watched, got %s %q, want the announcement", n.Channel, n.Payload)
		}
		a.notifyEvents(ctx, []eventMark{{"x", 2}})
		if n := next(); n.Channel != channelEvents || n.Payload != "x:2" {
			t.Fatalf("watched, got %s %q, want the mark x:2", n.Channel, n.Payload)
		}
	}

	listen(t, a)
	bNotices := listen(t, b) // with no streams open
	waitUnwatched(true)
	silent()

	b.Watching(true)
	bNotices.want(conveyor.Notice{Kind: conveyor.NoticeResync})
	waitUnwatched(false)
	heard()

	b.Watching(false)
	waitUnwatched(true)
	silent()
}
