package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-run/conveyor"
)

// Benchmarks every backend runs the same way, on stores it opens itself;
// the backend's bench_test.go calls them. Results are in
// docs/benchmarks.md.

// Million is the size of the store BenchListByTag measures.
const Million = 1_000_000

// Env1M is the environment variable that enables the benchmarks on a
// store of Million executions: building one takes a minute or more, too
// long for every `go test -bench .`.
const Env1M = "CONVEYOR_BENCH_1M"

// Skip1M skips b unless Env1M is 1.
func Skip1M(b *testing.B) {
	b.Helper()
	if os.Getenv(Env1M) != "1" {
		b.Skipf("building a store of %d executions takes a minute or more: set %s=1 to run it", Million, Env1M)
	}
}

// The tags of FillTagged's executions: every one has a tenant, one of 10
// (CommonTag is 10% of the store), and a customer, one of n/100, each
// spread evenly over the whole store (RareTag is 100 executions, one every
// n/100). Every execution of RareTag is of CommonTag's tenant too.
var (
	CommonTag = conveyor.Tag{Key: "tenant", Value: "t2"}
	RareTag   = conveyor.Tag{Key: "customer", Value: "c00042"}
)

// fillBatch is how many executions FillTagged inserts per transaction.
const fillBatch = 10_000

// FillTagged adds n pending executions of pipeline "bench" to s, with the
// tags CommonTag and RareTag describe, in batches of CreateExecutions.
// n must be a multiple of 100 and at least 10,000 (at Million, each
// customer has 100 executions, one every 10,000).
func FillTagged(ctx context.Context, s conveyor.Store, n int) error {
	customers := n / 100
	input := json.RawMessage(`{"source": "s3://bucket/reports/2025-06.csv", "rows": 100000}`)
	batch := make([]*conveyor.Execution, 0, fillBatch)
	for i := range n {
		batch = append(batch, &conveyor.Execution{
			ID: fmt.Sprintf("fill-%07d", i), Pipeline: "bench", Status: conveyor.StatusPending, Input: input,
			CreatedAt: base.Add(time.Duration(i) * time.Microsecond),
			Tags: conveyor.Tags{
				"tenant":   "t" + strconv.Itoa(i%10),
				"customer": fmt.Sprintf("c%05d", i%customers),
			},
		})
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.CreateExecutions(ctx, batch); err != nil {
				return fmt.Errorf("fill: executions up to %d: %w", i, err)
			}
			batch = batch[:0]
		}
	}
	return nil
}

// ListByTagCase is one tag filter BenchListByTag measures.
type ListByTagCase struct {
	Name string
	Tags []conveyor.Tag
}

// ListByTagCases are the filters of BenchListByTag: the rare tag, the
// common one, and both together in either order (the first tag of a
// filter drives the scan, see store.ListQuery).
var ListByTagCases = []ListByTagCase{
	{"Rare", []conveyor.Tag{RareTag}},
	{"Common", []conveyor.Tag{CommonTag}},
	{"RareAndCommon", []conveyor.Tag{RareTag, CommonTag}},
	{"CommonAndRare", []conveyor.Tag{CommonTag, RareTag}},
}

// BenchListByTag measures ListExecutions with each of ListByTagCases, a
// page of 50, on s filled by FillTagged with Million executions, as GET
// /executions?tag=… does. Each sub-benchmark reports the p50 and p99 of
// its calls.
func BenchListByTag(b *testing.B, s conveyor.Store) {
	for _, c := range ListByTagCases {
		b.Run(c.Name, func(b *testing.B) {
			ctx := context.Background()
			f := conveyor.ListFilter{Tags: c.Tags, Limit: 50}
			lat := make([]time.Duration, 0, 4096)
			for b.Loop() {
				start := time.Now()
				page, err := s.ListExecutions(ctx, f)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Executions) != 50 || page.NextCursor == nil {
					b.Fatalf("%v: %d executions, next cursor %v; want a full page and more", c.Tags, len(page.Executions), page.NextCursor)
				}
			}
			ReportLatencies(b, lat)
		})
	}
}

// BatchSize is the size of the batches BenchCreateBatch creates, the
// largest conveyor.Batch allows.
const BatchSize = conveyor.MaxBatchSize

// NewBatch returns a batch of size members as the engine's SubmitBatch
// makes them: UUIDv7 ids, an input each, the batch's tag merged into each
// member's tags.
func NewBatch(size int, now time.Time) (*conveyor.Batch, []*conveyor.Execution) {
	b := &conveyor.Batch{ID: uuid.Must(uuid.NewV7()).String(), CreatedAt: now, Tags: conveyor.Tags{"tenant": "acme"}}
	es := make([]*conveyor.Execution, size)
	for i := range es {
		es[i] = &conveyor.Execution{
			ID: uuid.Must(uuid.NewV7()).String(), Pipeline: "bench", Status: conveyor.StatusPending,
			Input:     json.RawMessage(`{"item": ` + strconv.Itoa(i) + `, "source": "s3://bucket/in/` + strconv.Itoa(i) + `.csv"}`),
			Tags:      conveyor.MemberTags(b.Tags, conveyor.Tags{"part": strconv.Itoa(i % 16)}),
			CreatedAt: now, BatchID: &b.ID,
		}
	}
	return b, es
}

// BenchCreateBatch measures CreateBatch of BatchSize members, each with
// two tags. Making the members is outside the timer; each op is one batch,
// and the store grows by a batch each op. It reports the p50 and p99 of
// the calls, executions/s, and the CPU time this process spent in them
// (cpu-ms/op: a figure that a busy machine inflates less than the wall
// clock; it leaves out a database server's own).
func BenchCreateBatch(b *testing.B, s conveyor.Store) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, 64)
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		batch, es := NewBatch(BatchSize, time.Now())
		b.StartTimer()
		cpu0 := processCPU(b)
		start := time.Now()
		if err := s.CreateBatch(ctx, batch, es); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		cpu += processCPU(b) - cpu0
	}
	ReportLatencies(b, lat)
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	b.ReportMetric(float64(len(lat)*BatchSize)/total.Seconds(), "executions/s")
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(len(lat)), "cpu-ms/op")
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportLatencies adds the p50 and p99 (nearest rank) of lat to b, in
// milliseconds.
func ReportLatencies(b *testing.B, lat []time.Duration) {
	b.Helper()
	if len(lat) == 0 {
		b.Fatal("no latencies recorded")
	}
	slices.Sort(lat)
	q := func(f float64) float64 {
		i := min(max(int(f*float64(len(lat))+0.999999)-1, 0), len(lat)-1)
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
