package conveyor_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/conveyor-run/conveyor"
)

func FuzzCleanText(f *testing.F) {
	for _, s := range []string{
		"", "plain", "é€😀", "a\x00b", "\xff", "a\xc3", "\xed\xa0\x80", "\uFFFD", "\xf4\x90\x80\x80",
		`{"a":"\u0000"}`, "{\"a\":\"\xff\xfe\"}", `["é",1]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := conveyor.CleanText(s)
		if !conveyor.StorableText(out) || !utf8.ValidString(out) || strings.IndexByte(out, 0) >= 0 {
			t.Fatalf("CleanText(%q) = %q: not storable", s, out)
		}
		if conveyor.StorableText(s) && out != s {
			t.Fatalf("CleanText(%q) = %q changed storable text", s, out)
		}
		if conveyor.CleanText(out) != out {
			t.Fatalf("CleanText(%q) = %q is not stable", s, out)
		}
		// Only replacement characters are added: every good character of
		// s is kept, in order.
		if got, want := strings.ReplaceAll(out, "\uFFFD", ""), goodRunes(s); got != want {
			t.Fatalf("CleanText(%q) = %q keeps %q of the text, want %q", s, out, got, want)
		}

		b := conveyor.CleanJSON([]byte(s))
		if !utf8.Valid(b) {
			t.Fatalf("CleanJSON(%q) = %q: not UTF-8", s, b)
		}
		if utf8.ValidString(s) && string(b) != s {
			t.Fatalf("CleanJSON(%q) = %q changed valid UTF-8", s, b)
		}
		if json.Valid([]byte(s)) && !json.Valid(b) {
			t.Fatalf("CleanJSON(%q) = %q: no longer JSON", s, b)
		}
	})
}

// goodRunes is s without NUL bytes, invalid UTF-8 and U+FFFD.
func goodRunes(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r != 0 && r != utf8.RuneError {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestCutLogLineAndResultLimit(t *testing.T) {
	var logged []string
	var result json.RawMessage
	x := &conveyor.Exec{
		LogFunc:    func(_, line string) { logged = append(logged, line) },
		ResultFunc: func(b json.RawMessage) { result = b },
	}
	exact := strings.Repeat("a", conveyor.MaxLogLineBytes)
	x.Log(exact)
	x.Log(strings.Repeat("é", conveyor.MaxLogLineBytes)) // 2 bytes each: twice the limit
	if logged[0] != exact {
		t.Errorf("a line of exactly the limit was changed")
	}
	if cut := logged[1]; len(cut) > conveyor.MaxLogLineBytes || !strings.HasSuffix(cut, conveyor.TruncatedMark) || !utf8.ValidString(cut) {
		t.Errorf("a long line: %d bytes, marked %v, valid %v; want it cut at a character, marked", len(cut), strings.HasSuffix(cut, conveyor.TruncatedMark), utf8.ValidString(cut))
	}

	if err := x.SetResult(map[string]string{"ok": "yes"}); err != nil || string(result) != `{"ok":"yes"}` {
		t.Fatalf("SetResult: %v, result %s", err, result)
	}
	err := x.SetResult(strings.Repeat("x", conveyor.MaxResultBytes))
	if conveyor.ErrorCode(err) != conveyor.EINVALID || string(result) != `{"ok":"yes"}` {
		t.Errorf("SetResult of more than MaxResultBytes: %v, result %.20s; want invalid and the result kept", err, result)
	}
}
