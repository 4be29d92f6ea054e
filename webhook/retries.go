package webhook

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultRetries is the schedule of retries after a failed attempt: the
// first retry 5 seconds after it, the last about 28 hours after the event.
var DefaultRetries = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// FormatRetries writes a schedule as ParseRetries reads it.
func FormatRetries(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

// ParseRetries reads a retry schedule: comma-separated durations
// (time.ParseDuration), each positive; "" or "none" is no retries.
func ParseRetries(s string) ([]time.Duration, error) {
	if s == "" || s == "none" {
		return []time.Duration{}, nil
	}
	var ds []time.Duration
	for i, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("retry %d: %q is not a positive duration such as 5s or 2h", i+1, part)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// maxRetryAfter bounds how long a Retry-After header may put off a retry.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads the Retry-After header of a 429 or 503 answer:
// seconds or an HTTP date. ok is false when there is none to honour.
func retryAfter(status int, header http.Header, now time.Time) (time.Duration, bool) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return 0, false
	}
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		d = time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), maxRetryAfter), true
}
