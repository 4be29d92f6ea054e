package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/conveyor-run/conveyor"
)

// Limits of a pipeline file.
const (
	MaxSteps        = 1000
	MaxRetries      = 100
	MaxFileSize     = 1 << 20 // bytes
	maxStepNameSize = 128     // bytes
)

// namePattern is what a pipeline name must match: it appears in URLs and
// on command lines.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// FileError is a mistake in a pipeline file. It reads like a compiler's
// ("pipelines/resize.yaml:7: steps[1].timeout: invalid duration "5x"") so
// editors and people can jump to it.
type FileError struct {
	File    string
	Line    int    // 1-based; 0 when no line applies
	Field   string // path of the field, e.g. "steps[1].timeout"; "" when none applies
	Message string
}

// Error implements the error interface.
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// LoadDir loads every *.yaml and *.yml file in dir (not in subfolders; files
// whose names start with a dot are skipped). It reports the mistakes of all
// files at once, joined, so one run of the server shows every broken file;
// each is a *FileError. Two files defining the same pipeline name are a
// mistake too.
func LoadDir(dir string) (map[string]*conveyor.Pipeline, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read pipelines folder: %w", err)
	}
	pipelines := map[string]*conveyor.Pipeline{}
	files := map[string]string{} // pipeline name -> the file defining it
	var errs []error
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		file := filepath.Join(dir, e.Name())
		p, err := loadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := files[p.Name]; dup {
			errs = append(errs, &FileError{File: file, Message: fmt.Sprintf("pipeline %q is already defined in %s", p.Name, other)})
			continue
		}
		files[p.Name], pipelines[p.Name] = file, p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pipelines, nil
}

func loadFile(file string) (*conveyor.Pipeline, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, &FileError{File: file, Message: ioMessage(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &FileError{File: file, Message: ioMessage(err)}
	}
	if len(data) > MaxFileSize {
		return nil, &FileError{File: file, Message: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	return Parse(file, data)
}

// ioMessage is err without the path, which a FileError already names.
func ioMessage(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse parses and validates one pipeline file. file is its path: it names
// the file in errors, gives the pipeline its default name (the file name
// without extension) and its folder, where relative exec dirs start. Parse
// reads nothing but data, except that it checks exec dirs exist. Its error
// is one or more *FileError, joined.
func Parse(file string, data []byte) (p *conveyor.Pipeline, err error) {
	defer func() {
		// The YAML library is outside input's first reader; a bug there
		// must cost one file, not the server.
		if v := recover(); v != nil {
			p, err = nil, &FileError{File: file, Message: fmt.Sprintf("cannot parse YAML: %v", v)}
		}
		clampLines(err, lineCount(data))
	}()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, (&document{file: file}).yamlError(err)
	}
	if len(f.Docs) > 1 {
		fe := &FileError{File: file, Message: fmt.Sprintf("a pipeline file holds one YAML document, this one has %d", len(f.Docs))}
		if tk := f.Docs[1].Start; tk != nil {
			fe.Line = tk.Position.Line
		}
		return nil, fe
	}
	var raw rawPipeline
	d := &document{file: file, lines: map[string]int{}, fields: map[*token.Token]string{}, keyParents: map[*token.Token]string{}}
	if len(f.Docs) == 1 && f.Docs[0].Body != nil {
		ast.Walk(d, f.Docs[0].Body)
		if err := yaml.NodeToValue(f.Docs[0].Body, &raw, yaml.DisallowUnknownField()); err != nil {
			return nil, d.yamlError(err)
		}
	}
	p = d.pipeline(&raw)
	if err := d.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// The file as written (with HTTPSpec, which needs nothing else). Durations
// are strings so that a bad one gets our message, with its field and line;
// the step kinds are pointers so that "present" is visible.
type (
	rawPipeline struct {
		Name        string    `yaml:"name"`
		Description string    `yaml:"description"`
		Retries     int       `yaml:"retries"`
		Resume      bool      `yaml:"resume"`
		Timeout     string    `yaml:"timeout"`
		StallAfter  string    `yaml:"stall_after"`
		OnStall     string    `yaml:"on_stall"`
		Steps       []rawStep `yaml:"steps"`

		RetryDelay    string `yaml:"retry_delay"`
		RetryBackoff  string `yaml:"retry_backoff"`
		RetryMaxDelay string `yaml:"retry_max_delay"`
	}
	rawStep struct {
		Name       string    `yaml:"name"`
		Timeout    string    `yaml:"timeout"`
		StallAfter string    `yaml:"stall_after"`
		OnStall    string    `yaml:"on_stall"`
		Exec       *rawExec  `yaml:"exec"`
		HTTP       *HTTPSpec `yaml:"http"`
		Sleep      *string   `yaml:"sleep"`
		Noop       *struct{} `yaml:"noop"`
	}
	rawExec struct {
		Command []string          `yaml:"command"`
		Env     map[string]string `yaml:"env"`
		Dir     string            `yaml:"dir"`
		Grace   string            `yaml:"grace"`
	}
)

// document validates one parsed file, collecting its mistakes with the
// line of the field each is about.
type document struct {
	file       string
	lines      map[string]int          // field path -> line of its key
	fields     map[*token.Token]string // token -> path of the field it belongs to
	keyParents map[*token.Token]string // key token -> path of its mapping
	errs       []error
}

// Visit indexes the parse tree by field path. The first node seen for a
// path is the mapping entry, whose line is the key's.
func (d *document) Visit(n ast.Node) ast.Visitor {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return nil
	}
	path := strings.TrimPrefix(strings.TrimPrefix(n.GetPath(), "$"), ".")
	tk := n.GetToken()
	if tk == nil {
		return d
	}
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = tk.Position.Line
	}
	d.fields[tk] = path
	// A key's path cannot be cut back to its mapping's: the YAML library
	// quotes keys holding any of $*.[] ('a.b'), and gives a flow key
	// without a colon ({a, b: 1}) the mapping's own path.
	if m, ok := n.(*ast.MappingNode); ok {
		for _, kv := range m.Values {
			if kv != nil && kv.Key != nil && kv.Key.GetToken() != nil {
				d.keyParents[kv.Key.GetToken()] = path
			}
		}
	}
	return d
}

// line is the line of field, or of its nearest ancestor that is written.
func (d *document) line(field string) int {
	for {
		if l, ok := d.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	if l, ok := d.lines[""]; ok {
		return l
	}
	return 1
}

func (d *document) errorf(field, format string, args ...any) {
	d.errs = append(d.errs, &FileError{File: d.file, Line: d.line(field), Field: field, Message: fmt.Sprintf(format, args...)})
}

func (d *document) err() error { return errors.Join(d.errs...) }

// yamlError turns an error of the YAML library into a FileError, with
// our field path in place of its Go type names.
func (d *document) yamlError(err error) error {
	fe := &FileError{File: d.file, Message: err.Error()}
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return fe
	}
	fe.Message = ye.GetMessage()
	if tk := ye.GetToken(); tk != nil {
		fe.Line, fe.Field = tk.Position.Line, d.fields[tk]
	}
	var te *yaml.TypeError
	var ue *yaml.UnknownFieldError
	var ne *yaml.UnexpectedNodeTypeError
	switch {
	case errors.As(err, &ne) && ne.Expected == ast.SequenceType && strings.HasSuffix(fe.Field, ".exec.command"):
		// A shell command line written as a string is the usual first
		// mistake; show the list that runs it.
		line := "…"
		if ne.Actual == ast.StringType && ne.Token != nil {
			line = ne.Token.Value
		}
		fe.Message = fmt.Sprintf(`command is a list of arguments: ["sh", "-c", %s]`, strconv.Quote(line))
	case errors.As(err, &te):
		fe.Message = "expected " + kindName(te.DstType)
		if tk := ye.GetToken(); tk != nil {
			fe.Message += fmt.Sprintf(", got %q", tk.Value)
		}
	case errors.As(err, &ue):
		// The path ends in the unknown key; name its parent, the message
		// names the key.
		fe.Field = d.parentField(fe.Field, ye.GetToken())
	}
	return fe
}

// parentField is the path of the mapping that holds key token tk, whose
// own path is field.
func (d *document) parentField(field string, tk *token.Token) string {
	if parent, ok := d.keyParents[tk]; ok {
		return parent
	}
	if i := strings.LastIndexAny(field, ".["); i >= 0 {
		return field[:i]
	}
	return ""
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "a mapping"
	}
	return t.String()
}

func (d *document) pipeline(raw *rawPipeline) *conveyor.Pipeline {
	p := &conveyor.Pipeline{Name: raw.Name, Description: raw.Description, Retries: raw.Retries, Resume: raw.Resume}
	switch {
	case p.Name == "":
		p.Name = strings.TrimSuffix(filepath.Base(d.file), filepath.Ext(d.file))
		if !namePattern.MatchString(p.Name) {
			d.errorf("", "the file name makes the pipeline name %q, which is not valid (letters, digits, '_', '.' and '-', up to 128, starting with a letter or digit): rename the file or set name:", p.Name)
		}
	case !namePattern.MatchString(p.Name):
		d.errorf("name", "invalid pipeline name %q: use letters, digits, '_', '.' and '-', up to 128, starting with a letter or digit", p.Name)
	}
	if raw.Retries < 0 || raw.Retries > MaxRetries {
		d.errorf("retries", "must be 0 to %d, got %d", MaxRetries, raw.Retries)
	}
	if raw.Timeout != "" {
		p.Timeout = d.duration("timeout", raw.Timeout, false)
	}
	d.retryWaits(p, raw)
	p.Stall = d.stall("", raw.StallAfter, raw.OnStall)
	switch {
	case len(raw.Steps) == 0:
		d.errorf("steps", "at least one step is required")
	case len(raw.Steps) > MaxSteps:
		d.errorf("steps", "at most %d steps, got %d", MaxSteps, len(raw.Steps))
	default:
		seen := map[string]int{} // step name -> index
		for i := range raw.Steps {
			p.Steps = append(p.Steps, d.step(i, &raw.Steps[i], seen))
		}
	}
	return p
}

func (d *document) step(i int, raw *rawStep, seen map[string]int) conveyor.Step {
	at := fmt.Sprintf("steps[%d]", i)
	st := conveyor.Step{Name: raw.Name}
	prev, dup := seen[raw.Name]
	switch {
	case raw.Name == "":
		d.errorf(at+".name", "required")
	case len(raw.Name) > maxStepNameSize || strings.ContainsFunc(raw.Name, unicode.IsControl):
		d.errorf(at+".name", "must be at most %d bytes without control characters", maxStepNameSize)
	case dup:
		d.errorf(at+".name", "duplicate step name %q (also steps[%d])", raw.Name, prev)
	default:
		seen[raw.Name] = i
	}
	if raw.Timeout != "" {
		st.Timeout = d.duration(at+".timeout", raw.Timeout, false)
	}
	st.Stall = d.stall(at+".", raw.StallAfter, raw.OnStall)

	var kinds []string
	for _, k := range []struct {
		name    string
		present bool
	}{{"exec", raw.Exec != nil}, {"http", raw.HTTP != nil}, {"sleep", raw.Sleep != nil}, {"noop", raw.Noop != nil}} {
		if k.present {
			kinds = append(kinds, k.name)
		}
	}
	switch len(kinds) {
	case 0:
		d.errorf(at, "a step needs exactly one of exec, http, sleep or noop")
		return st
	case 1:
	default:
		d.errorf(at, "a step runs exactly one of exec, http, sleep or noop; this one has %s", strings.Join(kinds, " and "))
		return st
	}
	st.Kind = kinds[0]
	switch st.Kind {
	case "exec":
		s := d.exec(at+".exec", raw.Exec)
		st.Spec, st.Run = s, s.Run
	case "http":
		s := d.http(at+".http", raw.HTTP)
		st.Spec, st.Run = s, s.Run
	case "sleep":
		s := &SleepSpec{Duration: d.duration(at+".sleep", *raw.Sleep, true)}
		st.Spec, st.Run = s, s.Run
	case "noop":
		s := &NoopSpec{}
		st.Spec, st.Run = s, s.Run
	}
	return st
}

// duration parses a Go duration, which must be positive (or zero, when
// zeroOK).
func (d *document) duration(field, s string, zeroOK bool) time.Duration {
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorf(field, "invalid duration %q (use a number and a unit: 300ms, 5s, 10m, 1h30m)", s)
	case v < 0 || (v == 0 && !zeroOK):
		d.errorf(field, "must be positive, got %s", s)
	}
	return v
}

// retryWaits reads retry_delay, retry_backoff and retry_max_delay into p:
// each wait at most conveyor.MaxWait, the first no longer than the
// longest.
func (d *document) retryWaits(p *conveyor.Pipeline, raw *rawPipeline) {
	wait := func(field, s string) time.Duration {
		if s == "" {
			return 0
		}
		v := d.duration(field, s, false)
		if v > conveyor.MaxWait {
			d.errorf(field, "must be at most a year (%s), got %s", conveyor.MaxWait, s)
		}
		return v
	}
	p.RetryDelay, p.RetryMaxDelay = wait("retry_delay", raw.RetryDelay), wait("retry_max_delay", raw.RetryMaxDelay)
	switch raw.RetryBackoff {
	case "", conveyor.BackoffExponential, conveyor.BackoffFixed:
		p.RetryBackoff = raw.RetryBackoff
	default:
		d.errorf("retry_backoff", "must be %s or %s, got %q", conveyor.BackoffExponential, conveyor.BackoffFixed, raw.RetryBackoff)
	}
	if rp := p.RetryPolicy(); p.RetryDelay > 0 && rp.Delay > rp.MaxDelay {
		d.errorf("retry_delay", "%s is longer than retry_max_delay (%s)", rp.Delay, rp.MaxDelay)
	}
}

// stall reads stall_after and on_stall of the pipeline (at "") or of a
// step (at "steps[N].").
func (d *document) stall(at, after, action string) conveyor.Stall {
	var s conveyor.Stall
	if after != "" {
		s.After = d.duration(at+"stall_after", after, false)
	}
	switch action {
	case "", conveyor.StallAlert, conveyor.StallFail:
		s.Action = action
	default:
		d.errorf(at+"on_stall", "must be %s or %s, got %q", conveyor.StallAlert, conveyor.StallFail, action)
	}
	return s
}

func (d *document) exec(at string, raw *rawExec) *ExecSpec {
	s := &ExecSpec{Command: raw.Command, Env: raw.Env, Grace: DefaultKillGrace}
	switch {
	case len(raw.Command) == 0:
		d.errorf(at+".command", `required: the program and its arguments, e.g. ["./resize.sh", "--all"]`)
	case raw.Command[0] == "":
		d.errorf(at+".command[0]", "the program must not be empty")
	}
	for j, arg := range raw.Command {
		if strings.ContainsRune(arg, 0) {
			d.errorf(fmt.Sprintf("%s.command[%d]", at, j), "contains a NUL byte")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(raw.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(raw.Env[k], 0) {
			d.errorf(at+".env", "invalid variable %q: names are non-empty without '=', and neither holds a NUL byte", k)
		}
	}

	// Relative dirs start at the pipeline file's folder, so a pipelines
	// folder works wherever the server was started; that folder is also
	// the default.
	base := filepath.Dir(d.file)
	dir := raw.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(base, dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		d.errorf(at+".dir", "%v", err)
	}
	s.Dir = abs
	if raw.Dir != "" {
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			d.errorf(at+".dir", "%s is not a folder", abs)
		}
	}
	if raw.Grace != "" {
		s.Grace = d.duration(at+".grace", raw.Grace, false)
	}
	return s
}

// http validates s and fills in its defaults.
func (d *document) http(at string, s *HTTPSpec) *HTTPSpec {
	if strings.ContainsFunc(s.Method, func(r rune) bool { return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') }) {
		d.errorf(at+".method", "invalid method %q", s.Method)
	}
	s.Method = strings.ToUpper(s.Method)
	if s.Method == "" {
		s.Method = "GET"
	}
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.errorf(at+".url", "must be an absolute http:// or https:// URL, got %q", s.URL)
	}
	if s.Expect == 0 {
		s.Expect = 200
	}
	if s.Expect < 100 || s.Expect > 599 {
		d.errorf(at+".expect", "must be an HTTP status, 100 to 599, got %d", s.Expect)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
		if k == "" || strings.ContainsAny(k, " \t\r\n:\x00") || strings.ContainsAny(s.Headers[k], "\r\n\x00") {
			d.errorf(at+".headers", "invalid header %q", k)
		}
	}
	return s
}

// lineCount is how many lines data has, as YAML breaks them: at \n, \r\n
// and a lone \r.
func lineCount(data []byte) int {
	return bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
}

// clampLines keeps the lines of err's FileErrors within the file's n
// lines: the YAML library can place an error at end of input on a line
// past the last (seen with a comment before "\r\n").
func clampLines(err error, n int) {
	var fe *FileError
	if errors.As(err, &fe) && fe.Line > n {
		fe.Line = n
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			clampLines(e, n)
		}
	}
}
