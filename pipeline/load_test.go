package pipeline_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/pipeline"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // all must appear in the error
	}{
		{"bad yaml", "steps: [\n", []string{"p.yaml:1: ", "']' not found"}},
		{"duplicate key", "name: a\nname: b\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:2: ", `"name" already defined`}},
		{"root is a list", "- a\n- b\n", []string{"p.yaml:1: ", "mapping"}},
		{"two documents", "steps: [{name: s, noop: {}}]\n---\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:2: ", "one YAML document"}},
		{"unknown top field", "nmae: x\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: ", `unknown field "nmae"`}}, //nolint:misspell // the typo is the test
		{"unknown step field", "steps:\n  - name: a\n    sleep: 1s\n    bogus: 1\n", []string{"p.yaml:4: steps[0]: ", `unknown field "bogus"`}},
		{"unknown exec field", "steps:\n  - name: a\n    exec:\n      comand: [ls]\n", []string{"p.yaml:4: steps[0].exec: ", `unknown field "comand"`}},
		{"unknown field with a dot", "retries.max: 1\nsteps: [{name: s, noop: {}}]\n", []string{`p.yaml:1: unknown field "retries.max"`}},
		{"unknown step field with a dot", "steps:\n  - name: a\n    sleep: 1s\n    image.size: 1\n", []string{`p.yaml:4: steps[0]: unknown field "image.size"`}},
		{"missing steps", "name: x\n", []string{"p.yaml:1: steps: ", "at least one step"}},
		{"empty steps", "name: x\nsteps: []\n", []string{"p.yaml:2: steps: ", "at least one step"}},
		{"empty file", "", []string{"p.yaml:1: steps: "}},
		{"steps not a list", "steps: {a: 1}\n", []string{"p.yaml:1: steps: ", "mapping was used where sequence is expected"}},
		{"no kind", "steps:\n  - name: a\n    timeout: 1s\n", []string{"p.yaml:2: steps[0]: ", "exactly one of exec, http, sleep or noop"}},
		{"two kinds", "steps:\n  - name: a\n    noop: {}\n  - name: b\n    sleep: 1s\n    exec: {command: [ls]}\n", []string{"p.yaml:4: steps[1]: ", "has exec and sleep"}},
		{"bad step timeout", "steps:\n  - name: a\n    noop: {}\n  - name: b\n    sleep: 1s\n    timeout: 5x\n", []string{"p.yaml:6: steps[1].timeout: ", `invalid duration "5x"`}},
		{"number as duration", "steps:\n  - name: a\n    sleep: 5\n", []string{"p.yaml:3: steps[0].sleep: ", `invalid duration "5"`}},
		{"negative timeout", "timeout: -1s\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: timeout: ", "must be positive"}},
		{"zero step timeout", "steps:\n  - name: a\n    sleep: 1s\n    timeout: 0s\n", []string{"p.yaml:4: steps[0].timeout: ", "must be positive"}},
		{"bad stall_after", "stall_after: soon\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: stall_after: ", `invalid duration "soon"`}},
		{"zero step stall_after", "steps:\n  - name: a\n    sleep: 1s\n    stall_after: 0s\n", []string{"p.yaml:4: steps[0].stall_after: ", "must be positive"}},
		{"bad on_stall", "on_stall: panic\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: on_stall: ", `must be alert or fail, got "panic"`}},
		{"bad step on_stall", "steps:\n  - name: a\n    noop: {}\n    on_stall: [fail]\n", []string{"p.yaml:4: steps[0].on_stall: ", "expected a string"}},
		{"duplicate step names", "steps:\n  - name: a\n    noop: {}\n  - name: a\n    noop: {}\n", []string{"p.yaml:4: steps[1].name: ", `duplicate step name "a" (also steps[0])`}},
		{"missing step name", "steps:\n  - sleep: 1s\n", []string{"p.yaml:2: steps[0].name: ", "required"}},
		{"bad name", "name: bad name\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: name: ", `invalid pipeline name "bad name"`}},
		{"name too long", "name: " + strings.Repeat("a", 129) + "\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: name: "}},
		{"retries out of range", "retries: 101\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: retries: ", "0 to 100, got 101"}},
		{"retries not a number", "retries: many\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: retries: ", `expected an integer, got "many"`}},
		{"resume a number", "name: x\nresume: 1\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:2: resume: ", `expected true or false, got "1"`}},
		{"resume a string", "resume: \"true\"\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: resume: ", `expected true or false, got "true"`}},
		{"resume a word", "resume: always\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: resume: ", `expected true or false, got "always"`}},
		{"resume a list", "resume: [true]\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: resume: "}},
		{"bad retry_delay", "retries: 1\nretry_delay: soon\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:2: retry_delay: ", `invalid duration "soon"`}},
		{"zero retry_delay", "retry_delay: 0s\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: retry_delay: ", "must be positive"}},
		{"retry_delay over the max", "retry_delay: 20m\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: retry_delay: ", "20m0s is longer than retry_max_delay (10m0s)"}},
		{"retry_delay over its max", "retry_delay: 2m\nretry_max_delay: 1m\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: retry_delay: ", "longer than retry_max_delay (1m0s)"}},
		{"bad retry_max_delay", "steps: [{name: s, noop: {}}]\nretry_max_delay: [1m]\n", []string{"p.yaml:2: retry_max_delay: ", "expected a string"}},
		{"retry_max_delay over a year", "retry_max_delay: 9000h\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: retry_max_delay: ", "must be at most a year"}},
		{"bad retry_backoff", "retry_backoff: linear\nsteps: [{name: s, noop: {}}]\n", []string{"p.yaml:1: retry_backoff: ", `must be exponential or fixed, got "linear"`}},
		{"exec without command", "steps:\n  - name: a\n    exec:\n      env: {A: b}\n", []string{"p.yaml:3: steps[0].exec.command: ", "required"}},
		{"exec empty command", "steps:\n  - name: a\n    exec: {command: []}\n", []string{"p.yaml:3: steps[0].exec.command: ", "required"}},
		{"exec empty program", "steps:\n  - name: a\n    exec: {command: [\"\", x]}\n", []string{"p.yaml:3: steps[0].exec.command[0]: ", "must not be empty"}},
		{"exec command as string", "steps:\n  - name: a\n    exec:\n      command: ls -l\n", []string{`p.yaml:4: steps[0].exec.command: command is a list of arguments: ["sh", "-c", "ls -l"]`}},
		{"exec command as block", "steps:\n  - name: a\n    exec:\n      command: |\n        ls -l\n", []string{`p.yaml:4: steps[0].exec.command: command is a list of arguments: ["sh", "-c", `}},
		{"exec command as number", "steps:\n  - name: a\n    exec:\n      command: 5\n", []string{`p.yaml:4: steps[0].exec.command: command is a list of arguments: ["sh", "-c", "…"]`}},
		{"exec bad env", "steps:\n  - name: a\n    exec:\n      command: [ls]\n      env: {\"A=B\": x}\n", []string{"p.yaml:5: steps[0].exec.env: ", `invalid variable "A=B"`}},
		{"exec missing dir", "steps:\n  - name: a\n    exec:\n      command: [ls]\n      dir: ./nope\n", []string{"p.yaml:5: steps[0].exec.dir: ", "nope is not a folder"}},
		{"exec bad grace", "steps:\n  - name: a\n    exec:\n      command: [ls]\n      grace: forever\n", []string{"p.yaml:5: steps[0].exec.grace: ", `invalid duration "forever"`}},
		{"http bad url", "steps:\n  - name: a\n    http:\n      url: ftp://example.com/x\n", []string{"p.yaml:4: steps[0].http.url: ", `absolute http:// or https:// URL, got "ftp://example.com/x"`}},
		{"http relative url", "steps:\n  - name: a\n    http: {url: /hook}\n", []string{"p.yaml:3: steps[0].http.url: "}},
		{"http no url", "steps:\n  - name: a\n    http: {method: POST}\n", []string{"p.yaml:3: steps[0].http.url: "}},
		{"http bad expect", "steps:\n  - name: a\n    http:\n      url: http://x\n      expect: 700\n", []string{"p.yaml:5: steps[0].http.expect: ", "got 700"}},
		{"http bad method", "steps:\n  - name: a\n    http:\n      url: http://x\n      method: GE T\n", []string{"p.yaml:5: steps[0].http.method: ", `invalid method "GE T"`}},
		{"http bad header", "steps:\n  - name: a\n    http:\n      url: http://x\n      headers: {\"A B\": x}\n", []string{"p.yaml:5: steps[0].http.headers: ", `invalid header "A B"`}},
		{"noop not a mapping", "steps:\n  - name: a\n    noop: true\n", []string{"p.yaml:3: steps[0].noop: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, "p.yaml")
			p, err := pipeline.Parse(file, []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; got %+v", p)
			}
			var fe *pipeline.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FileError: %v", err, err)
			}
			t.Log(err)
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestParseReportsEveryMistake(t *testing.T) {
	t.Parallel()
	_, err := pipeline.Parse("p.yaml", []byte("retries: -1\nsteps:\n  - name: a\n    sleep: x\n  - name: a\n    noop: {}\n"))
	for _, want := range []string{"p.yaml:1: retries:", "p.yaml:4: steps[0].sleep:", "p.yaml:5: steps[1].name:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

func TestParseNameFromFile(t *testing.T) {
	t.Parallel()
	p, err := pipeline.Parse("some/dir/resize-v2.yml", []byte("steps: [{name: s, noop: {}}]"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "resize-v2" {
		t.Errorf("name = %q, want resize-v2", p.Name)
	}
	_, err = pipeline.Parse("some/dir/bad name.yaml", []byte("steps: [{name: s, noop: {}}]"))
	if err == nil || !strings.Contains(err.Error(), "some/dir/bad name.yaml:1: ") || !strings.Contains(err.Error(), "file name") {
		t.Errorf("error = %v, want one about the file name", err)
	}
	if _, err := pipeline.Parse("some/dir/bad name.yaml", []byte("name: good\nsteps: [{name: s, noop: {}}]")); err != nil {
		t.Errorf("name: should override the file name: %v", err)
	}
}

func TestParseFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "resize.yaml", `
name: resize-images
description: Resize every image in a bucket
retries: 1
resume: true
retry_delay: 2s
retry_backoff: fixed
retry_max_delay: 1m
timeout: 10m
stall_after: 30s
steps:
  - name: prepare
    sleep: 300ms
  - name: resize
    timeout: 5m
    stall_after: 2m
    on_stall: fail
    exec:
      command: ["./resize.sh", "--all"]
      env: {QUALITY: "80", LEVEL: 3}
      dir: ./scripts
  - name: notify
    http: {method: post, url: "http://127.0.0.1:9000/hook", expect: 201, body: "optional string", headers: {X-A: b}}
  - name: default-http
    http: {url: "https://example.com/"}
  - name: nothing
    noop: {}
`)
	ps, err := pipeline.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := ps["resize-images"]
	if p == nil {
		t.Fatalf("pipelines = %v, want resize-images", ps)
	}
	if p.Name != "resize-images" || p.Description != "Resize every image in a bucket" || p.Retries != 1 || !p.Resume ||
		p.Timeout != 10*time.Minute || p.Handler != nil {
		t.Errorf("pipeline = %+v", p)
	}
	if p.RetryDelay != 2*time.Second || p.RetryBackoff != conveyor.BackoffFixed || p.RetryMaxDelay != time.Minute {
		t.Errorf("retry waits = %s, %q, %s; want 2s, fixed, 1m", p.RetryDelay, p.RetryBackoff, p.RetryMaxDelay)
	}
	wantKinds := []string{"sleep", "exec", "http", "http", "noop"}
	if len(p.Steps) != len(wantKinds) {
		t.Fatalf("%d steps, want %d", len(p.Steps), len(wantKinds))
	}
	for i, st := range p.Steps {
		if st.Kind != wantKinds[i] || st.Run == nil {
			t.Errorf("step %d: kind %q (run set: %v), want %q", i, st.Kind, st.Run != nil, wantKinds[i])
		}
	}

	// Stall rules: the step's fields win, one by one.
	if got, want := p.StallOf(0), (conveyor.Stall{After: 30 * time.Second, Action: conveyor.StallAlert}); got != want {
		t.Errorf("stall of step 0 = %+v, want %+v", got, want)
	}
	if got, want := p.StallOf(1), (conveyor.Stall{After: 2 * time.Minute, Action: conveyor.StallFail}); got != want {
		t.Errorf("stall of step 1 = %+v, want %+v", got, want)
	}

	if s, ok := p.Steps[0].Spec.(*pipeline.SleepSpec); !ok || s.Duration != 300*time.Millisecond {
		t.Errorf("sleep spec = %#v", p.Steps[0].Spec)
	}
	resize := p.Steps[1]
	if resize.Name != "resize" || resize.Timeout != 5*time.Minute {
		t.Errorf("resize step = %+v", resize)
	}
	es, ok := resize.Spec.(*pipeline.ExecSpec)
	if !ok {
		t.Fatalf("exec spec = %#v", resize.Spec)
	}
	if strings.Join(es.Command, " ") != "./resize.sh --all" || es.Env["QUALITY"] != "80" || es.Env["LEVEL"] != "3" ||
		es.Dir != filepath.Join(dir, "scripts") || es.Grace != pipeline.DefaultKillGrace {
		t.Errorf("exec spec = %+v", es)
	}
	hs, ok := p.Steps[2].Spec.(*pipeline.HTTPSpec)
	if !ok || hs.Method != "POST" || hs.URL != "http://127.0.0.1:9000/hook" || hs.Expect != 201 || hs.Body != "optional string" || hs.Headers["X-A"] != "b" {
		t.Errorf("http spec = %#v", p.Steps[2].Spec)
	}
	if hs, ok := p.Steps[3].Spec.(*pipeline.HTTPSpec); !ok || hs.Method != "GET" || hs.Expect != 200 {
		t.Errorf("default http spec = %#v", p.Steps[3].Spec)
	}

	// The API shows the specs: snake_case, durations as strings, secrets hidden.
	b, err := json.Marshal(p.Info())
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, want := range []string{`"duration":"300ms"`, `"command":["./resize.sh","--all"]`, `"QUALITY":"\u003credacted\u003e"`,
		`"grace":"5s"`, `"method":"POST"`, `"expect":201`, `"X-A":"\u003credacted\u003e"`, `"timeout":"5m0s"`,
		`"stall_after":"30s","steps"`, `"stall_after":"2m0s","on_stall":"fail"`, `"retries":1,"resume":true`,
		`"retry_delay":"2s","retry_backoff":"fixed","retry_max_delay":"1m0s"`} {
		if !strings.Contains(js, want) {
			t.Errorf("info JSON %s does not contain %s", js, want)
		}
	}
	if strings.Contains(js, `"80"`) {
		t.Errorf("info JSON shows an env value: %s", js)
	}
}

func TestParseExecDirDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := pipeline.Parse(filepath.Join(dir, "p.yaml"), []byte("steps: [{name: s, exec: {command: [ls], grace: 2s}}]"))
	if err != nil {
		t.Fatal(err)
	}
	es := p.Steps[0].Spec.(*pipeline.ExecSpec)
	if es.Dir != dir || es.Grace != 2*time.Second {
		t.Errorf("spec = %+v, want dir %s and grace 2s", es, dir)
	}
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", "steps: [{name: s, noop: {}}]")
	writeFile(t, dir, "b.YML", "name: bee\nsteps: [{name: s, noop: {}}]")
	writeFile(t, dir, ".hidden.yaml", "not: [valid")
	writeFile(t, dir, "notes.txt", "not: [valid")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	ps, err := pipeline.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps["a"] == nil || ps["bee"] == nil {
		t.Errorf("pipelines = %v, want a and bee", ps)
	}
}

func TestLoadDirErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "name: same\nsteps: [{name: s, noop: {}}]")
	b := writeFile(t, dir, "same.yml", "steps: [{name: s, noop: {}}]")
	c := writeFile(t, dir, "c.yaml", "steps:\n  - name: s\n    sleep: 5x\n")
	_, err := pipeline.LoadDir(dir)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, b+`: pipeline "same" is already defined in `+a) {
		t.Errorf("error %q does not name both files of the duplicate", msg)
	}
	if !strings.Contains(msg, c+`:3: steps[0].sleep: invalid duration "5x"`) {
		t.Errorf("error %q does not report the other bad file", msg)
	}

	if _, err := pipeline.LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadDir of a missing folder: no error")
	}
}

// The examples stay valid, and the exec ones do what their comments say.
func TestExamples(t *testing.T) {
	t.Parallel()
	ps, err := pipeline.LoadDir("../examples/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hello", "count", "fail", "slow", "noop", "upload", "resume"} {
		if ps[name] == nil {
			t.Errorf("example %q missing", name)
		}
	}
	if ps["fail"] == nil || ps["count"] == nil {
		t.FailNow()
	}

	// count counts to the input's items, and to 10 whatever else it gets.
	for input, want := range map[string]int{
		`{"bucket":"photos","n":3}`: 10,
		`{"items":3}`:               3,
		`{"items": 2, "tag": "x"}`:  2,
		`{"items":0}`:               10,
		`{"items":1001}`:            10,
		`{"items":"many"}`:          10,
		`{"items":-4}`:              10,
		`not json at all`:           10,
	} {
		t.Run("count "+input, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			x := rec.exec()
			x.Input = json.RawMessage(input)
			if err := ps["count"].Steps[0].Run(t.Context(), x); err != nil {
				t.Fatal(err)
			}
			got := rec.progress()
			if len(got) != want {
				t.Fatalf("%d progress updates, want %d", len(got), want)
			}
			if last := got[want-1]; last.Done != float64(want) || last.Total != float64(want) {
				t.Errorf("last update %+v, want %d/%d", last, want, want)
			}
		})
	}
	t.Run("upload sets data and stalls in its second step", func(t *testing.T) {
		t.Parallel()
		up := ps["upload"]
		if got, want := up.StallOf(1), (conveyor.Stall{After: 2 * time.Second, Action: conveyor.StallAlert}); got != want {
			t.Errorf("stall rule of upload's second step = %+v, want %+v", got, want)
		}
		rec := &recorder{}
		for _, st := range up.Steps {
			if err := st.Run(t.Context(), rec.exec()); err != nil {
				t.Fatal(err)
			}
		}
		const want = `{"bytes":52428800,"files":5,"url":"https://example.com/uploads/files.tar"}`
		if string(rec.data) != want || len(rec.lines()) != 0 {
			t.Errorf("data %s, log lines %q; want %s and no lines", rec.data, rec.lines(), want)
		}
	})
	t.Run("resume fails once in load, then resumes at its checkpoint", func(t *testing.T) {
		t.Parallel()
		p := ps["resume"]
		if !p.Resume || p.Retries != 1 || len(p.Steps) != 3 || p.Steps[1].Name != "load" {
			t.Fatalf("resume: %+v, want resume: true, one retry, a load step second", p)
		}
		load := p.Steps[1].Run
		first := &recorder{}
		x := first.exec()
		x.Attempt = 1
		if err := load(t.Context(), x); conveyor.ErrorCode(err) != conveyor.ESTEPFAILED || !strings.Contains(err.Error(), "the database went away") {
			t.Fatalf("attempt 1: %v, want the step to fail", err)
		}
		cps := first.recorded()
		if want := []string{`{"next": 2}`, `{"next": 3}`, `{"next": 4}`}; !slices.Equal(cps, want) {
			t.Fatalf("attempt 1 checkpoints %q, want %q", cps, want)
		}
		second := &recorder{}
		x = second.exec()
		x.ResumeCheckpoint = json.RawMessage(cps[len(cps)-1])
		if err := load(t.Context(), x); err != nil {
			t.Fatalf("attempt 2: %v", err)
		}
		var loaded []float64
		for _, u := range second.progress() {
			loaded = append(loaded, u.Done)
		}
		if want := []float64{4, 5, 6}; !slices.Equal(loaded, want) || !slices.Equal(second.lines(), []string{"resuming at batch 4"}) {
			t.Errorf("attempt 2 loaded %v and logged %q, want %v after saying it resumes at batch 4", loaded, second.lines(), want)
		}
	})
	t.Run("fail exits 3", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		err := ps["fail"].Steps[0].Run(t.Context(), rec.exec())
		if conveyor.ErrorCode(err) != conveyor.ESTEPFAILED || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("err = %v, want step_failed with exit status 3", err)
		}
		if ps["fail"].Retries != 1 || len(rec.progress()) == 0 {
			t.Errorf("retries = %d, progress = %v", ps["fail"].Retries, rec.progress())
		}
	})
}

func FuzzParse(f *testing.F) {
	examples, _ := filepath.Glob("../examples/pipelines/*.yaml")
	for _, file := range examples {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"steps: [{name: s, noop: {}}]",
		"name: x\nretries: 2\ntimeout: 1m\nsteps:\n  - name: a\n    http: {url: 'http://x/', method: post, headers: {A: b}}\n",
		"steps:\n  - name: a\n    exec: {command: [ls, -l], env: {A: 1}, grace: 1s}\n",
		"a: &x {name: s, sleep: 1s}\nsteps: [*x]\n",
		"steps:\n  - <<: {name: s}\n    noop: {}\n",
		"steps: [{name: a, noop: {}}, {name: a, sleep: 0s}]\n",
		"steps: [{name: a, noop: {}, sleep: 1s}]\n",
		"name: 'bad name'\nsteps: [{name: a, noop: {}}]\n",
		"steps:\r\n  - name: a\r\n    sleep: -1s\r\n",
		"steps: [\n", "", "---\n---\n", "- 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pipeline.Parse("fuzz/p.yaml", data)
		if err != nil {
			checkFileErrors(t, data, err)
			if _, again := pipeline.Parse("fuzz/p.yaml", data); again == nil || stableText(again) != stableText(err) {
				t.Fatalf("parsed twice: %v, then %v", err, again)
			}
			return
		}
		checkPipeline(t, p)
		info, err := json.Marshal(p.Info())
		if err != nil {
			t.Fatalf("info does not marshal: %v", err)
		}
		again, err := pipeline.Parse("fuzz/p.yaml", data)
		if err != nil {
			t.Fatalf("parsed twice: accepted, then %v", err)
		}
		if info2, _ := json.Marshal(again.Info()); string(info2) != string(info) {
			t.Fatalf("parsed twice: %s, then %s", info, info2)
		}
	})
}

// checkFileErrors fails unless every error joined in err is a FileError
// naming the file and, when it has one, a line the file has.
func checkFileErrors(t *testing.T, data []byte, err error) {
	t.Helper()
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	// YAML breaks lines at \n, \r\n and a lone \r.
	lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
	for _, err := range errs {
		var fe *pipeline.FileError
		if !errors.As(err, &fe) {
			t.Fatalf("error %q is not a FileError", err)
		}
		prefix := "fuzz/p.yaml: "
		if fe.Line > 0 {
			prefix = fmt.Sprintf("fuzz/p.yaml:%d: ", fe.Line)
		}
		if fe.File != "fuzz/p.yaml" || fe.Line < 0 || fe.Line > lines || fe.Message == "" || !strings.HasPrefix(err.Error(), prefix) {
			t.Fatalf("error %q (%+v) does not name the file and a line of its %d", err, fe, lines)
		}
	}
}

// stableText is err as the same file always gives it. Of several unknown
// fields in one mapping, the YAML library names one at random (it ranges
// over a map), so only that one was unknown is compared for those.
func stableText(err error) string {
	var fe *pipeline.FileError
	if errors.As(err, &fe) && strings.Contains(fe.Message, "unknown field ") {
		// Which of several unknown fields is named, with its mapping and
		// line, is the library's random pick (also through a "<<" merge):
		// only that some field was unknown is stable.
		return fe.File + ": unknown field"
	}
	return err.Error()
}

var (
	pipelineName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	kindSpecs    = map[string]reflect.Type{
		"exec":  reflect.TypeFor[*pipeline.ExecSpec](),
		"http":  reflect.TypeFor[*pipeline.HTTPSpec](),
		"sleep": reflect.TypeFor[*pipeline.SleepSpec](),
		"noop":  reflect.TypeFor[*pipeline.NoopSpec](),
	}
)

// checkPipeline fails unless p is a pipeline the engine can run: a name
// fit for URLs, limits kept, and uniquely named steps of a known kind,
// each with its settings and something to run.
func checkPipeline(t *testing.T, p *conveyor.Pipeline) {
	t.Helper()
	if !pipelineName.MatchString(p.Name) || len(p.Steps) == 0 || len(p.Steps) > pipeline.MaxSteps || p.Retries < 0 || p.Retries > pipeline.MaxRetries || p.Timeout < 0 || p.Handler != nil {
		t.Fatalf("invalid pipeline accepted: %+v", p)
	}
	names := map[string]bool{}
	for _, st := range p.Steps {
		if st.Name == "" || len(st.Name) > 128 || strings.ContainsFunc(st.Name, unicode.IsControl) || names[st.Name] {
			t.Fatalf("invalid or duplicate step name %q accepted", st.Name)
		}
		names[st.Name] = true
		if st.Run == nil || st.Timeout < 0 || reflect.TypeOf(st.Spec) != kindSpecs[st.Kind] || kindSpecs[st.Kind] == nil {
			t.Fatalf("invalid step accepted: %+v", st)
		}
		switch spec := st.Spec.(type) {
		case *pipeline.ExecSpec:
			if len(spec.Command) == 0 || spec.Command[0] == "" || spec.Grace <= 0 {
				t.Fatalf("invalid exec step accepted: %+v", spec)
			}
		case *pipeline.HTTPSpec:
			if spec.Method == "" || spec.Method != strings.ToUpper(spec.Method) || spec.Expect < 100 || spec.Expect > 599 {
				t.Fatalf("invalid http step accepted: %+v", spec)
			}
		case *pipeline.SleepSpec:
			if spec.Duration < 0 {
				t.Fatalf("invalid sleep step accepted: %+v", spec)
			}
		}
	}
}
