package conveyor

import (
	"strings"
	"unicode/utf8"
)

// Text every store keeps. PostgreSQL refuses a NUL byte in text and in
// jsonb (as the escape \u0000), and invalid UTF-8 anywhere; SQLite keeps
// both. So that a step's output can never make one backend fail where
// another succeeds, the rule is the same for all: what a step reports is
// cleaned where it enters (Exec), and a store refuses what is not clean
// with EINVALID.

// CleanText returns s with every NUL byte and every invalid UTF-8
// sequence replaced by U+FFFD, the replacement character.
func CleanText(s string) string {
	if StorableText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// StorableText reports whether s is valid UTF-8 without a NUL byte.
func StorableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// CleanJSON returns b with every invalid UTF-8 sequence replaced by
// U+FFFD. In valid JSON such bytes can only sit inside strings, so the
// result is still valid JSON. A NUL can only appear escaped (\u0000),
// which json columns keep.
func CleanJSON(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return []byte(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// storable reports whether every text of p is storable.
func (p *Progress) storable() bool {
	if p == nil {
		return true
	}
	if !StorableText(p.CurrentStepName) || !StorableText(p.Message) {
		return false
	}
	for k := range p.Metrics {
		if !StorableText(k) {
			return false
		}
	}
	return true
}

// Output limits: what one log line or one result may hold.
const (
	// MaxLogLineBytes is the longest log line kept; a longer one is cut
	// and ends with TruncatedMark (CutLogLine), never refused.
	MaxLogLineBytes = 64 << 10
	// MaxResultBytes is the largest result, as JSON: as large as the
	// largest input.
	MaxResultBytes = 1 << 20
)

// TruncatedMark ends a log line that was cut at MaxLogLineBytes.
const TruncatedMark = " [truncated]"

// CutLogLine returns line, cut to MaxLogLineBytes and marked if longer.
func CutLogLine(line string) string {
	if len(line) <= MaxLogLineBytes {
		return line
	}
	return TruncateUTF8(line, MaxLogLineBytes-len(TruncatedMark)) + TruncatedMark
}

// TruncateUTF8 cuts s to at most n bytes without splitting a character.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
