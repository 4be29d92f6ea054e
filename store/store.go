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
// ("?" or "$N"). It returns the query and the page size; the query asks
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
	if before > 0 {
		where = append(where, order+" < "+param(before))
	}
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + order + " DESC LIMIT " + param(limit+1))
	return b.String(), limit, nil
}

// Page collects the rows of a ListQuery into a page of at most limit
// executions: add each row's execution and num until it returns false.
type Page struct {
	page  conveyor.ExecutionPage
	limit int
	last  int64
}

// NewPage starts a page of at most limit executions.
func NewPage(limit int) *Page {
	return &Page{page: conveyor.ExecutionPage{Executions: make([]*conveyor.Execution, 0, min(limit, 64))}, limit: limit}
}

// Full reports whether the page holds limit executions; a row read then
// means there is a next page, whose cursor Full sets.
func (p *Page) Full() bool {
	if len(p.page.Executions) < p.limit {
		return false
	}
	cursor := strconv.FormatInt(p.last, 10)
	p.page.NextCursor = &cursor
	return true
}

// Add appends an execution and its num.
func (p *Page) Add(ex *conveyor.Execution, num int64) {
	p.page.Executions, p.last = append(p.page.Executions, ex), num
}

// Result returns the page.
func (p *Page) Result() *conveyor.ExecutionPage { return &p.page }

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
