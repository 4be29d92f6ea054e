package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// TestDataAndStallMessages: a step's data reaches every stream as data
// messages with the whole data, a stall as a stalled message with the
// step and since (the execution shows stalled_since until the next
// report), and a resumed stream replays both.
func TestDataAndStallMessages(t *testing.T) {
	t.Parallel()
	begin, resume := make(chan struct{}), make(chan struct{})
	step := func(ctx context.Context, x *conveyor.Exec) error {
		<-begin // once the test watches
		if err := x.SetData(map[string]any{"rows": 1, "phase": "load"}); err != nil {
			return err
		}
		// Over 64 KiB: refused with an error, the data as it was.
		if err := x.SetData(map[string]any{"huge": strings.Repeat("x", conveyor.MaxDataBytes)}); conveyor.ErrorCode(err) != conveyor.EINVALID {
			return fmt.Errorf("an oversized SetData returned %w, want an invalid error", err)
		}
		select { // report nothing: the step stalls
		case <-resume:
		case <-ctx.Done():
			return ctx.Err()
		}
		return x.SetData(map[string]any{"rows": 2, "phase": nil})
	}
	h := setup(t, 1, &conveyor.Pipeline{Name: "stalls", Stall: conveyor.Stall{After: 150 * time.Millisecond},
		Steps: []conveyor.Step{{Name: "load", Kind: "go", Run: step}}})
	ex := h.submit("stalls", nil)
	ws := h.watch(ex.ID)
	// The stream's status message first: the server reads it after the
	// handshake the client returns from, and data reported before that
	// read would come in it rather than as a data message.
	types := []conveyor.EventType{nextEvent(t, ws).Type}
	close(begin)

	var stalled, firstData conveyor.Event
	// The stall after the data (a slow start may stall before it too).
	for firstData.Seq == 0 || stalled.Seq <= firstData.Seq {
		ev := nextEvent(t, ws)
		types = append(types, ev.Type)
		switch ev.Type {
		case conveyor.EventData:
			firstData = ev
		case conveyor.EventStalled:
			stalled = ev
		}
	}
	if string(firstData.Data) != `{"phase":"load","rows":1}` || firstData.Seq == 0 {
		t.Errorf("data message %+v, want the whole data with a seq", firstData)
	}
	if stalled.Step != "load" || stalled.Since == nil || stalled.Seq <= firstData.Seq {
		t.Errorf("stalled message %+v, want step load, a since and a seq after the data", stalled)
	}

	// While it stalls: the execution says since when, and a fresh stream
	// opens with the data in its status message.
	var during struct {
		StalledSince *time.Time     `json:"stalled_since"`
		Data         map[string]any `json:"data"`
	}
	h.getJSON("/executions/"+ex.ID, http.StatusOK, &during)
	if during.StalledSince == nil || !during.StalledSince.Equal(*stalled.Since) || during.Data["rows"] != 1.0 {
		t.Errorf("execution while stalled: stalled_since %v, data %v; want %s and rows 1", during.StalledSince, during.Data, stalled.Since)
	}
	fresh := h.watch(ex.ID)
	if st := nextEvent(t, fresh); st.Type != conveyor.EventStatus || string(st.Data) != `{"phase":"load","rows":1}` {
		t.Errorf("fresh stream opens with %s data %s, want status with the data", st.Type, st.Data)
	}

	close(resume)
	for !slices.ContainsFunc(types, conveyor.EventType.Final) {
		ev := nextEvent(t, ws)
		types = append(types, ev.Type)
		if ev.Type == conveyor.EventData && string(ev.Data) != `{"rows":2}` {
			t.Errorf("second data message %s, want the merged {\"rows\":2}", ev.Data)
		}
	}
	if got := h.waitStatus(ex.ID, conveyor.StatusCompleted); got.StalledSince != nil || string(got.Data) != `{"rows":2}` {
		t.Errorf("completed: stalled_since %v, data %s", got.StalledSince, got.Data)
	}

	// A stream resumed after the first data message replays the stall,
	// the second data message and the end.
	resp := getSSE(t, h.url+"/executions/"+ex.ID+"/progress/sse", strconv.FormatInt(firstData.Seq, 10))
	defer resp.Body.Close()
	var replayed []string
	for _, ev := range readSSE(t, resp.Body) {
		if ev.event != string(conveyor.EventProgress) {
			replayed = append(replayed, ev.event)
		}
	}
	if want := []string{"stalled", "data", "completed"}; !slices.Equal(replayed, want) {
		t.Errorf("resumed stream %v, want %v (all messages: %v)", replayed, want, types)
	}
}
