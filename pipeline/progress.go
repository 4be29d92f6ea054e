package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// ProgressPrefix starts a progress line on an exec step's standard output.
const ProgressPrefix = "::progress"

// Limits of a progress line. A longer message is cut, not refused: a
// verbose script should not lose its progress for it.
const (
	MaxProgressMessage = 1024 // bytes
	MaxProgressMetrics = 32
	maxMetricName      = 64 // bytes
)

// DataPrefix starts a data line on an exec step's standard output:
// "::data {json object}" merges the object into the execution's data
// (conveyor.MergeData).
const DataPrefix = "::data"

// ParseDataLine parses a line an exec step printed. ok reports whether
// the line is a data line (it starts with "::data" and a space, or is
// just "::data"); err is set when it is one but its JSON is malformed.
// Whether the JSON is an object, and whether the merge fits, is for
// conveyor.MergeData to say.
func ParseDataLine(line string) (patch []byte, ok bool, err error) {
	return parseJSONLine(line, DataPrefix, "data")
}

// CheckpointPrefix starts a checkpoint line on an exec step's standard
// output: "::checkpoint {json}" records the step's checkpoint
// (conveyor.Exec.Checkpoint), which a retried attempt of a pipeline with
// resume: true gets in CONVEYOR_CHECKPOINT.
const CheckpointPrefix = "::checkpoint"

// ParseCheckpointLine parses a line an exec step printed, as
// ParseDataLine does: ok reports whether it is a checkpoint line, err
// that its JSON is malformed (or was cut: a line is at most
// conveyor.MaxLogLineBytes). Whether it fits is for
// conveyor.CheckpointJSON to say.
func ParseCheckpointLine(line string) (checkpoint []byte, ok bool, err error) {
	return parseJSONLine(line, CheckpointPrefix, "checkpoint")
}

// parseJSONLine parses a line that starts with prefix and a space (or is
// just prefix) and holds one JSON value, the what of its errors.
func parseJSONLine(line, prefix, what string) (value []byte, ok bool, err error) {
	rest, found := strings.CutPrefix(line, prefix)
	if !found || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		return nil, false, nil
	}
	rest = strings.TrimSpace(rest)
	if !json.Valid([]byte(rest)) {
		if len(line) >= conveyor.MaxLogLineBytes-len(conveyor.TruncatedMark) && strings.HasSuffix(line, conveyor.TruncatedMark) {
			return nil, true, conveyor.Errorf(conveyor.EINVALID, "%s line is over %d bytes", what, conveyor.MaxLogLineBytes)
		}
		return nil, true, conveyor.Errorf(conveyor.EINVALID, "%s is not valid JSON", what)
	}
	return []byte(rest), true, nil
}

var errEmptyProgress = errors.New("empty progress line")

// ParseProgressLine parses a line an exec step printed. ok reports whether
// the line is a progress line at all (it starts with "::progress" and a
// space, or is just "::progress"); err is set when it is one but malformed.
// The forms are:
//
//	::progress 3/10 copying files    current/total, then an optional message
//	::progress 42.5% copying files   a percentage, 0-100
//	::progress {"current":3,"total":10,"message":"…","metrics":{"rows":1200}}
//
// Numbers are plain decimals (no sign, exponent, NaN or Inf). A current value
// above the total is clamped to it, because estimates run over and a script
// should not fail its progress for that; a negative value or a total that is
// not positive is an error. In the JSON form current and total go together
// and may both be left out to report only a message or metrics; unknown
// fields are ignored so scripts can send fields newer servers understand.
//
// The text forms do not allocate: this runs for every line of output.
func ParseProgressLine(line string) (u conveyor.Update, ok bool, err error) {
	rest, found := strings.CutPrefix(line, ProgressPrefix)
	if !found || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		return u, false, nil
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return u, true, errEmptyProgress
	}
	if rest[0] == '{' {
		u, err = parseProgressJSON(rest)
		return u, true, err
	}

	value, message := rest, ""
	for i := 0; i < len(rest); i++ {
		if rest[i] == ' ' || rest[i] == '\t' {
			value, message = rest[:i], strings.TrimSpace(rest[i+1:])
			break
		}
	}
	if pct, isPct := strings.CutSuffix(value, "%"); isPct {
		p, err := parseNumber(pct)
		if err != nil {
			return u, true, err
		}
		u.Done, u.Total = min(p, 100), 100
	} else {
		cur, tot, isFrac := strings.Cut(value, "/")
		if !isFrac {
			return u, true, fmt.Errorf("progress %q: want CURRENT/TOTAL, PERCENT%% or a JSON object", value)
		}
		c, err := parseNumber(cur)
		if err != nil {
			return u, true, err
		}
		t, err := parseNumber(tot)
		if err != nil {
			return u, true, err
		}
		if t == 0 {
			return u, true, errors.New("progress total must be positive")
		}
		u.Done, u.Total = min(c, t), t
	}
	u.Message = conveyor.TruncateUTF8(message, MaxProgressMessage)
	return u, true, nil
}

// parseNumber accepts plain decimals only: strconv.ParseFloat alone would
// also take "NaN", "Inf", "-1", "1e9" and "0x1p4".
func parseNumber(s string) (float64, error) {
	dot := false
	var n uint64 // the value while s is a short integer: the common case, done without ParseFloat
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			n = n*10 + uint64(c-'0')
		case c == '.' && !dot:
			dot = true
		default:
			return 0, fmt.Errorf("invalid progress number %q", s)
		}
	}
	if !dot && s != "" && len(s) <= 15 { // below 2^53: exact
		return float64(n), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid progress number %q", s)
	}
	return f, nil
}

type progressJSON struct {
	Current *float64           `json:"current"`
	Total   *float64           `json:"total"`
	Message string             `json:"message"`
	Metrics map[string]float64 `json:"metrics"`
}

func parseProgressJSON(s string) (conveyor.Update, error) {
	var u conveyor.Update
	var p progressJSON
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return u, fmt.Errorf("progress JSON: %w", err)
	}
	switch {
	case (p.Current == nil) != (p.Total == nil):
		return u, errors.New("progress JSON: current and total go together")
	case p.Current != nil && *p.Current < 0:
		return u, errors.New("progress JSON: current must not be negative")
	case p.Total != nil && *p.Total <= 0:
		return u, errors.New("progress JSON: total must be positive")
	case p.Current == nil && p.Message == "" && len(p.Metrics) == 0:
		return u, errEmptyProgress
	case len(p.Metrics) > MaxProgressMetrics:
		return u, fmt.Errorf("progress JSON: %d metrics, at most %d", len(p.Metrics), MaxProgressMetrics)
	}
	for name := range p.Metrics {
		if name == "" || len(name) > maxMetricName {
			return u, fmt.Errorf("progress JSON: metric name %q must be 1 to %d bytes", name, maxMetricName)
		}
	}
	if p.Current != nil {
		u.Done, u.Total = min(*p.Current, *p.Total), *p.Total
	}
	u.Message = conveyor.TruncateUTF8(p.Message, MaxProgressMessage)
	if len(p.Metrics) > 0 {
		u.Metrics = p.Metrics
	}
	return u, nil
}
