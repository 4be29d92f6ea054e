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
