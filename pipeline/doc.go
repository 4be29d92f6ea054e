// Package pipeline loads declarative pipelines from YAML files and runs
// their steps. Each step becomes a conveyor.Step whose Run is the step
// kind's runner; the engine runs them in order.
//
// # Files
//
// LoadDir loads every *.yaml and *.yml file of a folder, one pipeline per
// file:
//
//	name: resize-images      # default: the file name without extension
//	description: Resize every image in a bucket
//	retries: 1               # extra attempts after a failure, 0-100
//	resume: true             # a retry starts at the step that did not finish
//	retry_delay: 2s          # wait before the first retry; default 1s
//	retry_backoff: fixed     # or exponential (default): each wait twice the last
//	retry_max_delay: 1m      # the longest wait; default 10m; waits are ±10 % jittered
//	timeout: 10m             # the whole execution; Go duration
//	steps:                   # 1 to 1000, run in order
//	  - name: prepare        # required, unique in the pipeline
//	    sleep: 300ms
//	  - name: resize
//	    timeout: 5m          # this step only
//	    exec:
//	      command: ["./resize.sh", "--all"]   # argv, no shell
//	      env: {QUALITY: "80"}
//	      dir: ./scripts     # relative to this file's folder
//	      grace: 10s         # SIGTERM to SIGKILL on cancel; default 5s
//	  - name: notify
//	    http: {method: POST, url: "http://127.0.0.1:9000/hook", expect: 200, body: "done", headers: {X-Token: abc}}
//	  - name: nothing
//	    noop: {}
//
// A name matches ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$. Unknown fields are
// mistakes, like every other one reported as "file:line: field: message".
// A step has exactly one of exec, http, sleep and noop.
//
// # Step kinds
//
// sleep waits for its duration, reporting the time elapsed as progress.
// noop completes at once; it is for measuring the engine. http makes one
// request and fails the step unless the status is expect (default 200;
// method defaults to GET). exec runs a program, as follows.
//
// # Exec steps
//
// The program runs without a shell, in the step's dir (default: the
// pipeline file's folder), in a process group of its own. Its environment
// is the server's, then the step's env, then:
//
//	CONVEYOR_EXECUTION_ID  the execution
//	CONVEYOR_PIPELINE      the pipeline's name
//	CONVEYOR_STEP          the step's name
//	CONVEYOR_ATTEMPT       1 for the first attempt, 2 for the first retry, ...
//	CONVEYOR_INPUT         the execution's input, JSON; empty when over MaxEnvInput
//	CONVEYOR_CHECKPOINT    the checkpoint the step resumes from, JSON; empty when none
//
// The input JSON is also written to its stdin, which is then closed; that
// is the way to read a large input. Input never becomes part of a command
// line or a shell string.
//
// Each line of stdout and stderr goes to the execution's log, except
// progress lines on stdout (see ParseProgressLine):
//
//	echo "::progress 3/10 resizing a.jpg"
//	echo "::progress 30%"
//	echo '::progress {"current":3,"total":10,"metrics":{"bytes":1048576}}'
//
// A malformed progress line is logged like any other line; it never fails
// the step. Lines longer than conveyor.MaxLogLineBytes are cut.
//
// Data lines (see ParseDataLine) merge a JSON object into the
// execution's data; checkpoint lines (see ParseCheckpointLine) record
// where the step is, which a retried attempt of a pipeline with
// resume: true starts the step again with, in CONVEYOR_CHECKPOINT:
//
//	echo '::data {"rows": 1200}'
//	echo '::checkpoint {"next_row": 1200}'
//
// A checkpoint is stored before the lines after it are read. A data or
// checkpoint line that cannot be taken (malformed JSON, too large) is
// logged to stderr with why; it never fails the step.
//
// Exit status 0 completes the step; anything else fails it with the status
// and the last line of stderr. When the step is cancelled or times out, the
// process group gets SIGTERM, and SIGKILL after the grace period. When the
// program exits, whatever it left running in its group is killed at once,
// as in a container: a step's processes never outlive it.
package pipeline
