package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/conveyor-run/conveyor"
)

// Transports of the fanout scenario's subscribers.
const (
	WebSocket = "websocket"
	SSE       = "sse"
)

// subscription is one subscriber's stream: the Go client's WebSocket
// stream, or an sseStream.
type subscription interface {
	Next(ctx context.Context) (conveyor.Event, error)
	Close() error
}

// sseStream reads a Server-Sent Events stream; the Go client speaks
// WebSocket only. It does not reconnect: a subscriber whose
// stream breaks is an error of the run.
type sseStream struct {
	body   io.ReadCloser
	r      *bufio.Reader
	cancel context.CancelFunc
	once   sync.Once
}

// watchSSE opens the SSE stream at baseURL+path. The stream outlives ctx,
// which bounds only the opening; Close ends it.
func watchSSE(ctx context.Context, hc *http.Client, baseURL, apiKey, path string) (*sseStream, error) {
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel) // until the answer's head is in
	defer stop()
	req, err := http.NewRequestWithContext(streamCtx, http.MethodGet, baseURL+path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open SSE stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("open SSE stream: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	// A small buffer: the client ends of 10,000 subscribers share the
	// machine with the server.
	return &sseStream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 512), cancel: cancel}, nil
}

// Next returns the next event; io.EOF when the stream ends. Comments
// (heartbeats) and the fields other than data: are skipped.
func (s *sseStream) Next(ctx context.Context) (conveyor.Event, error) {
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	var data []byte
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			if ctx.Err() != nil {
				return conveyor.Event{}, ctx.Err()
			}
			return conveyor.Event{}, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0 && data != nil:
			var ev conveyor.Event
			if err := json.Unmarshal(data, &ev); err != nil {
				return ev, fmt.Errorf("SSE data %q: %w", data, err)
			}
			return ev, nil
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data[:0], line[len("data: "):]...)
		}
	}
}

// Close ends the stream.
func (s *sseStream) Close() error {
	s.once.Do(s.cancel)
	return s.body.Close()
}
