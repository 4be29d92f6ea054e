package conveyor

import (
	"context"
	"encoding/json"
	"fmt"
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
	Stall       Stall         // its steps' stall alerts, unless a step sets its own
	Steps       []Step
	Handler     HandlerFunc

	// Resume starts a retried attempt at the step that did not finish,
	// with its last checkpoint, instead of at step 1 (see ResumeOf).
	Resume bool
	// The waits before retries (RetryPolicy): the first, BackoffExponential
	// or BackoffFixed, and the longest; zero values take the defaults.
	RetryDelay    time.Duration
	RetryBackoff  string
	RetryMaxDelay time.Duration
}

// Step is one step of a declarative pipeline.
type Step struct {
	Name    string
	Kind    string        // "exec", "http", "sleep", ...
	Timeout time.Duration // 0 = none
	Stall   Stall         // each field set wins over the pipeline's
	Spec    any           // the step's settings, shown by GET /pipelines/{name}
	Run     HandlerFunc
}

// Stall is when a running step counts as stalled, and what happens then.
type Stall struct {
	// After is how long a step may report no progress, data or log line
	// before it counts as stalled; 0 leaves it to the pipeline (and there
	// means never).
	After time.Duration
	// Action is what a stall does: StallAlert or StallFail; "" leaves it
	// to the pipeline (and there means StallAlert).
	Action string
}

// info is s as PipelineInfo and StepInfo show it: what is set.
func (s Stall) info() (after, action string) {
	if s.After > 0 {
		after = s.After.String()
	}
	return after, s.Action
}

// The stall actions.
const (
	StallAlert = "alert" // a stalled event, nothing else
	StallFail  = "fail"  // a stalled event, then the execution fails with ESTALLED
)

// StallOf is the stall rule of step i (0-based) of p, or of p's handler
// (i < 0): the step's fields where it sets them, else the pipeline's.
func (p *Pipeline) StallOf(i int) Stall {
	s := p.Stall
	if i >= 0 && i < len(p.Steps) {
		if st := p.Steps[i].Stall; st.After > 0 {
			s.After = st.After
		}
		if st := p.Steps[i].Stall; st.Action != "" {
			s.Action = st.Action
		}
	}
	if s.Action == "" {
		s.Action = StallAlert
	}
	return s
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
	// ResumeCheckpoint is the checkpoint the step (or handler) resumes
	// from, JSON: the last one an earlier attempt recorded in it, in a
	// pipeline with Resume. nil on a first attempt, and when there is none.
	ResumeCheckpoint json.RawMessage

	ProgressFunc func(Update)
	LogFunc      func(stream, line string)
	ResultFunc   func(json.RawMessage)
	DataFunc     func(patch json.RawMessage) error
	// CheckpointFunc stores a checkpoint (checked by CheckpointJSON) and
	// returns once it is stored.
	CheckpointFunc func(checkpoint json.RawMessage) error
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

// SetData merges patch into the execution's data as a JSON merge patch
// (MergeData): a key set to nil is removed. EINVALID when the data would
// be over MaxDataBytes; it stays as it was. Watchers get the whole data
// in a data message.
func (x *Exec) SetData(patch map[string]any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return Errorf(EINVALID, "data: %v", err)
	}
	return x.SetDataJSON(b)
}

// SetDataJSON is SetData for a patch already in JSON (a JSON object),
// as an exec step's ::data line gives it.
func (x *Exec) SetDataJSON(patch json.RawMessage) error {
	if x.DataFunc == nil {
		return nil
	}
	return x.DataFunc(patch)
}

// Checkpoint records v, marshalled to JSON, as the running step's (or
// handler's) checkpoint: in a pipeline with Resume, a retried attempt
// starts in that step with the last one (LastCheckpoint). It returns
// once the checkpoint is stored, so work done before it is not lost to
// a crash; a pipeline without Resume stores none. EINVALID when v is
// null or over MaxCheckpointBytes of JSON; the checkpoint stays as it
// was.
func (x *Exec) Checkpoint(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return Errorf(EINVALID, "checkpoint: %v", err)
	}
	return x.CheckpointJSON(b)
}

// CheckpointJSON is Checkpoint for a checkpoint already in JSON, as an
// exec step's ::checkpoint line gives it.
func (x *Exec) CheckpointJSON(checkpoint json.RawMessage) error {
	b, err := CheckpointJSON(checkpoint)
	if err != nil || x.CheckpointFunc == nil {
		return err
	}
	return x.CheckpointFunc(b)
}

// LastCheckpoint decodes into v the checkpoint the step (or handler)
// resumes from (ResumeCheckpoint) and reports true; false, leaving v
// alone, when there is none, as on a first attempt.
func (x *Exec) LastCheckpoint(v any) (bool, error) {
	if x.ResumeCheckpoint == nil {
		return false, nil
	}
	if err := json.Unmarshal(x.ResumeCheckpoint, v); err != nil {
		return true, fmt.Errorf("decode checkpoint: %w", err)
	}
	return true, nil
}

// PipelineInfo is how the API shows a pipeline. Durations are Go duration
// strings ("5m0s"), omitted when not set.
type PipelineInfo struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Kind        string     `json:"kind"` // "steps" or "handler"
	Retries     int        `json:"retries"`
	Resume      bool       `json:"resume"`
	Timeout     string     `json:"timeout,omitempty"`
	StallAfter  string     `json:"stall_after,omitempty"`
	OnStall     string     `json:"on_stall,omitempty"`
	Steps       []StepInfo `json:"steps"`

	// The retry policy in effect, defaults filled in.
	RetryDelay    string `json:"retry_delay"`
	RetryBackoff  string `json:"retry_backoff"`
	RetryMaxDelay string `json:"retry_max_delay"`
}

// StepInfo is how the API shows a step.
type StepInfo struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Timeout    string `json:"timeout,omitempty"`
	StallAfter string `json:"stall_after,omitempty"`
	OnStall    string `json:"on_stall,omitempty"`
	Spec       any    `json:"spec,omitempty"`
}

// Info describes p for the API.
func (p *Pipeline) Info() PipelineInfo {
	rp := p.RetryPolicy()
	v := PipelineInfo{Name: p.Name, Description: p.Description, Kind: "steps", Retries: p.Retries, Resume: p.Resume, Steps: []StepInfo{},
		RetryDelay: rp.Delay.String(), RetryBackoff: rp.Backoff, RetryMaxDelay: rp.MaxDelay.String()}
	if p.Handler != nil {
		v.Kind = "handler"
	}
	if p.Timeout > 0 {
		v.Timeout = p.Timeout.String()
	}
	v.StallAfter, v.OnStall = p.Stall.info()
	for _, st := range p.Steps {
		sv := StepInfo{Name: st.Name, Kind: st.Kind, Spec: st.Spec}
		sv.StallAfter, sv.OnStall = st.Stall.info()
		if st.Timeout > 0 {
			sv.Timeout = st.Timeout.String()
		}
		v.Steps = append(v.Steps, sv)
	}
	return v
}
