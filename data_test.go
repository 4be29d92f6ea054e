package conveyor_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func TestMergeData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ data, patch, want string }{
		{"", `{"rows": 1}`, `{"rows": 1}`},
		{`{"rows": 1, "phase": "load"}`, `{"rows": 2, "phase": null}`, `{"rows": 2}`},
		{`{"a": {"b": 1, "c": 2}}`, `{"a": {"b": null, "d": 3}}`, `{"a": {"c": 2, "d": 3}}`},
		{`{"a": {"b": 1}}`, `{"a": 5}`, `{"a": 5}`},
		{`{"a": 5}`, `{"a": {"b": 1, "c": null}}`, `{"a": {"b": 1}}`}, // nulls go inside a new object too
		{`{"a": [1, 2]}`, `{"a": [3]}`, `{"a": [3]}`},                 // arrays replace
		{`{"n": 1}`, `{"big": 12345678901234567890}`, `{"n": 1, "big": 12345678901234567890}`},
		{`{"gone": 1}`, `{"gone": null}`, `{}`},
		{`{"s": 1}`, "{\"t\": \"a\xffb\"}", `{"s": 1, "t": "a\uFFFDb"}`},
	} {
		got, err := conveyor.MergeData(json.RawMessage(tc.data), json.RawMessage(tc.patch))
		if err != nil {
			t.Errorf("MergeData(%s, %s): %v", tc.data, tc.patch, err)
			continue
		}
		if !sameJSON(t, got, tc.want) || strings.Contains(string(got), "e+") {
			t.Errorf("MergeData(%s, %s) = %s, want %s", tc.data, tc.patch, got, tc.want)
		}
	}
}

func TestMergeDataRefuses(t *testing.T) {
	t.Parallel()
	half := `{"a": "` + strings.Repeat("x", conveyor.MaxDataBytes/2) + `"}`
	data, err := conveyor.MergeData(nil, json.RawMessage(half))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ patch, msg string }{
		{`[1]`, "data must be a JSON object"},
		{`"s"`, "data must be a JSON object"},
		{`null`, "data must be a JSON object"},
		{`{"a": `, "data must be a JSON object"},
		{`{} {}`, "data must be a JSON object"},
		{`{"b": "` + strings.Repeat("y", conveyor.MaxDataBytes/2) + `"}`, "at most 65536 are kept"},
	} {
		got, err := conveyor.MergeData(data, json.RawMessage(tc.patch))
		if conveyor.ErrorCode(err) != conveyor.EINVALID || !strings.Contains(conveyor.ErrorMessage(err), tc.msg) || got != nil {
			t.Errorf("MergeData(%.20s…) = %.20s, %v; want EINVALID saying %q", tc.patch, got, err, tc.msg)
		}
	}
}

// FuzzMergeData: a merge that succeeds gives a JSON object within
// MaxDataBytes, and merging the same patch again changes nothing (a merge
// patch is idempotent).
func FuzzMergeData(f *testing.F) {
	f.Add(`{"a": 1}`, `{"a": null, "b": {"c": [1, 2]}}`)
	f.Add(``, `{"x": {"y": {"z": null}}}`)
	f.Add(`{"n": 1e400}`, `{"m": -0.0}`)
	f.Fuzz(func(t *testing.T, data, patch string) {
		if data != "" {
			d, err := conveyor.MergeData(nil, json.RawMessage(data))
			if err != nil {
				return
			}
			data = string(d)
		}
		once, err := conveyor.MergeData(json.RawMessage(data), json.RawMessage(patch))
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage // numbers as written: 1e400 is JSON, if not a float64
		if err := json.Unmarshal(once, &obj); err != nil || obj == nil || len(once) > conveyor.MaxDataBytes {
			t.Fatalf("merged %q: %v (%d bytes), want a JSON object", once, err, len(once))
		}
		twice, err := conveyor.MergeData(once, json.RawMessage(patch))
		if err != nil || string(twice) != string(once) {
			t.Fatalf("merging %q again: %q, %v; want %q", patch, twice, err, once)
		}
	})
}

func sameJSON(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
