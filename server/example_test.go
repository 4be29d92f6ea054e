package server_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

// A Go program embeds a node and runs its own handler as a pipeline. The
// handler owns its steps: it says which one it is on and how many there
// are, and its result is stored with the completed execution.
func ExampleOpen() {
	dataDir, err := os.MkdirTemp("", "conveyor-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// A failed removal leaves a directory in the system's temporary
		// folder and nothing else: report it rather than fail the example.
		if err := os.RemoveAll(dataDir); err != nil {
			log.Print(err)
		}
	}()

	resize := func(ctx context.Context, x *conveyor.Exec) error {
		photos := []string{"a.jpg", "b.jpg", "c.jpg"}
		for i, name := range photos {
			if err := ctx.Err(); err != nil {
				return err // cancelled, timed out or shutting down
			}
			x.Progress(conveyor.Update{Step: i + 1, Steps: len(photos), StepName: "resize", Message: name})
		}
		return x.SetResult(map[string]int{"resized": len(photos)})
	}

	ctx, stop := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, server.Config{
		Addr:      "127.0.0.1:0", // any free port
		DataDir:   dataDir,
		Pipelines: []*conveyor.Pipeline{{Name: "resize", Handler: resize}},
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }() // serves until ctx ends, then shuts down
	defer func() {
		stop()
		if err := <-ran; err != nil {
			log.Fatal(err)
		}
	}()

	// Anything that speaks HTTP can start executions now; here the Go client.
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c := client.New("http://"+srv.Addr(), hc)
	ex, err := c.Submit(ctx, "resize", nil)
	if err != nil {
		log.Fatal(err)
	}
	ex, err = c.Wait(ctx, ex.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", ex.Status)
	fmt.Printf("progress: step %d of %d, %g%%\n", ex.Progress.CurrentStep, *ex.Progress.TotalSteps, *ex.Progress.Percentage)
	fmt.Println("result:", string(ex.Result))
	// Output:
	// status: completed
	// progress: step 3 of 3, 100%
	// result: {"resized":3}
}
