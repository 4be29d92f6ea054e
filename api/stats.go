package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/conveyor-run/conveyor"
)

// defaultThroughputMinutes is the window of GET /executions/throughput
// without ?minutes: the last hour, the dashboard's chart.
const defaultThroughputMinutes = 60

// getStats answers GET /executions/stats: executions counted by status,
// each no further than conveyor.StatsUpTo.
func (s *Server) getStats(w http.ResponseWriter, r *http.Request) {
	c, err := s.cfg.Store.CountByStatus(r.Context(), conveyor.StatsUpTo)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conveyor.ExecutionStats{Counts: c, UpTo: conveyor.StatsUpTo})
}

// getThroughput answers GET /executions/throughput?minutes=N: executions
// started and finished in each of the last N minutes (default 60), whole
// minutes of the server's clock, the last one the minute now running.
func (s *Server) getThroughput(w http.ResponseWriter, r *http.Request) {
	minutes := defaultThroughputMinutes
	if v := r.URL.Query().Get("minutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > conveyor.MaxThroughputBuckets || strconv.Itoa(n) != v {
			s.writeError(w, r, conveyor.Errorf(conveyor.EBADREQUEST, "minutes must be an integer from 1 to %d", conveyor.MaxThroughputBuckets))
			return
		}
		minutes = n
	}
	now := time.Now
	if s.cfg.Now != nil {
		now = s.cfg.Now
	}
	end := now().UTC().Truncate(time.Minute).Add(time.Minute)
	q := conveyor.ThroughputQuery{Since: end.Add(-time.Duration(minutes) * time.Minute), Width: time.Minute, Buckets: minutes}
	bs, err := s.cfg.Store.Throughput(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conveyor.Throughput{BucketSeconds: int(q.Width / time.Second), Buckets: bs})
}
