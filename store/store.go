// Package store holds what the SQL backends (store/sqlite,
// store/postgres) share that is not a lifecycle rule (those live in the
// root package): the list query's filter and paging, and the numbering of
// embedded migrations. Each backend keeps its own SQL dialect; this
// package writes only the portable parts.
package store

import (
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
// Page).
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
		cols[i] = "e." + strings.TrimSpace(c)
	}
	var b strings.Builder
	b.WriteString("SELECT " + strings.Join(cols, ", ") + " FROM executions e")
	order := "e.num"
	for i, t := range f.Tags {
		alias := "t" + strconv.Itoa(i)
		fmt.Fprintf(&b, " JOIN execution_tags %s ON %s.num = e.num AND %s.key = %s AND %s.value = %s",
			alias, alias, alias, param(t.Key), alias, param(t.Value))
		if i == 0 {
			order = alias + ".num"
		}
	}
	var where []string
	if f.Status != "" {
		where = append(where, "e.status = "+param(string(f.Status)))
	}
	if f.Pipeline != "" {
		where = append(where, "e.pipeline = "+param(f.Pipeline))
	}
	if f.Batch != "" {
		where = append(where, "e.batch_id = "+param(f.Batch))
	}
	if !f.FinishedSince.IsZero() {
		where = append(where, "e.finished_at >= "+param(f.FinishedSince)) // a time.Time: the backend's param encodes it
	}
	if before > 0 {
		where = append(where, order+" < "+param(before))
	}
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + order + " DESC LIMIT " + param(limit+1))
	return b.String(), limit, nil
}

// Page collects the rows of a list query (ListQuery, BatchQuery) into a
// page of at most limit items: add each row's item and num until Full.
type Page[T any] struct {
	items []T
	limit int
	last  int64
	next  *string
}

// NewPage starts a page of at most limit items.
func NewPage[T any](limit int) *Page[T] {
	return &Page[T]{items: make([]T, 0, min(limit, 64)), limit: limit}
}

// Full reports whether the page holds limit items; a row read then means
// there is a next page, whose cursor Full sets.
func (p *Page[T]) Full() bool {
	if len(p.items) < p.limit {
		return false
	}
	cursor := strconv.FormatInt(p.last, 10)
	p.next = &cursor
	return true
}

// Add appends an item and its num.
func (p *Page[T]) Add(v T, num int64) {
	p.items, p.last = append(p.items, v), num
}

// Items returns the page's items and the cursor of the next page, nil on
// the last one.
func (p *Page[T]) Items() ([]T, *string) { return p.items, p.next }

// BatchQuery builds the query of conveyor.Store.ListBatches as ListQuery
// does for executions: columns (a select list over the table batches as
// b) filtered by f, newest first, tags joined from batch_tags.
func BatchQuery(columns string, f conveyor.BatchFilter, param func(v any) string) (query string, limit int, err error) {
	limit, before, err := f.Page()
	if err != nil {
		return "", 0, err
	}
	var b strings.Builder
	b.WriteString("SELECT " + columns + " FROM batches b")
	order := "b.num"
	for i, t := range f.Tags {
		alias := "t" + strconv.Itoa(i)
		fmt.Fprintf(&b, " JOIN batch_tags %s ON %s.num = b.num AND %s.key = %s AND %s.value = %s",
			alias, alias, alias, param(t.Key), alias, param(t.Value))
		if i == 0 {
			order = alias + ".num"
		}
	}
	var where []string
	if f.Status != "" {
		where = append(where, batchStatusSQL[f.Status])
	}
	if before > 0 {
		where = append(where, order+" < "+param(before))
	}
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + order + " DESC LIMIT " + param(limit+1))
	return b.String(), limit, nil
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
