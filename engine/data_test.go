package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

// TestDataLines: ::data lines merge into the execution's data as JSON
// merge patches; each merge is published and stored as a data event with
// the whole data, and a line that cannot be merged is logged with why
// while the data stays as it was.
func TestDataLines(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		big := strings.Repeat("x", 40<<10) // two of them are over MaxDataBytes
		n.start(map[string]string{
			"data": execStep(`echo '::data {"rows": 1, "phase": "load", "nested": {"a": 1, "b": 2}}'
echo '::data {"rows": 1200, "phase": null, "nested": {"b": null, "c": 3}, "url": "https://example.com/r"}'
echo '::data {"rows": '
echo '::data [1, 2]'
echo '::data {"a": "` + big + `"}'
echo '::data {"b": "` + big + `"}'
echo '::data {"a": null}'
echo done`),
		})
		ex := n.submit("data")
		got := n.waitFinal(ex.ID)
		const want = `{"rows": 1200, "nested": {"a": 1, "c": 3}, "url": "https://example.com/r"}`
		if got.Status != conveyor.StatusCompleted || !jsonEqual(got.Data, want) {
			t.Fatalf("%s with data %s, want completed with %s", got.Status, got.Data, want)
		}

		// Stored: both merges, as data events with the whole data.
		events, err := n.store.Events(t.Context(), ex.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var stored []string
		for _, ev := range events {
			if ev.Type == conveyor.EventData {
				stored = append(stored, string(ev.Data))
			}
		}
		if len(stored) == 0 || !jsonEqual(json.RawMessage(stored[len(stored)-1]), want) {
			t.Errorf("stored data events %s, want the last to be %s", stored, want)
		}
		// Published before the final event, with the whole data.
		n.finalPublished(ex.ID)
		n.mu.Lock()
		var lastData conveyor.Event
		for _, ev := range n.published {
			if ev.ExecutionID == ex.ID && ev.Type == conveyor.EventData {
				lastData = ev
			}
		}
		n.mu.Unlock()
		if !jsonEqual(lastData.Data, want) {
			t.Errorf("last data event published: %s, want %s", lastData.Data, want)
		}

		// The three refused lines are logged with why; "done" too.
		lines := n.waitLogs(ex.ID, 4)
		for i, why := range []string{"data is not valid JSON", "data must be a JSON object", "at most 65536 are kept"} {
			if l := lines[i]; l.Stream != "stderr" || !strings.HasPrefix(l.Line, "::data ") || !strings.Contains(l.Line, "(refused: ") || !strings.Contains(l.Line, why) {
				t.Errorf("log line %d: %s %.80q…, want the refused line on stderr saying %q", i, l.Stream, l.Line, why)
			}
		}
	})
}

// TestStallAlert: a step that reports nothing for its stall_after raises
// one stalled event (stored, published, and the execution's StalledSince
// set) per stall; its next report, a log line here, ends the stall.
func TestStallAlert(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		dir := t.TempDir()
		gate := filepath.Join(dir, "go")
		n.start(map[string]string{
			"stalls": "stall_after: 250ms\n" + execStep(`echo '::progress 1/2 waiting'
while [ ! -f '`+gate+`' ]; do sleep 0.02; done
echo 'moving again'
echo '::progress 2/2 done'`),
		})
		ex := n.submit("stalls")

		stalled := n.publishedEvent(ex.ID, conveyor.EventStalled)
		if stalled.Step != "run" || stalled.Since == nil || stalled.Seq == 0 {
			t.Fatalf("stalled event %+v, want step run with since", stalled)
		}
		var during *conveyor.Execution
		waitFor(t, "the store to show the stall", func() bool {
			var err error
			during, err = n.store.GetExecution(t.Context(), ex.ID)
			return err == nil && during.StalledSince != nil
		})
		if !during.StalledSince.Equal(*stalled.Since) {
			t.Errorf("stalled_since %s, want the event's since %s", during.StalledSince, stalled.Since)
		}
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := n.waitFinal(ex.ID); got.Status != conveyor.StatusCompleted || got.StalledSince != nil {
			t.Fatalf("%s, stalled since %v; want completed, not stalled", got.Status, got.StalledSince)
		}

		// Every stall is followed by a report before the next one: once
		// per stall. (A slow start may stall too; that is a stall.)
		events, err := n.store.Events(t.Context(), ex.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ev := range events {
			types = append(types, string(ev.Type))
		}
		for i, typ := range types {
			if typ == string(conveyor.EventStalled) && (i+1 == len(types) || types[i+1] == string(conveyor.EventStalled)) {
				t.Errorf("stored events %v: a stall not ended by a report", types)
			}
		}
		if !strings.Contains(strings.Join(types, " "), "stalled progress") {
			t.Errorf("stored events %v, want a stall ended by progress", types)
		}
	})
}

// TestStallFails: on_stall: fail ends the execution failed with error
// code stalled, the step's processes stopped as a cancel stops them.
func TestStallFails(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		n.start(map[string]string{
			"stuck": "stall_after: 200ms\non_stall: fail\n" + execStep(`echo started; sleep 60`),
		})
		ex := n.submit("stuck")
		got := n.waitFinal(ex.ID)
		if got.Status != conveyor.StatusFailed || got.Error == nil || got.Error.Code != conveyor.ESTALLED {
			t.Fatalf("%s %+v, want failed stalled", got.Status, got.Error)
		}
		if !strings.Contains(got.Error.Message, `step "run" reported no progress, data or log line for 200ms`) {
			t.Errorf("error %q", got.Error.Message)
		}
		lines, err := store.AllLogs(t.Context(), n.store, ex.ID)
		if err != nil || len(lines) != 1 {
			t.Fatalf("logs %+v, %v; want the one line", lines, err)
		}
	})
}

// publishedEvent waits for the first event of type typ published for id.
func (n *node) publishedEvent(id string, typ conveyor.EventType) conveyor.Event {
	n.t.Helper()
	var found conveyor.Event
	waitFor(n.t, string(typ)+" event of "+id, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, ev := range n.published {
			if ev.ExecutionID == id && ev.Type == typ {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

func jsonEqual(got json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && equalJSON(a, b)
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
