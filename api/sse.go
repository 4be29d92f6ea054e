package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// SSEHeartbeat is how often an idle Server-Sent Events stream gets a
// comment line, so proxies do not close it.
const SSEHeartbeat = 15 * time.Second

// streamSSE serves GET /executions/{id}/progress/sse: the same messages as
// the WebSocket stream as Server-Sent Events, each with `id:` = seq and
// `event:` = type. A client that reconnects with Last-Event-ID gets the
// stored events after it instead of a status message. The response ends
// after the final event. An unknown execution is a 404 before the stream
// starts.
func (s *Server) streamSSE(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := resumeAfter(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a server WriteTimeout would cut the stream

	var mu sync.Mutex // the heartbeat writes too
	started := false
	write := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			h := w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}

	ctx := r.Context()
	done := make(chan struct{})
	var heartbeat sync.WaitGroup
	defer heartbeat.Wait() // nothing may write after the handler returns
	defer close(done)
	heartbeat.Go(func() {
		t := time.NewTicker(SSEHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				ok := started
				mu.Unlock()
				if ok && write([]byte(": heartbeat\n\n")) != nil {
					return
				}
			}
		}
	})

	err = s.stream(ctx, id, after, func(ev conveyor.Event) error {
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		return write(fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data))
	})
	mu.Lock()
	defer mu.Unlock()
	if !started && err != nil && !errors.Is(err, errStreamEnded) && ctx.Err() == nil {
		s.writeError(w, r, err)
	}
}
