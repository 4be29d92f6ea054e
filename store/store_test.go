package store_test

import (
	"slices"
	"strconv"
	"testing"
	"testing/fstest"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/store"
)

func TestListQuery(t *testing.T) {
	var args []any
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q, limit, err := store.ListQuery("num, id",
		conveyor.ListFilter{Status: conveyor.StatusRunning, Pipeline: "p", Cursor: "42", Limit: 10}, param)
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT e.num, e.id FROM executions e WHERE e.status = $1 AND e.pipeline = $2 AND e.num < $3 ORDER BY e.num DESC LIMIT $4"
	if q != want || limit != 10 || !slices.Equal(args, []any{"running", "p", int64(42), 11}) {
		t.Errorf("ListQuery = %q, %d, args %v", q, limit, args)
	}

	args = nil
	q, limit, err = store.ListQuery("id", conveyor.ListFilter{}, param)
	if err != nil || q != "SELECT e.id FROM executions e ORDER BY e.num DESC LIMIT $1" || limit != conveyor.DefaultListLimit {
		t.Errorf("unfiltered ListQuery = %q, %d, %v", q, limit, err)
	}

	// Tags: the scan is driven from the first tag's rows, newest first.
	args = nil
	q, _, err = store.ListQuery("id", conveyor.ListFilter{Cursor: "7",
		Tags: []conveyor.Tag{{Key: "tenant", Value: "acme"}, {Key: "kind", Value: "resize"}}}, param)
	want = "SELECT e.id FROM executions e" +
		" JOIN execution_tags t0 ON t0.num = e.num AND t0.key = $1 AND t0.value = $2" +
		" JOIN execution_tags t1 ON t1.num = e.num AND t1.key = $3 AND t1.value = $4" +
		" WHERE t0.num < $5 ORDER BY t0.num DESC LIMIT $6"
	if err != nil || q != want || !slices.Equal(args, []any{"tenant", "acme", "kind", "resize", int64(7), conveyor.DefaultListLimit + 1}) {
		t.Errorf("tag ListQuery = %q, args %v, %v", q, args, err)
	}

	_, _, err = store.ListQuery("id", conveyor.ListFilter{Cursor: "-1"}, param)
	if conveyor.ErrorCode(err) != conveyor.EINVALID {
		t.Errorf("bad cursor: %v, want invalid", err)
	}
}

// numRows are rows of nums, each scanned as itself.
type numRows struct {
	nums []int64
	i    int
}

func (r *numRows) Next() bool { r.i++; return r.i <= len(r.nums) }
func (r *numRows) Err() error { return nil }
func (r *numRows) Scan(dest ...any) error {
	*dest[0].(*int64) = r.nums[r.i-1]
	return nil
}

func scanNum(r store.Rows) (int64, int64, error) {
	var n int64
	err := r.Scan(&n)
	return n, n, err
}

func TestCollectPage(t *testing.T) {
	// The query asks for limit+1 rows: a row past the limit means a next
	// page, after the last num kept.
	items, next, err := store.CollectPage(&numRows{nums: []int64{9, 8, 7}}, 2, scanNum)
	if err != nil || !slices.Equal(items, []int64{9, 8}) || next == nil || *next != "8" {
		t.Errorf("full page = %v, cursor %v, %v; want [9 8] and 8", items, next, err)
	}
	items, next, err = store.CollectPage(&numRows{nums: []int64{3}}, 5, scanNum)
	if err != nil || !slices.Equal(items, []int64{3}) || next != nil {
		t.Errorf("short page = %v, cursor %v, %v; want [3] and no cursor", items, next, err)
	}
}

func TestMigrations(t *testing.T) {
	ok := fstest.MapFS{
		"m/0001_init.sql": {Data: []byte("CREATE TABLE a (x int);")},
		"m/0002_more.sql": {Data: []byte("CREATE TABLE b (x int);")},
	}
	ms, err := store.Migrations(ok, "m/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[1].Version != 2 || ms[1].Name != "0002_more.sql" || ms[0].SQL != "CREATE TABLE a (x int);" {
		t.Errorf("Migrations = %+v", ms)
	}
	if err := store.CheckVersion(2, ms); err != nil {
		t.Errorf("CheckVersion(2) = %v", err)
	}
	if err := store.CheckVersion(3, ms); err == nil {
		t.Error("CheckVersion accepted a database newer than the binary")
	}

	gap := fstest.MapFS{"m/0001_init.sql": {}, "m/0003_skip.sql": {}}
	if _, err := store.Migrations(gap, "m/*.sql"); err == nil {
		t.Error("Migrations accepted a gap in the numbers")
	}
}
