package conveyor

import (
	"context"
	"encoding/json"
	"time"
)

// HandlerFunc runs work for an execution. It reports progress through x and
// must return promptly once ctx is done (cancel, timeout or shutdown).
type HandlerFunc func(ctx context.Context, x *Exec) error

// Pipeline is a named, ordered list of steps, or a single Go handler that
// reports its own steps (Handler set, Steps empty).
type Pipeline struct {
	Name        string
	Description string
	Retries     int           // extra attempts after a failure or a crash
	Timeout     time.Duration // each attempt of the whole pipeline; 0 = none
	Steps       []Step
	Handler     HandlerFunc
}

// Step is one step of a declarative pipeline.
type Step struct {
	Name    string
	Kind    string        // "exec", "http", "sleep", ...
	Timeout time.Duration // 0 = none
	Spec    any           // the step's settings, shown by GET /pipelines/{name}
	Run     HandlerFunc
}

// UnknownSteps as Update.Steps says the total number of steps is unknown.
const UnknownSteps = -1

// Update is a progress report from running work. Step, Steps and StepName
// are for handlers, which own their steps; the engine sets them itself for
// declarative pipelines and ignores them there. Done/Total is progress
// inside the current step (Total 0: none given).
type Update struct {
	Step     int    // 1-based step now running; 0 keeps the current one
	Steps    int    // total steps; 0 keeps the current total, UnknownSteps clears it
	StepName string // "" keeps the current name
	Done     float64
	Total    float64
	Message  string
	Metrics  map[string]float64
}

// Exec is what running work sees of its execution. The engine builds it;
// the Func fields are how reports reach the engine.
type Exec struct {
	ID       string
	Pipeline string
	Attempt  int
	Input    json.RawMessage
	Step     string // name of the running step; "" in a handler

	ProgressFunc func(Update)
	LogFunc      func(stream, line string)
	ResultFunc   func(json.RawMessage)
}

// Progress reports progress. It never blocks on subscribers. Texts are
// cleaned (CleanText): a NUL or invalid UTF-8 becomes U+FFFD.
func (x *Exec) Progress(u Update) {
	if x.ProgressFunc == nil {
		return
	}
	u.StepName, u.Message = CleanText(u.StepName), CleanText(u.Message)
	for k := range u.Metrics {
		if !StorableText(k) {
			u.Metrics = cleanKeys(u.Metrics)
			break
		}
	}
	x.ProgressFunc(u)
}

// cleanKeys returns a copy of m with its keys cleaned; the caller's map
// is left alone.
func cleanKeys(m map[string]float64) map[string]float64 {
	c := make(map[string]float64, len(m))
	for k, v := range m {
		c[CleanText(k)] = v
	}
	return c
}

// Log appends a line to the execution's log, as stream "log".
func (x *Exec) Log(line string) { x.LogTo("log", line) }

// LogTo appends a line to the execution's log from the named stream, such
// as "stdout" or "stderr" of an exec step.
// Texts are cleaned (CleanText) and a line is cut at MaxLogLineBytes.
func (x *Exec) LogTo(stream, line string) {
	if x.LogFunc != nil {
		x.LogFunc(CleanText(stream), CutLogLine(CleanText(line)))
	}
}

// SetResult records v, marshalled to JSON, as the execution's result.
// EINVALID when that is over MaxResultBytes; the result stays as it was.
func (x *Exec) SetResult(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxResultBytes {
		return Errorf(EINVALID, "result is %d bytes of JSON; at most %d are kept", len(b), MaxResultBytes)
	}
	if x.ResultFunc != nil {
		x.ResultFunc(CleanJSON(b))
	}
	return nil
}

// PipelineInfo is how the API shows a pipeline. Durations are Go duration
// strings ("5m0s"), omitted when not set.
type PipelineInfo struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Kind        string     `json:"kind"` // "steps" or "handler"
	Retries     int        `json:"retries"`
	Timeout     string     `json:"timeout,omitempty"`
	Steps       []StepInfo `json:"steps"`
}

// StepInfo is how the API shows a step.
type StepInfo struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Timeout string `json:"timeout,omitempty"`
	Spec    any    `json:"spec,omitempty"`
}

// Info describes p for the API.
func (p *Pipeline) Info() PipelineInfo {
	v := PipelineInfo{Name: p.Name, Description: p.Description, Kind: "steps", Retries: p.Retries, Steps: []StepInfo{}}
	if p.Handler != nil {
		v.Kind = "handler"
	}
	if p.Timeout > 0 {
		v.Timeout = p.Timeout.String()
	}
	for _, st := range p.Steps {
		sv := StepInfo{Name: st.Name, Kind: st.Kind, Spec: st.Spec}
		if st.Timeout > 0 {
			sv.Timeout = st.Timeout.String()
		}
		v.Steps = append(v.Steps, sv)
	}
	return v
}
