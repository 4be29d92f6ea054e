package pipeline_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/pipeline"
)

func TestParseProgressLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line   string
		ok     bool
		bad    bool // ok, but malformed
		want   conveyor.Update
		metric float64 // want Metrics["rows"]
	}{
		{line: "hello", ok: false},
		{line: "", ok: false},
		{line: " ::progress 1/2", ok: false},
		{line: "::progressive 1/2", ok: false},
		{line: "::PROGRESS 1/2", ok: false},
		{line: "::progress 3/10", ok: true, want: conveyor.Update{Done: 3, Total: 10}},
		{line: "::progress 3/10 copying files", ok: true, want: conveyor.Update{Done: 3, Total: 10, Message: "copying files"}},
		{line: "::progress\t3/10\tcopying  files  ", ok: true, want: conveyor.Update{Done: 3, Total: 10, Message: "copying  files"}},
		{line: "::progress 0/1", ok: true, want: conveyor.Update{Done: 0, Total: 1}},
		{line: "::progress 2.5/7.5", ok: true, want: conveyor.Update{Done: 2.5, Total: 7.5}},
		{line: "::progress 11/10 over", ok: true, want: conveyor.Update{Done: 10, Total: 10, Message: "over"}},
		{line: "::progress 42%", ok: true, want: conveyor.Update{Done: 42, Total: 100}},
		{line: "::progress 42.5% resizing", ok: true, want: conveyor.Update{Done: 42.5, Total: 100, Message: "resizing"}},
		{line: "::progress 100%", ok: true, want: conveyor.Update{Done: 100, Total: 100}},
		{line: "::progress 150%", ok: true, want: conveyor.Update{Done: 100, Total: 100}},
		{line: `::progress {"current":3,"total":10,"message":"m","metrics":{"rows":1200}}`, ok: true, want: conveyor.Update{Done: 3, Total: 10, Message: "m"}, metric: 1200},
		{line: `::progress {"current":30,"total":10}`, ok: true, want: conveyor.Update{Done: 10, Total: 10}},
		{line: `::progress {"message":"only a message"}`, ok: true, want: conveyor.Update{Message: "only a message"}},
		{line: `::progress {"metrics":{"rows":5},"future":true}`, ok: true, metric: 5},
		{line: "::progress", ok: true, bad: true},
		{line: "::progress   ", ok: true, bad: true},
		{line: "::progress soon", ok: true, bad: true},
		{line: "::progress 3/0", ok: true, bad: true},
		{line: "::progress -1/10", ok: true, bad: true},
		{line: "::progress 1/-10", ok: true, bad: true},
		{line: "::progress NaN/10", ok: true, bad: true},
		{line: "::progress 1/Inf", ok: true, bad: true},
		{line: "::progress 1e3/1e4", ok: true, bad: true},
		{line: "::progress 0x10/0x20", ok: true, bad: true},
		{line: "::progress 1_0/20", ok: true, bad: true},
		{line: "::progress 1..2/3", ok: true, bad: true},
		{line: "::progress ./3", ok: true, bad: true},
		{line: "::progress /3", ok: true, bad: true},
		{line: "::progress 3/", ok: true, bad: true},
		{line: "::progress 1/2/3", ok: true, bad: true},
		{line: "::progress %", ok: true, bad: true},
		{line: "::progress -5%", ok: true, bad: true},
		{line: "::progress 1" + strings.Repeat("0", 400) + "/1", ok: true, bad: true},
		{line: "::progress {", ok: true, bad: true},
		{line: "::progress {}", ok: true, bad: true},
		{line: `::progress {"current":1}`, ok: true, bad: true},
		{line: `::progress {"current":-1,"total":2}`, ok: true, bad: true},
		{line: `::progress {"current":1,"total":0}`, ok: true, bad: true},
		{line: `::progress {"current":"1","total":2}`, ok: true, bad: true},
		{line: `::progress {"current":1,"total":2} trailing`, ok: true, bad: true},
		{line: `::progress {"metrics":{"":1}}`, ok: true, bad: true},
		{line: `::progress {"metrics":{"rows":"many"}}`, ok: true, bad: true},
		{line: `::progress {"current":1,"total":1e999}`, ok: true, bad: true},
		{line: `::progress {"metrics":{` + manyMetrics(33) + `}}`, ok: true, bad: true},
	}
	for _, tt := range tests {
		u, ok, err := pipeline.ParseProgressLine(tt.line)
		if ok != tt.ok || (err != nil) != tt.bad {
			t.Errorf("%q: ok = %v, err = %v; want ok = %v, malformed = %v", tt.line, ok, err, tt.ok, tt.bad)
			continue
		}
		if tt.bad || !ok {
			continue
		}
		if u.Done != tt.want.Done || u.Total != tt.want.Total || u.Message != tt.want.Message || u.Metrics["rows"] != tt.metric {
			t.Errorf("%q: got %+v, want %+v (rows %v)", tt.line, u, tt.want, tt.metric)
		}
		if u.Step != 0 || u.Steps != 0 || u.StepName != "" {
			t.Errorf("%q: sets handler fields: %+v", tt.line, u)
		}
	}
}

func manyMetrics(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m`)
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(`":1`)
	}
	return b.String()
}

func TestParseProgressLineLongMessage(t *testing.T) {
	t.Parallel()
	msg := strings.Repeat("é", pipeline.MaxProgressMessage) // 2 bytes each
	u, ok, err := pipeline.ParseProgressLine("::progress 1/2 " + msg)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if len(u.Message) > pipeline.MaxProgressMessage || !utf8.ValidString(u.Message) || !strings.HasPrefix(msg, u.Message) {
		t.Errorf("message of %d bytes, valid UTF-8: %v", len(u.Message), utf8.ValidString(u.Message))
	}
}

func FuzzParseProgressLine(f *testing.F) {
	for _, s := range []string{
		"::progress 3/10 copying", "::progress 42.5%", "::progress 11/10",
		`::progress {"current":3,"total":10,"message":"m","metrics":{"rows":1200}}`,
		`::progress {"message":"x"}`, "::progress 1e3/2", "::progress -1/2", "::progress", "hello",
		"::progress 0.5/0.", "::progress 1/" + strings.Repeat("9", 320),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		u, ok, err := pipeline.ParseProgressLine(line)
		if !strings.HasPrefix(line, pipeline.ProgressPrefix) && ok {
			t.Fatalf("ok for a line without the prefix")
		}
		if !ok && err != nil {
			t.Fatalf("error for a line that is not progress: %v", err)
		}
		if !ok || err != nil {
			return
		}
		for _, v := range []float64{u.Done, u.Total} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("%+v: not a finite, non-negative number", u)
			}
		}
		if u.Done > u.Total || (u.Total == 0 && u.Done != 0) {
			t.Fatalf("%+v: done over total", u)
		}
		if u.Total == 0 && u.Message == "" && len(u.Metrics) == 0 {
			t.Fatalf("%+v: an update that says nothing", u)
		}
		if len(u.Message) > pipeline.MaxProgressMessage || len(u.Metrics) > pipeline.MaxProgressMetrics {
			t.Fatalf("%+v: over the limits", u)
		}
		if utf8.ValidString(line) && !utf8.ValidString(u.Message) {
			t.Fatalf("%+v: message cut inside a character", u)
		}
	})
}

func BenchmarkParseProgressLine(b *testing.B) {
	for _, bm := range []struct{ name, line string }{
		{"fraction", "::progress 314/1000 resizing photos/2024/IMG_0001.jpg"},
		{"percent", "::progress 42.5%"},
		{"json", `::progress {"current":3,"total":10,"message":"rows","metrics":{"rows":1200}}`},
		{"not-progress", "INFO resized photos/2024/IMG_0001.jpg in 12ms"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := pipeline.ParseProgressLine(bm.line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParseDataLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line, patch string
		ok, err     bool
	}{
		{`::data {"rows": 1}`, `{"rows": 1}`, true, false},
		{"::data\t{\"a\": null}  ", `{"a": null}`, true, false},
		{`::data [1]`, `[1]`, true, false}, // valid JSON; MergeData refuses a non-object
		{`::data {"rows": `, "", true, true},
		{`::data`, "", true, true},
		{`::database ready`, "", false, false},
		{`echo ::data {}`, "", false, false},
	} {
		patch, ok, err := pipeline.ParseDataLine(tc.line)
		if string(patch) != tc.patch || ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("ParseDataLine(%q) = %q, %v, %v; want %q, %v, error %v", tc.line, patch, ok, err, tc.patch, tc.ok, tc.err)
		}
	}
}

func TestParseCheckpointLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line, checkpoint string
		ok, err          bool
	}{
		{`::checkpoint {"row": 1}`, `{"row": 1}`, true, false},
		{"::checkpoint\t[1, 2]  ", `[1, 2]`, true, false},
		{`::checkpoint 42`, `42`, true, false},
		{`::checkpoint null`, `null`, true, false}, // valid JSON; conveyor.CheckpointJSON refuses null
		{`::checkpoint {"row": `, "", true, true},
		{`::checkpoint`, "", true, true},
		{`::checkpoints saved`, "", false, false},
		{`echo ::checkpoint {}`, "", false, false},
	} {
		cp, ok, err := pipeline.ParseCheckpointLine(tc.line)
		if string(cp) != tc.checkpoint || ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("ParseCheckpointLine(%q) = %q, %v, %v; want %q, %v, error %v", tc.line, cp, ok, err, tc.checkpoint, tc.ok, tc.err)
		}
	}
}

// FuzzParseJSONLines fuzzes the ::data and ::checkpoint lines: a line is
// one only with its prefix, and what it gives is valid JSON.
func FuzzParseJSONLines(f *testing.F) {
	for _, s := range []string{
		`::data {"rows": 1}`, "::data\t{}", `::data {"a": `, "::data", "::database",
		`::checkpoint {"next": 4}`, "::checkpoint \"x\"", "::checkpoint null", `::checkpoint {"`, "::checkpoints", "hello",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, p := range []struct {
			prefix string
			parse  func(string) ([]byte, bool, error)
		}{{pipeline.DataPrefix, pipeline.ParseDataLine}, {pipeline.CheckpointPrefix, pipeline.ParseCheckpointLine}} {
			v, ok, err := p.parse(line)
			switch {
			case ok && !strings.HasPrefix(line, p.prefix):
				t.Fatalf("%s: ok for a line without the prefix", p.prefix)
			case !ok && (err != nil || v != nil):
				t.Fatalf("%s: %q, %v for a line that is not one", p.prefix, v, err)
			case ok && err == nil && (!json.Valid(v) || !strings.Contains(line, string(v))):
				t.Fatalf("%s: %q is not the JSON of the line", p.prefix, v)
			case ok && err != nil && v != nil:
				t.Fatalf("%s: %q with error %v", p.prefix, v, err)
			}
		}
	})
}
