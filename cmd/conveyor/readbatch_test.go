package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestReadBatch(t *testing.T) {
	items, err := readBatch(strings.NewReader("\n"+`{"pipeline": "a", "input": {"n": 1}, "tags": {"k": "v"}}`+"\r\n  \n"+`{"pipeline": "b", "input": null}`), "f", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(items.executions) != 2 || items.executions[0].Pipeline != "a" || items.executions[0].Tags["k"] != "v" ||
		string(items.executions[0].Input) != `{"n": 1}` || items.executions[1].Pipeline != "b" {
		t.Fatalf("read %+v", items.executions)
	}
	if items.lines[0] != 2 || items.lines[1] != 4 {
		t.Fatalf("lines %v, want [2 4]", items.lines)
	}

	items, err = readBatch(strings.NewReader(`{"pipeline": "a"}`+"\n"+`{}`), "f", "p")
	if err != nil {
		t.Fatal(err)
	}
	if e := items.executions[0]; e.Pipeline != "p" || string(e.Input) != `{"pipeline": "a"}` {
		t.Fatalf("with --pipeline a line is the input: %+v", e)
	}
}

func TestReadBatchErrors(t *testing.T) {
	for _, tc := range []struct{ in, pipeline, want string }{
		{`{"pipeline": "a"} {"pipeline": "b"}`, "", "f:1: more than one JSON value"},
		{`{"pipeline": "a"}` + "\n" + `{"pipeline": "a", "tags": {"k": 1}}`, "", `f:2: invalid: tag "k": values are strings`},
		{`{"pipeline": "a", "input": "x"}`, "", `f:1: "input" must be a JSON object`},
		{`null`, "", `f:1: no "pipeline"`},
		{`null`, "p", "f:1: want an input, a JSON object"},
		{"{}\n" + strings.Repeat(" ", maxBatchLine+1), "p", "f:2: line longer than"},
		{strings.Repeat("{}\n", 10_001), "p", "f:10001: a batch holds at most 10000 executions"},
	} {
		_, err := readBatch(strings.NewReader(tc.in), "f", tc.pipeline)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("readBatch(%.40q, %q): %v, want %s…", tc.in, tc.pipeline, err, tc.want)
		}
	}
}

// FuzzReadBatch: whatever the file, readBatch returns an error or
// executions that each have a pipeline and an object or no input.
func FuzzReadBatch(f *testing.F) {
	f.Add([]byte(`{"pipeline": "a", "input": {"n": 1}, "tags": {"k": "v"}}`+"\n\n"), "")
	f.Add([]byte("{\"n\": 1}\n[1]\n"), "p")
	f.Add([]byte(`{"pipeline": "a", "input": null, "tags": null}`), "")
	f.Fuzz(func(t *testing.T, in []byte, pipeline string) {
		items, err := readBatch(bytes.NewReader(in), "f", pipeline)
		if err != nil {
			return
		}
		if len(items.executions) == 0 || len(items.lines) != len(items.executions) {
			t.Fatalf("%d executions on %d lines", len(items.executions), len(items.lines))
		}
		for i, e := range items.executions {
			if e.Pipeline == "" {
				t.Fatalf("execution %d has no pipeline", i)
			}
			if len(e.Input) > 0 && string(e.Input) != "null" && (!json.Valid(e.Input) || !bytes.HasPrefix(bytes.TrimSpace(e.Input), []byte("{"))) {
				t.Fatalf("execution %d has input %q", i, e.Input)
			}
			if i > 0 && items.lines[i] <= items.lines[i-1] {
				t.Fatalf("lines %v out of order", items.lines)
			}
		}
	})
}
