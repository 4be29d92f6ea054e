package conveyor

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Resume from a checkpoint. A pipeline with Resume set starts a retried
// attempt where the last one got to instead of at step 1: the engine
// records durably, before it runs each step of such a pipeline, that the
// step began (a Checkpoint without Data), and each checkpoint the step
// records (Exec.Checkpoint, a ::checkpoint line) with it; the store keeps
// the newest on the execution (ResumeStep, Checkpoint), fenced by
// attempt as events are. Where the next attempt starts is ResumeOf's
// rule; what it keeps of the progress, Resumable's.

// MaxCheckpointBytes is the most a checkpoint may take, as JSON.
const MaxCheckpointBytes = 64 << 10

// Checkpoint is a write of where a running attempt of a resume pipeline
// is (Store.SaveCheckpoints): the step it is in and the checkpoint that
// step recorded last.
type Checkpoint struct {
	ExecutionID string
	Attempt     int
	// Step is the 1-based step of a declarative pipeline the attempt is
	// in; 0 in a handler, which owns its steps.
	Step int
	// Data is the step's newest checkpoint, JSON; nil when the step has
	// recorded none yet (the write that says it began).
	Data json.RawMessage
	// Dropped is set by Store.SaveCheckpoints on a write it did not keep
	// (fenced off: its attempt no longer runs). Never stored.
	Dropped bool
}

// CheckpointJSON returns b, a checkpoint given as JSON, as it is stored:
// invalid UTF-8 replaced (CleanJSON). EINVALID unless b is one JSON
// value other than null, of at most MaxCheckpointBytes: null would read
// as "no checkpoint".
func CheckpointJSON(b []byte) (json.RawMessage, error) {
	switch b = CleanJSON(b); {
	case len(b) > MaxCheckpointBytes:
		return nil, Errorf(EINVALID, "checkpoint is %d bytes of JSON; at most %d are kept", len(b), MaxCheckpointBytes)
	case !json.Valid(b):
		return nil, Errorf(EINVALID, "checkpoint is not valid JSON")
	case strings.TrimSpace(string(b)) == "null":
		return nil, Errorf(EINVALID, "checkpoint must not be null")
	}
	return b, nil
}

// Validate returns EINVALID unless c may be written by
// Store.SaveCheckpoints: it names an execution and a started attempt,
// its step is not negative, and its data, if any, is a checkpoint
// CheckpointJSON takes as it is.
func (c *Checkpoint) Validate() error {
	switch {
	case c.ExecutionID == "":
		return Errorf(EINVALID, "checkpoint has no execution id")
	case c.Attempt <= 0 || c.Step < 0:
		return Errorf(EINVALID, "checkpoint of %s: attempt %d, step %d; want a started attempt and a step of 0 or more", c.ExecutionID, c.Attempt, c.Step)
	case c.Data == nil:
		return nil
	case !utf8.Valid(c.Data):
		return Errorf(EINVALID, "checkpoint of %s is not valid UTF-8", c.ExecutionID)
	}
	if _, err := CheckpointJSON(c.Data); err != nil {
		return err
	}
	return nil
}

// Resumable reports whether ex's attempts recorded where to resume: a
// step that began or a checkpoint. Only pipelines with Resume record
// one. An attempt that ends retrying keeps its progress when it is
// resumable, for the next one continues from there; otherwise the next
// one starts over and the progress is cleared (see Interrupt).
func (ex *Execution) Resumable() bool {
	return ex.ResumeStep > 0 || ex.Checkpoint != nil
}

// Resume is where an attempt starts.
type Resume struct {
	// Step is the 1-based step of a declarative pipeline it starts at;
	// 0 for a handler, which decides where to continue itself.
	Step int
	// Checkpoint is what that step (or the handler) gets as its last
	// checkpoint (Exec.ResumeCheckpoint); nil: none.
	Checkpoint json.RawMessage
	// Progress is the progress it continues from; nil: from none.
	Progress *Progress
}

// ResumeOf is where ex, just claimed, starts running p. Without
// p.Resume, or with nothing recorded (a first attempt), it starts afresh:
// step 1, no checkpoint, no progress. With it, it starts at the step
// that did not finish, with that step's last checkpoint, continuing the
// progress it had; a handler gets its last checkpoint. A recorded step
// that p does not have (the file changed since) starts it afresh too.
func (p *Pipeline) ResumeOf(ex *Execution) Resume {
	fresh := Resume{Step: 1}
	if p.Handler != nil {
		fresh.Step = 0
	}
	if !p.Resume || !ex.Resumable() {
		return fresh
	}
	if p.Handler != nil {
		return Resume{Checkpoint: ex.Checkpoint, Progress: ex.Progress}
	}
	if ex.ResumeStep < 1 || ex.ResumeStep > len(p.Steps) {
		return fresh
	}
	return Resume{Step: ex.ResumeStep, Checkpoint: ex.Checkpoint, Progress: ex.Progress}
}
