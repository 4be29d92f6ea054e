package conveyor

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// The checks a Store makes before it writes or queries. They live here,
// once, rather than in each backend, so that every backend refuses the
// same input with the same code and message: store/storetest pins them,
// and the API hands them to clients unchanged.

// StorableTime reports whether t is set and in the years 1679 to 2261. The
// SQLite backend keeps times as Unix nanoseconds in an int64, which holds
// no more; PostgreSQL keeps far more, but both backends accept the same
// input.
func StorableTime(t time.Time) bool {
	return !t.IsZero() && t.Year() > 1678 && t.Year() < 2262
}

// ValidateNew returns EINVALID unless e may be created, as
// Store.CreateExecution requires: pending, attempt 0, no events, an ID and
// a storable CreatedAt, and any input or result valid JSON. A nil e is
// "no execution", so a nil in a batch fails like any other bad execution
// instead of panicking in the backend.
func (e *Execution) ValidateNew() error {
	switch {
	case e == nil:
		return Errorf(EINVALID, "no execution")
	case e.ID == "":
		return Errorf(EINVALID, "execution has no id")
	case e.Status != StatusPending:
		return Errorf(EINVALID, "new execution must be pending, not %q", e.Status)
	case e.Attempt != 0 || e.LastSeq != 0:
		return Errorf(EINVALID, "new execution must have attempt 0 and no events")
	case !StorableTime(e.CreatedAt):
		return Errorf(EINVALID, "execution has no valid creation time")
	case len(e.Input) > 0 && !json.Valid(e.Input):
		return Errorf(EINVALID, "execution input is not valid JSON")
	case !utf8.Valid(e.Input) || !StorableText(e.Pipeline):
		return Errorf(EINVALID, "execution input or pipeline name is not valid UTF-8")
	case len(e.Result) > 0 && !json.Valid(e.Result):
		return Errorf(EINVALID, "execution result is not valid JSON")
	case e.RetryOf != nil && !StorableText(*e.RetryOf):
		return Errorf(EINVALID, "execution retry_of is not storable text")
	case e.RunAt != nil && !StorableTime(*e.RunAt):
		return Errorf(EINVALID, "execution run_at %s cannot be stored", e.RunAt)
	}
	if e.Webhook != nil {
		if err := e.Webhook.Validate(); err != nil {
			return err
		}
	}
	return e.Tags.Validate()
}

// ValidateStored returns EINVALID unless ev may be written by
// Store.Append: it names an execution, has a positive seq and a storable
// time, and is of a type that goes in the event log. EventStatus and
// EventError exist only on streams, so storing one would replay it to
// every later reader as if it had happened.
func (ev *Event) ValidateStored() error {
	switch {
	case ev.ExecutionID == "":
		return Errorf(EINVALID, "event has no execution id")
	case ev.Type == "" || ev.Type == EventStatus || ev.Type == EventError:
		return Errorf(EINVALID, "event type %q is not stored", ev.Type)
	case ev.Seq <= 0:
		return Errorf(EINVALID, "event seq %d is not positive", ev.Seq)
	case !StorableTime(ev.Time):
		return Errorf(EINVALID, "event %s #%d of %s has no valid time", ev.Type, ev.Seq, ev.ExecutionID)
	case !ev.Progress.storable() || ev.Error != nil && (!StorableText(ev.Error.Code) || !StorableText(ev.Error.Message)):
		return Errorf(EINVALID, "event %s #%d of %s holds a NUL or invalid UTF-8 (see CleanText)", ev.Type, ev.Seq, ev.ExecutionID)
	case !storableJSON(ev.Result):
		return Errorf(EINVALID, "event %s #%d of %s has a result that is not valid JSON in UTF-8", ev.Type, ev.Seq, ev.ExecutionID)
	}
	return ev.validateReport()
}

// validateReport checks what data and stalled events carry.
func (ev *Event) validateReport() error {
	switch {
	case !storableJSON(ev.Data):
		return Errorf(EINVALID, "event %s #%d of %s has data that is not valid JSON in UTF-8", ev.Type, ev.Seq, ev.ExecutionID)
	case !StorableText(ev.Step):
		return Errorf(EINVALID, "event %s #%d of %s holds a NUL or invalid UTF-8 in its step (see CleanText)", ev.Type, ev.Seq, ev.ExecutionID)
	case ev.Type == EventStalled && (ev.Since == nil || !StorableTime(*ev.Since)):
		return Errorf(EINVALID, "stalled event #%d of %s has no valid since", ev.Seq, ev.ExecutionID)
	case ev.RetryAt != nil && (ev.Type != EventRetrying || !StorableTime(*ev.RetryAt)):
		return Errorf(EINVALID, "event %s #%d of %s: retry_at is for retrying events, at a storable time", ev.Type, ev.Seq, ev.ExecutionID)
	}
	return nil
}

// storableJSON reports whether b is empty (no value) or valid JSON in
// UTF-8.
func storableJSON(b []byte) bool {
	return utf8.Valid(b) && (len(b) == 0 || json.Valid(b))
}

// ValidateStored returns EINVALID unless l may be written by
// Store.AppendLogs: every text storable (see CleanText).
func (l *LogLine) ValidateStored() error {
	if !StorableText(l.Line) || !StorableText(l.Step) || !StorableText(l.Stream) {
		return Errorf(EINVALID, "log line of %s holds a NUL or invalid UTF-8 (see CleanText)", l.ExecutionID)
	}
	return nil
}

// Lookup returns ENOTFOUND for an id no execution can have, because no
// store keeps it as text (a NUL or invalid UTF-8, as a path segment can
// carry), so that backends answer "not found" alike instead of failing
// on the query.
func Lookup(id string) error {
	if !StorableText(id) {
		return ExecutionNotFound(id)
	}
	return nil
}

// Page checks f for Store.ListExecutions and returns what the query needs:
// how many executions the page holds (DefaultListLimit for a zero Limit)
// and, when f has a cursor, the number of the execution the previous page
// ended with (0 when it has none). It checks the pipeline and batch
// names and the id prefix, then the limit, the status and the cursor, so
// that a filter wrong in more than one way fails with the same message
// on every backend.
//
// A cursor is the decimal number of an execution, as both backends write
// it into ExecutionPage.NextCursor, and nothing else: no sign, no leading
// zeros, no spaces. Anything else is EINVALID rather than a page that
// starts somewhere unexpected.
func (f ListFilter) Page() (limit int, before int64, err error) {
	if !StorableText(f.Pipeline) {
		return 0, 0, Errorf(EINVALID, "pipeline %q is not valid UTF-8 without NUL", f.Pipeline)
	}
	if !StorableText(f.Batch) {
		return 0, 0, Errorf(EINVALID, "batch %q is not valid UTF-8 without NUL", f.Batch)
	}
	if err := ValidIDPrefix(f.IDPrefix); err != nil {
		return 0, 0, err
	}
	if !f.FinishedSince.IsZero() && !StorableTime(f.FinishedSince) {
		return 0, 0, Errorf(EINVALID, "finished-since time %s cannot be stored", f.FinishedSince)
	}
	if (f.WithInput || f.WithResult || f.WithData) && f.Limit > MaxPayloadListLimit {
		return 0, 0, Errorf(EINVALID, "with inputs, results or data, limit must be from 1 to %d", MaxPayloadListLimit)
	}
	return page(f.Limit, f.Status, f.Tags, f.Cursor)
}

// Page checks f for Store.ListBatches as ListFilter.Page does.
func (f BatchFilter) Page() (limit int, before int64, err error) {
	return page(f.Limit, f.Status, f.Tags, f.Cursor)
}

func page(limit int, status Status, tags []Tag, cursor string) (int, int64, error) {
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 0 || limit > MaxListLimit {
		return 0, 0, Errorf(EINVALID, "limit must be from 1 to %d", MaxListLimit)
	}
	if status != "" && !status.Valid() {
		return 0, 0, Errorf(EINVALID, "unknown status %q", status)
	}
	if len(tags) > MaxTags {
		return 0, 0, Errorf(EINVALID, "%d tag filters; at most %d are allowed", len(tags), MaxTags)
	}
	for _, t := range tags {
		if _, err := ParseTag(t.String()); err != nil {
			return 0, 0, err
		}
	}
	var before int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 || strconv.FormatInt(n, 10) != cursor {
			return 0, 0, Errorf(EINVALID, "malformed cursor %q", cursor)
		}
		before = n
	}
	return limit, before, nil
}

// ExecutionNotFound is the ENOTFOUND of an execution id that no execution
// has, the same from every backend and every method that looks one up.
func ExecutionNotFound(id string) error {
	return Errorf(ENOTFOUND, "execution %q not found", id)
}
