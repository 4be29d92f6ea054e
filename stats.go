package conveyor

import (
	"time"
)

// ValidIDPrefix returns EINVALID unless p is "" or the beginning of an
// execution id as the engine makes them: a UUID in lowercase, hex digits
// with "-" after the 8th, 12th, 16th and 20th. Holding prefixes to that
// shape lets a store read them as a range of the id index (UUIDv7 ids
// sort by time, so a prefix is a span of time too) that every collation
// orders alike, and turns a typo into a clear error instead of an empty
// list.
func ValidIDPrefix(p string) error {
	if len(p) > 36 {
		return Errorf(EINVALID, "id prefix %q is longer than an execution id (36 characters)", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		hex := c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
		if dash := i == 8 || i == 13 || i == 18 || i == 23; dash && c != '-' || !dash && !hex {
			return Errorf(EINVALID, "id prefix %q is not the start of an execution id: lowercase hex digits, "+
				"with \"-\" after the 8th, 12th, 16th and 20th (such as 0197a3f2-6c)", p)
		}
	}
	return nil
}

// ThroughputQuery asks Store.Throughput for Buckets consecutive spans of
// Width, the first starting at Since.
type ThroughputQuery struct {
	Since   time.Time
	Width   time.Duration
	Buckets int
}

// MaxThroughputBuckets is how many buckets a ThroughputQuery may ask for:
// a day of minutes.
const MaxThroughputBuckets = 1440

// Validate returns EINVALID unless q may be asked: a storable Since, a
// Width of at least a second in whole seconds (the buckets of every
// backend then split at the same instants) and 1 to
// MaxThroughputBuckets buckets that end before times stop being
// storable.
func (q ThroughputQuery) Validate() error {
	switch {
	case q.Width < time.Second || q.Width%time.Second != 0:
		return Errorf(EINVALID, "bucket width %s is not a whole number of seconds", q.Width)
	case q.Buckets < 1 || q.Buckets > MaxThroughputBuckets:
		return Errorf(EINVALID, "%d buckets; from 1 to %d are allowed", q.Buckets, MaxThroughputBuckets)
	case !StorableTime(q.Since) || !StorableTime(q.Until()):
		return Errorf(EINVALID, "throughput from %s cannot be stored", q.Since)
	}
	return nil
}

// Until is when the last bucket of q ends.
func (q ThroughputQuery) Until() time.Time {
	return q.Since.Add(time.Duration(q.Buckets) * q.Width)
}

// ThroughputBucket is one span of a ThroughputQuery: how many executions
// started in it and how many finished (completed, failed or cancelled).
type ThroughputBucket struct {
	Start    time.Time `json:"start"`
	Started  int       `json:"started"`
	Finished int       `json:"finished"`
}

// ThroughputBuckets returns the empty buckets of q, their starts set, for
// a store to fill in: bucket i holds the times t with
// Since + i*Width <= t < Since + (i+1)*Width.
func ThroughputBuckets(q ThroughputQuery) []ThroughputBucket {
	bs := make([]ThroughputBucket, q.Buckets)
	for i := range bs {
		bs[i].Start = q.Since.Add(time.Duration(i) * q.Width).UTC()
	}
	return bs
}

// StatsUpTo is how far GET /executions/stats counts each status: enough
// for a person reading a dashboard, and a bound on what each call reads.
const StatsUpTo = 10000

// ExecutionStats is the body of GET /executions/stats.
type ExecutionStats struct {
	// Counts are how many executions are in each status; a count of UpTo
	// means at least that many.
	Counts Counts `json:"counts"`
	UpTo   int    `json:"up_to"`
}

// Throughput is the body of GET /executions/throughput: executions
// started and finished per minute, oldest minute first, the last one the
// minute now running.
type Throughput struct {
	BucketSeconds int                `json:"bucket_seconds"`
	Buckets       []ThroughputBucket `json:"buckets"`
}
