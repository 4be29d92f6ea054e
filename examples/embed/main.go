// Command embed runs Conveyor inside a Go program, with a pipeline written
// in Go: "agent", an open-ended handler that does not know at first how
// many steps it will take and says so in its progress.
//
//	go run ./examples/embed [-addr 127.0.0.1:8080] [-data ./conveyor-embed-data]
//
// Then, from another terminal:
//
//	curl -s -X POST localhost:8080/executions -H 'Content-Type: application/json' \
//	  -d '{"pipeline":"agent","input":{"question":"why is the sky blue?","searches":2}}'
//	curl -s localhost:8080/executions/$ID/progress
//
// Ctrl-C stops claiming work, lets running executions finish (up to 30s)
// and exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/server"
)

func main() {
	addr := flag.String("addr", server.DefaultAddr, "listen address")
	data := flag.String("data", "./conveyor-embed-data", "folder of the embedded database")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := open(ctx, options{Addr: *addr, DataDir: *data, Pause: sleepFor(500 * time.Millisecond)})
	if err != nil {
		log.Fatal(err)
	}
	// Run serves until ctx ends (Ctrl-C), then shuts down gracefully.
	if err := srv.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// options are what main's flags set; the test sets them too.
type options struct {
	Addr    string
	DataDir string
	// Pause is how the agent spends time on each step: main sleeps, the
	// test waits for its go-ahead.
	Pause  func(context.Context) error
	Logger *slog.Logger // nil: slog.Default()
}

// open starts an embedded Conveyor node whose only pipeline is the agent.
// server.Config also takes PipelinesDir to load YAML pipelines beside it.
func open(ctx context.Context, o options) (*server.Server, error) {
	a := &agent{pause: o.Pause}
	return server.Open(ctx, server.Config{
		Addr:    o.Addr,
		DataDir: o.DataDir,
		Logger:  o.Logger,
		Pipelines: []*conveyor.Pipeline{{
			Name:        "agent",
			Description: "Searches, reads what it found, answers; the total is known only after searching",
			Timeout:     5 * time.Minute,
			Handler:     a.run,
		}},
	})
}

// agentInput is the execution input of the agent pipeline.
type agentInput struct {
	Question string `json:"question"`
	Searches int    `json:"searches"` // search rounds; each finds two sources
}

// agentResult is what a completed agent execution records as its result.
type agentResult struct {
	Question string   `json:"question"`
	Sources  []string `json:"sources"`
	Tokens   int      `json:"tokens"`
	Answer   string   `json:"answer"`
}

// agent is the handler of the "agent" pipeline. A handler owns its steps:
// it says which step it is on, what it is called and, once it knows, how
// many there are. The engine turns that into current_step, total_steps,
// current_step_name and percentage.
type agent struct {
	pause func(context.Context) error
}

func (a *agent) run(ctx context.Context, x *conveyor.Exec) error {
	in := agentInput{Question: "what is Conveyor?", Searches: 2}
	if err := json.Unmarshal(x.Input, &in); err != nil {
		return conveyor.Errorf(conveyor.EINVALID, "agent input: %v", err)
	}
	in.Searches = min(max(in.Searches, 1), 10)
	step, tokens := 0, 0
	var sources []string

	// Searching: every round may turn up more work, so the total is
	// unknown and total_steps and percentage are null.
	for round := 1; round <= in.Searches; round++ {
		step++
		sources = append(sources, fmt.Sprintf("source-%d", len(sources)+1), fmt.Sprintf("source-%d", len(sources)+2))
		x.Progress(conveyor.Update{
			Step: step, Steps: conveyor.UnknownSteps, StepName: "search",
			Message: fmt.Sprintf("search round %d: %d sources so far", round, len(sources)),
			Metrics: map[string]float64{"sources": float64(len(sources))},
		})
		if err := a.pause(ctx); err != nil {
			return err // ctx is done: cancelled, timed out or shutting down
		}
	}

	// Now the agent knows the rest: read every source, then answer.
	total := step + len(sources) + 1
	for _, src := range sources {
		step++
		tokens += 500
		x.Progress(conveyor.Update{
			Step: step, Steps: total, StepName: "read",
			Message: "reading " + src,
			Metrics: map[string]float64{"tokens": float64(tokens)},
		})
		if err := a.pause(ctx); err != nil {
			return err
		}
	}
	step++
	x.Progress(conveyor.Update{Step: step, Steps: total, StepName: "answer", Message: "writing the answer"})
	if err := a.pause(ctx); err != nil {
		return err
	}

	// The result is recorded with the completed event.
	return x.SetResult(agentResult{
		Question: in.Question,
		Sources:  sources,
		Tokens:   tokens,
		Answer:   fmt.Sprintf("an answer to %q from %d sources", in.Question, len(sources)),
	})
}

// sleepFor returns a Pause that takes d, or less if ctx ends first.
func sleepFor(d time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
}
