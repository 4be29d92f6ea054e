package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"strconv"
	"time"

	"github.com/conveyor-run/conveyor"
)

// ManyFilter selects the executions of a stream of many (WatchMany).
// Give at least one field; every one given must match. It is not a
// conveyor.ListFilter because a stream has no pages (Limit, Cursor), and
// its Status only chooses which executions open the stream: a selected
// execution is followed to its end whatever its status becomes.
type ManyFilter struct {
	// Batch selects the members of a batch. The stream then also sends
	// batch messages and ends after the one whose status is final.
	Batch    string
	Pipeline string
	// Status selects the executions with this status when the stream
	// opens; without Batch, executions that start later are followed only
	// if they match the other fields.
	Status conveyor.Status
	Tags   []conveyor.Tag
}

func (f ManyFilter) query() url.Values {
	q := url.Values{}
	if f.Batch != "" {
		q.Set("batch", f.Batch)
	}
	if f.Pipeline != "" {
		q.Set("pipeline", f.Pipeline)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	for _, t := range f.Tags {
		q.Add("tag", t.String())
	}
	return q
}

// ManyMessage is one message of a stream of many executions: exactly one
// of Event and Batch is set.
type ManyMessage struct {
	// Event is an event of one selected execution, as a stream of that
	// execution sends it. Each execution's first message is a status
	// message; on a batch stream, a member that was already final when
	// the stream opened gets only that (its Status is final).
	Event *conveyor.Event
	// Batch is the state of the batch, on a stream with ManyFilter.Batch:
	// sent after the opening status messages and when the counts move.
	Batch *BatchUpdate
}

// BatchUpdate is a batch message: how far a batch has come.
type BatchUpdate struct {
	BatchID  string                 `json:"batch_id"`
	Status   conveyor.Status        `json:"status"`
	Total    int                    `json:"total"`
	Counts   conveyor.Counts        `json:"counts"`
	Progress conveyor.BatchProgress `json:"progress"`
	Time     time.Time              `json:"timestamp"`
}

// ManyStream is a live WebSocket stream of the events of many executions.
//
// Like Stream it reopens itself when its connection drops. It resumes
// from the time of the last message it received, and the server then
// sends again the opening status messages and the final messages of
// executions that ended since (a little before, against clocks that
// differ): Next drops what it already returned, by execution and seq. It
// remembers the last seq of each execution it follows until the
// execution's final event; on a batch stream, whose every reconnection
// opens with every member, it remembers members to the end (a batch has
// at most conveyor.MaxBatchSize).
type ManyStream struct {
	conn     *streamConn
	query    url.Values       // of every connection, but for after
	batch    bool             // a stream of a batch
	since    time.Time        // where a reconnection resumes; zero: from the start
	lastSeqs map[string]int64 // per execution, the seq of the last event returned
	done     bool
}

// WatchMany opens a WebSocket stream of the executions f selects. A bad
// filter is a *conveyor.Error of code conveyor.EBADREQUEST from WatchMany;
// an unknown batch one of code conveyor.ENOTFOUND from the first Next.
func (c *Client) WatchMany(ctx context.Context, f ManyFilter) (*ManyStream, error) {
	s := &ManyStream{query: f.query(), batch: f.Batch != "", lastSeqs: map[string]int64{}}
	conn, err := c.openStream(ctx, "/executions/progress/ws", s.query)
	if err != nil {
		return nil, err
	}
	s.conn = conn
	return s, nil
}

// resumeQuery is the query of a (re)connection: from the last message.
func (s *ManyStream) resumeQuery() url.Values {
	if s.since.IsZero() {
		return s.query
	}
	q := maps.Clone(s.query)
	q.Set("after", strconv.FormatInt(s.since.UnixMilli(), 10))
	return q
}

// Next returns the next message. A stream of a batch ends after the
// batch message whose status is final: Next then returns io.EOF. Other
// streams go on until Close or ctx ends. An error message from the server
// is returned as its *conveyor.Error. A dropped connection is reopened
// (see ManyStream); when that fails (the server refuses with a 4xx, or
// about 9 s of tries found no server) Next returns the error.
func (s *ManyStream) Next(ctx context.Context) (ManyMessage, error) {
	for !s.done {
		b, err := s.conn.next(ctx, s.resumeQuery)
		if err != nil {
			s.done = true
			return ManyMessage{}, err
		}
		m, err := s.decode(b)
		if err != nil {
			s.done = true
			return ManyMessage{}, err
		}
		if m.Batch != nil {
			s.resumeAt(m.Batch.Time)
			s.done = m.Batch.Status.Final()
			return m, nil
		}
		if ev := m.Event; s.keep(ev) {
			return m, nil
		}
	}
	return ManyMessage{}, io.EOF
}

// decode reads a message: a batch message, an error message (returned as
// the error) or an execution's event.
func (s *ManyStream) decode(b []byte) (ManyMessage, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return ManyMessage{}, fmt.Errorf("decode stream message: %w", err)
	}
	if head.Type == "batch" {
		var u BatchUpdate
		if err := json.Unmarshal(b, &u); err != nil {
			return ManyMessage{}, fmt.Errorf("decode batch message: %w", err)
		}
		return ManyMessage{Batch: &u}, nil
	}
	var ev conveyor.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return ManyMessage{}, fmt.Errorf("decode stream message: %w", err)
	}
	if ev.Type == conveyor.EventError {
		if ev.Error == nil {
			return ManyMessage{}, errors.New("stream error without details")
		}
		return ManyMessage{}, ev.Error
	}
	return ManyMessage{Event: &ev}, nil
}

// keep reports whether ev is new to the caller, and notes it.
func (s *ManyStream) keep(ev *conveyor.Event) bool {
	if ev.Type != conveyor.EventStatus {
		// A status message carries the time its stream opened, yet on a
		// resumed stream a final message with an older time may follow
		// it: resuming from the status message's time could skip that.
		s.resumeAt(ev.Time)
	}
	if ev.ExecutionID == "" {
		return true // no execution to tell repeats by
	}
	last, known := s.lastSeqs[ev.ExecutionID]
	if known && ev.Seq <= last {
		return false // sent again after a reconnect
	}
	if ev.Type.Final() && !s.batch {
		// Only a batch stream sends an execution again after its final
		// event, so other streams need not remember it.
		delete(s.lastSeqs, ev.ExecutionID)
	} else {
		s.lastSeqs[ev.ExecutionID] = ev.Seq
	}
	return true
}

// resumeAt notes the time of a message a reconnection resumes from.
func (s *ManyStream) resumeAt(t time.Time) {
	if !t.IsZero() {
		s.since = t
	}
}

// Close closes the stream.
func (s *ManyStream) Close() error {
	return s.conn.close()
}
