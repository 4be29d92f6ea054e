package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// TestListLeavesOutInputAndResult: a list carries each execution without
// its input, result and data, which can be large, unless fields asks for
// them; GET /executions/{id} always has all three.
func TestListLeavesOutInputAndResult(t *testing.T) {
	t.Parallel()
	h := setup(t, 2, &conveyor.Pipeline{Name: "answer", Steps: []conveyor.Step{{Name: "s", Run: func(_ context.Context, x *conveyor.Exec) error {
		if err := x.SetData(map[string]any{"rows": 3, "phase": "think"}); err != nil {
			return err
		}
		if err := x.SetData(map[string]any{"phase": nil}); err != nil {
			return err
		}
		return x.SetResult(map[string]int{"answer": 42})
	}}}})
	ex := h.submit("answer", map[string]string{"question": "life"})
	h.waitStatus(ex.ID, conveyor.StatusCompleted)

	for _, c := range []struct {
		query               string
		input, result, data string // "" when the key must be absent
	}{
		{"", "", "", ""},
		{"?fields=input", `{"question":"life"}`, "", ""},
		{"?fields=result", "", `{"answer":42}`, ""},
		{"?fields=data", "", "", `{"rows":3}`},
		{"?fields=input,result", `{"question":"life"}`, `{"answer":42}`, ""},
		{"?fields=result,data,input&limit=50", `{"question":"life"}`, `{"answer":42}`, `{"rows":3}`},
	} {
		var page struct {
			Executions []map[string]json.RawMessage `json:"executions"`
		}
		h.getJSON("/executions"+c.query, http.StatusOK, &page)
		if len(page.Executions) != 1 {
			t.Fatalf("GET /executions%s: %d executions, want 1", c.query, len(page.Executions))
		}
		got := page.Executions[0]
		for key, want := range map[string]string{"input": c.input, "result": c.result, "data": c.data} {
			v, ok := got[key]
			if want == "" && ok || want != "" && string(v) != want {
				t.Errorf("GET /executions%s: %s = %s (present %v), want %q", c.query, key, v, ok, want)
			}
		}
		if string(got["id"]) != `"`+ex.ID+`"` || string(got["status"]) != `"completed"` || got["progress"] == nil {
			t.Errorf("GET /executions%s: summary %v lacks the rest of the execution", c.query, got)
		}
	}

	full, err := h.client.Get(t.Context(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(full.Input) != `{"question":"life"}` || string(full.Result) != `{"answer":42}` || string(full.Data) != `{"rows":3}` {
		t.Errorf("GET /executions/{id}: input %s, result %s, data %s; want all three", full.Input, full.Result, full.Data)
	}

	for _, c := range []struct{ query, message string }{
		{"?fields=inputs", `fields takes input, result and data, comma-separated, not "inputs"`},
		{"?fields=", `fields takes input, result and data, comma-separated, not ""`},
		{"?fields=input,", `fields takes input, result and data, comma-separated, not ""`},
		{"?fields=input,input", `fields names "input" twice`},
		{"?fields=input&limit=51", "with inputs, results or data, limit must be from 1 to 50"},
		{"?fields=input&fields=result", `query parameter "fields" is given 2 times`},
	} {
		h.wantBadRequest("/executions"+c.query, c.message)
	}
}

// TestLogsComeInPages: the lines of an execution come in pages of about
// conveyor.MaxLogPageBytes; after= the last of one page reads the next.
func TestLogsComeInPages(t *testing.T) {
	t.Parallel()
	const lines, lineBytes = 40, 60 << 10
	h := setup(t, 1, &conveyor.Pipeline{Name: "loud", Steps: []conveyor.Step{{Name: "s", Run: func(_ context.Context, x *conveyor.Exec) error {
		for i := range lines {
			x.Log(fmt.Sprintf("%02d %s", i, strings.Repeat("x", lineBytes)))
		}
		return nil
	}}}})
	ex := h.submit("loud", nil)
	h.waitStatus(ex.ID, conveyor.StatusCompleted)

	var got []string
	pages := 0
	for after := int64(0); ; pages++ {
		var page conveyor.LogPage
		h.getJSON(fmt.Sprintf("/executions/%s/logs?after=%d", ex.ID, after), http.StatusOK, &page)
		size := 0
		for _, l := range page.Lines {
			got = append(got, l.Line[:2])
			size += l.Bytes()
		}
		if size > conveyor.MaxLogPageBytes || len(page.Lines) == 0 && page.More {
			t.Fatalf("page after %d: %d lines of %d bytes, more %v", after, len(page.Lines), size, page.More)
		}
		if !page.More {
			break
		}
		after = page.Last
	}
	if len(got) != lines || got[0] != "00" || got[lines-1] != fmt.Sprint(lines-1) || pages < 2 {
		t.Errorf("read %d lines (%q…) in %d pages, want %d in at least 2 pages, in order", len(got), got[:min(len(got), 3)], pages+1, lines)
	}
	all, err := h.client.Logs(t.Context(), ex.ID)
	if err != nil || len(all) != lines {
		t.Errorf("client Logs: %d lines, %v; want %d", len(all), err, lines)
	}

	for _, after := range []string{"-1", "x", "%2B1", "1.5"} {
		h.wantBadRequest("/executions/"+ex.ID+"/logs?after="+after, "after must be a non-negative integer line number")
	}
}
