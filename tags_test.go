package conveyor_test

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func FuzzParseTag(f *testing.F) {
	for _, s := range []string{
		"tenant:acme", "k:", "k:a:b", "a_b.c-d:x y", ":v", "K:v", "-k:v", "nocolon", "",
		"k:\x00", "k:\xff", "k:é", strings.Repeat("k", 63) + ":v", strings.Repeat("k", 64) + ":v",
		"k:" + strings.Repeat("v", 255), "k:" + strings.Repeat("v", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tag, err := conveyor.ParseTag(s)
		k, v, hasColon := strings.Cut(s, ":")
		// A filter parses exactly when the one tag it names would be a
		// valid tag of an execution: a filter that no execution can match
		// is a mistake to report, not an empty list.
		validTag := hasColon && conveyor.Tags{k: v}.Validate() == nil
		if err != nil {
			if conveyor.ErrorCode(err) != conveyor.EINVALID {
				t.Fatalf("ParseTag(%q): %v, want an invalid error", s, err)
			}
			if validTag {
				t.Fatalf("ParseTag(%q) refuses the valid tag %q: %q: %v", s, k, v, err)
			}
			return
		}
		if !validTag {
			t.Fatalf("ParseTag(%q) = %+v, but that tag does not validate", s, tag)
		}
		if tag.String() != s {
			t.Fatalf("ParseTag(%q) prints back as %q", s, tag.String())
		}
		if again, err := conveyor.ParseTag(tag.String()); err != nil || again != tag {
			t.Fatalf("ParseTag(%q) = %+v, %v; want %+v", tag.String(), again, err, tag)
		}
	})
}

func FuzzTagsJSON(f *testing.F) {
	for _, s := range []string{
		`{"tenant":"acme","kind":"resize"}`, `{}`, `null`, `[]`, `{"k":1}`, `{"k":null}`,
		`{"K":"v"}`, `{"k":"\u0000"}`, `{"k":"\ud800"}`, `{"k":"<&>"}`, `{"k":"a","k":"b"}`,
		"{\"k\":\"\xff\"}", `{"k":"v"} x`, `{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":"","j":"","k":"","l":"","m":"","n":"","o":"","p":"","q":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tags conveyor.Tags
		if err := json.Unmarshal(b, &tags); err != nil {
			var syntax *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if conveyor.ErrorCode(err) != conveyor.EINVALID && !errors.As(err, &syntax) && !errors.As(err, &typ) {
				t.Fatalf("Unmarshal(%q): %v, want a JSON error or an invalid one", b, err)
			}
			return
		}
		// What was accepted is an object of strings, or null: no other
		// JSON value becomes a tag, not even null as "".
		var generic map[string]any
		if err := json.Unmarshal(b, &generic); err != nil {
			t.Fatalf("Unmarshal(%q) accepted what is not a JSON object: %v", b, err)
		}
		for k, v := range generic {
			if _, ok := v.(string); !ok {
				t.Fatalf("Unmarshal(%q) accepted tag %q of value %v, not a string", b, k, v)
			}
		}
		if len(tags) != len(generic) {
			t.Fatalf("Unmarshal(%q) = %q, want %d tags", b, tags, len(generic))
		}
		out, err := json.Marshal(tags)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", tags, err)
		}
		if tags == nil && string(out) != "{}" {
			t.Fatalf("no tags marshal to %s, want {}", out)
		}
		if tags.Validate() != nil {
			return
		}
		var back conveyor.Tags
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(%s) of valid tags %q: %v", out, tags, err)
		}
		if !maps.Equal(back, tags) {
			t.Fatalf("valid tags %q come back from %s as %q", tags, out, back)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("tags %q come back from JSON invalid: %v", back, err)
		}
	})
}
