// Package store holds what the SQL backends (store/sqlite,
// store/postgres) share that is not a lifecycle rule (those live in the
// root package): the list query's filter and paging, and the numbering of
// embedded migrations. Each backend keeps its own SQL dialect; this
// package writes only the portable parts.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// ListQuery builds the query of conveyor.Store.ListExecutions: columns
// (a comma-separated list) of the table executions, filtered by f, newest
// by num first. param adds a query argument and returns its placeholder
// ("?" or "$N"), encoding a time.Time as the backend stores times. It returns the query and the page size; the query asks
// for one execution more, which tells whether there is a next page (see
// CollectPage).
//
// Tag filters join execution_tags (key, value, num), one row per tag with
// its primary key in that order, and the scan is driven from the first
// tag's rows, which that key gives newest first: a rare tag among a
// million executions reads only its own rows.
func ListQuery(columns string, f conveyor.ListFilter, param func(v any) string) (query string, limit int, err error) {
	limit, before, err := f.Page()
	if err != nil {
		return "", 0, err
	}
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		switch c = strings.TrimSpace(c); {
		case c == "input" && !f.WithInput, c == "result" && !f.WithResult, c == "data" && !f.WithData, c == "checkpoint":
			cols[i] = "NULL" // left out of lists unless asked for (see ListFilter); a checkpoint always
		default:
			cols[i] = "e." + c
		}
	}
	return listQuery("SELECT "+strings.Join(cols, ", ")+" FROM executions e", "e", "execution_tags", f.Tags,
		func() (where []string) {
			if f.Status != "" {
				where = append(where, "e.status = "+param(string(f.Status)))
			}
			if f.Pipeline != "" {
				where = append(where, "e.pipeline = "+param(f.Pipeline))
			}
			if f.Batch != "" {
				where = append(where, "e.batch_id = "+param(f.Batch))
			}
			if f.IDPrefix != "" {
				where = append(where, idPrefixConds(f.IDPrefix, param)...)
			}
			if !f.FinishedSince.IsZero() {
				where = append(where, "e.finished_at >= "+param(f.FinishedSince)) // a time.Time: the backend's param encodes it
			}
			return where
		}, before, limit, param), limit, nil
}

// idPrefixConds selects the ids that start with prefix, a valid
// conveyor.ValidIDPrefix: a range of the id index, from prefix up to the
// next prefix of the same length, and, because the range alone would
// also take an id of another shape (such as "0a." for "09"), the prefix
// itself compared exactly on the few rows the range reads.
func idPrefixConds(prefix string, param func(v any) string) []string {
	conds := []string{
		"e.id >= " + param(prefix),
		fmt.Sprintf("substr(e.id, 1, %d) = %s", len(prefix), param(prefix)),
	}
	if next := nextIDPrefix(prefix); next != "" {
		conds = append(conds, "e.id < "+param(next))
	}
	return conds
}

// nextIDPrefix returns the first string of hex digits and dashes after
// every id that starts with prefix: prefix with its last digit raised
// (a carry drops the "f"s and dashes it passes), or "" when there is
// none (all "f"). Dashes are left out of the result: collations that
// skip punctuation (en_US) then order it as plain bytes would.
func nextIDPrefix(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case '-', 'f':
			continue
		case '9':
			b[i] = 'a'
		default:
			b[i]++
		}
		return string(b[:i+1])
	}
	return ""
}

// CollectThroughput reads the rows of a throughput query into the
// buckets of q: each row is a kind (0 started, 1 finished), a bucket
// index and a count. An index outside q is a backend's bug, reported
// rather than dropped.
func CollectThroughput(rows Rows, q conveyor.ThroughputQuery) ([]conveyor.ThroughputBucket, error) {
	bs := conveyor.ThroughputBuckets(q)
	for rows.Next() {
		var kind, i, n int64
		if err := rows.Scan(&kind, &i, &n); err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(bs)) {
			return nil, fmt.Errorf("throughput bucket %d outside 0..%d", i, len(bs)-1)
		}
		if kind == 0 {
			bs[i].Started = int(n)
		} else {
			bs[i].Finished = int(n)
		}
	}
	return bs, rows.Err()
}

// listQuery finishes a list query on selectSQL (a table aliased alias):
// a join of tagTable per tag, the conditions conds returns, the cursor
// before, newest first, one row more than limit. conds is called after
// the joins are written, so that positional placeholders ("?") take
// their arguments in the order they appear.
func listQuery(selectSQL, alias, tagTable string, tags []conveyor.Tag, conds func() []string,
	before int64, limit int, param func(v any) string) string {
	var b strings.Builder
	b.WriteString(selectSQL)
	order := alias + ".num"
	for i, t := range tags {
		ta := "t" + strconv.Itoa(i)
		fmt.Fprintf(&b, " JOIN %s %s ON %s.num = %s.num AND %s.key = %s AND %s.value = %s",
			tagTable, ta, ta, alias, ta, param(t.Key), ta, param(t.Value))
		if i == 0 {
			order = ta + ".num"
		}
	}
	where := conds()
	if before > 0 {
		where = append(where, order+" < "+param(before))
	}
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + order + " DESC LIMIT " + param(limit+1))
	return b.String()
}

// Rows are the rows of a query, as database/sql and pgx give them.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// AllLogs reads every kept log line of execution id from s, page by
// page of conveyor.MaxLogPageBytes.
func AllLogs(ctx context.Context, s conveyor.Store, id string) ([]conveyor.LogLine, error) {
	var lines []conveyor.LogLine
	for after := int64(0); ; {
		page, err := s.Logs(ctx, id, after, conveyor.MaxLogPageBytes)
		if err != nil {
			return nil, err
		}
		lines, after = append(lines, page.Lines...), page.Last
		if !page.More {
			return lines, nil
		}
	}
}

// CollectLogs reads the rows of a log query, lines numbered above after
// in order (each line and its number, as scan reads them), into a page
// of about maxBytes.
func CollectLogs(rows Rows, after int64, maxBytes int, scan func(Rows) (conveyor.LogLine, int64, error)) (*conveyor.LogPage, error) {
	page := &conveyor.LogPage{Lines: []conveyor.LogLine{}, Last: after}
	size := 0
	for rows.Next() {
		l, num, err := scan(rows)
		if err != nil {
			return nil, err
		}
		if size += l.Bytes(); size > maxBytes && len(page.Lines) > 0 {
			page.More = true
			return page, nil
		}
		l.Number = num
		page.Lines, page.Last = append(page.Lines, l), num
	}
	return page, rows.Err()
}

// CollectPage reads the rows of a list query (ListQuery, BatchQuery),
// each an item and its num, into a page of at most limit items and the
// cursor of the next page (nil on the last one): the query asks for one
// row more than limit, which tells whether there is a next page.
func CollectPage[T any](rows Rows, limit int, scan func(Rows) (T, int64, error)) ([]T, *string, error) {
	items := make([]T, 0, min(limit, 64))
	var last int64
	for rows.Next() {
		if len(items) == limit {
			cursor := strconv.FormatInt(last, 10)
			return items, &cursor, nil
		}
		item, num, err := scan(rows)
		if err != nil {
			return nil, nil, err
		}
		items, last = append(items, item), num
	}
	return items, nil, rows.Err()
}

// BatchQuery builds the query of conveyor.Store.ListBatches as ListQuery
// does for executions: columns (a select list over the table batches as
// b) filtered by f, newest first, tags joined from batch_tags.
func BatchQuery(columns string, f conveyor.BatchFilter, param func(v any) string) (query string, limit int, err error) {
	limit, before, err := f.Page()
	if err != nil {
		return "", 0, err
	}
	return listQuery("SELECT "+columns+" FROM batches b", "b", "batch_tags", f.Tags, func() []string {
		if f.Status != "" {
			return []string{batchStatusSQL[f.Status]}
		}
		return nil
	}, before, limit, param), limit, nil
}

// batchStatusSQL is conveyor.BatchStatus as conditions on the counts of a
// batches row b; storetest checks that the two agree.
var batchStatusSQL = map[conveyor.Status]string{
	conveyor.StatusPending:   "b.pending = b.total",
	conveyor.StatusRunning:   "b.pending < b.total AND b.completed + b.failed + b.cancelled < b.total",
	conveyor.StatusCompleted: "b.completed = b.total",
	conveyor.StatusFailed:    "b.completed + b.failed + b.cancelled = b.total AND b.failed > 0",
	conveyor.StatusCancelled: "b.completed + b.failed + b.cancelled = b.total AND b.failed = 0 AND b.cancelled > 0",
}

// Migration is one embedded schema change, a file NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the migrations matching pattern in fsys (such as
// "migrations/*.sql" of an embed.FS) in order. They must be numbered 1,
// 2, 3… without gaps.
func Migrations(fsys fs.FS, pattern string) ([]Migration, error) {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	ms := make([]Migration, len(names))
	for i, name := range names { // fs.Glob sorts
		base := path.Base(name)
		num, _, _ := strings.Cut(base, "_")
		if v, err := strconv.Atoi(num); err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want number %04d", base, i+1)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", base, err)
		}
		ms[i] = Migration{Version: i + 1, Name: base, SQL: string(text)}
	}
	return ms, nil
}

// CheckVersion fails when a database's newest applied migration is newer
// than the binary knows, which an older binary must not run against.
func CheckVersion(newest int, ms []Migration) error {
	if newest > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this binary's %d: upgrade conveyor", newest, len(ms))
	}
	return nil
}

// storedWebhook is an execution's own webhook as both backends keep it:
// with the host of its URL, which the triggers that make its deliveries
// copy (deliveries are bounded per host).
type storedWebhook struct {
	URL    string                  `json:"url"`
	Events []conveyor.WebhookEvent `json:"events"`
	Host   string                  `json:"host"`
}

// WebhookColumn is an execution's own webhook as stored, nil when none.
func WebhookColumn(w *conveyor.ExecutionWebhook) (*string, error) {
	if w == nil {
		return nil, nil
	}
	b, err := json.Marshal(storedWebhook{URL: w.URL, Events: w.Events, Host: conveyor.URLHost(w.URL)})
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EINVALID, "webhook cannot be stored: %v", err)
	}
	s := string(b)
	return &s, nil
}

// ScanWebhookColumn reads what WebhookColumn wrote (nil: none).
func ScanWebhookColumn(b []byte) (*conveyor.ExecutionWebhook, error) {
	if b == nil {
		return nil, nil
	}
	var w storedWebhook
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decode webhook: %w", err)
	}
	return &conveyor.ExecutionWebhook{URL: w.URL, Events: w.Events}, nil
}

// PolicyOf is policy(pipeline), the argument of RecoverInterrupted and
// RescueExpired: no retries when policy is nil.
func PolicyOf(policy func(pipeline string) conveyor.RetryPolicy, pipeline string) conveyor.RetryPolicy {
	if policy == nil {
		return conveyor.RetryPolicy{}
	}
	return policy(pipeline)
}
