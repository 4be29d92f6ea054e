package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
	"github.com/conveyor-run/conveyor/server"
)

// Example submits an execution, watches its events over WebSocket until
// the final one and reads the execution back. The node it talks to runs in
// this process (see startNode); a real program would point New at
// "conveyor serve".
func Example() {
	baseURL, stop := startNode()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c := client.New(baseURL, hc) // nil instead of hc: http.DefaultClient

	// Submit returns once the execution is stored; the node runs it later.
	ex, err := c.Submit(ctx, "resize", map[string]any{"photos": []string{"a.jpg", "b.jpg", "c.jpg"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("submitted:", ex.Pipeline, ex.Status)

	// A stream starts with a status snapshot, then sends events as they
	// happen. Progress may be conflated for a slow reader; the final event
	// (completed, failed or cancelled) never is, and Next returns io.EOF
	// after it.
	s, err := c.Watch(ctx, ex.ID)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if ev.Type.Final() {
			p := ev.Progress
			fmt.Printf("final event: %s at step %d of %d (%g%%)\n", ev.Type, p.CurrentStep, *p.TotalSteps, *p.Percentage)
		}
	}

	ex, err = c.Get(ctx, ex.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", ex.Status)
	fmt.Println("result:", string(ex.Result))

	// Errors from the server come back as *conveyor.Error with a code.
	_, err = c.Get(ctx, "no-such-execution")
	fmt.Println("unknown execution:", conveyor.ErrorCode(err))

	// Output:
	// submitted: resize pending
	// final event: completed at step 3 of 3 (100%)
	// status: completed
	// result: {"resized":["a.jpg","b.jpg","c.jpg"]}
	// unknown execution: not_found
}

// ExampleClient_WatchMany submits a batch and follows all of its members
// on one WebSocket until the batch ends.
func ExampleClient_WatchMany() {
	baseURL, stop := startNode()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c := client.New(baseURL, hc)

	b, err := c.SubmitBatch(ctx, []conveyor.NewExecution{
		{Pipeline: "resize", Input: json.RawMessage(`{"photos": ["a.jpg"]}`)},
		{Pipeline: "resize", Input: json.RawMessage(`{"photos": ["b.jpg", "c.jpg"]}`)},
		{Pipeline: "resize", Input: json.RawMessage(`{"photos": ["d.jpg"]}`)},
	}, conveyor.Tags{"album": "holidays"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("batch of", b.Total)

	// The stream opens with a status message per member, then sends each
	// member's events and batch messages as the counts move. It ends after
	// the batch message whose status is final. A dropped connection is
	// reopened by Next itself, without repeating a message.
	s, err := c.WatchMany(ctx, client.ManyFilter{Batch: b.ID})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ended := map[string]bool{}
	for {
		m, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		switch ev := m.Event; {
		case m.Batch != nil && m.Batch.Status.Final():
			fmt.Printf("batch %s: %d of %d completed (%g%%)\n", m.Batch.Status, m.Batch.Counts.Completed, m.Batch.Total, m.Batch.Progress.Percentage)
		case ev != nil && (ev.Type.Final() || ev.Status.Final()):
			// A member that ended before the stream opened has only its
			// status message, with a final status.
			ended[ev.ExecutionID] = true
		}
	}
	fmt.Println("members ended:", len(ended))

	// Output:
	// batch of 3
	// batch completed: 3 of 3 completed (100%)
	// members ended: 3
}

// ExampleClient_CreateWebhook subscribes a receiver to the completion of
// executions, runs one and reads the delivery's attempts. The secret
// CreateWebhook returns is the only copy: keep it to verify the
// webhook-signature header of every delivery (docs/guide.md, "Verifying
// a signature").
func ExampleClient_CreateWebhook() {
	baseURL, stop := startNode()
	defer stop()
	received := make(chan string, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received <- r.Header.Get("webhook-id")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c := client.New(baseURL, hc)

	_, err := c.CreateWebhook(ctx, client.NewWebhook{URL: receiver.URL, Events: []conveyor.WebhookEvent{"execution.done"}})
	fmt.Println("an unknown event type:", conveyor.ErrorCode(err))

	hook, err := c.CreateWebhook(ctx, client.NewWebhook{
		URL:    receiver.URL,
		Events: []conveyor.WebhookEvent{conveyor.WebhookCompleted, conveyor.WebhookFailed},
		Tags:   conveyor.Tags{"album": "holidays"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("secret:", hook.Secret[:len(conveyor.WebhookSecretPrefix)]+"…")

	if _, err := c.SubmitWithTags(ctx, "resize", map[string]any{"photos": []string{"a.jpg"}}, conveyor.Tags{"album": "holidays"}); err != nil {
		log.Fatal(err)
	}
	id := <-received // the webhook-id header: the delivery's id

	// The receiver answered; the node records it just after.
	for {
		page, err := c.Deliveries(ctx, conveyor.DeliveryFilter{WebhookID: hook.ID})
		if err != nil {
			log.Fatal(err)
		}
		if d := page.Deliveries[0]; d.Status != conveyor.DeliveryPending {
			fmt.Println(d.ID == id, d.EventType, d.Status, "after", len(d.Attempts), "attempt, answered", d.Attempts[0].StatusCode)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.DeleteWebhook(ctx, hook.ID); err != nil {
		log.Fatal(err)
	}

	// Output:
	// an unknown event type: invalid
	// secret: whsec_…
	// true execution.completed delivered after 1 attempt, answered 204
}

// startNode runs a Conveyor node in this process, as "conveyor serve"
// would, on a free port with a fresh embedded database. Its one pipeline,
// "resize", is a Go handler that takes one step per photo. stop shuts the
// node down and removes the database.
func startNode() (baseURL string, stop func()) {
	dataDir, err := os.MkdirTemp("", "conveyor-example-")
	if err != nil {
		log.Fatal(err)
	}
	resize := func(ctx context.Context, x *conveyor.Exec) error {
		var in struct {
			Photos []string `json:"photos"`
		}
		if err := json.Unmarshal(x.Input, &in); err != nil {
			return conveyor.Errorf(conveyor.EINVALID, "resize input: %v", err)
		}
		for i, photo := range in.Photos {
			if err := ctx.Err(); err != nil {
				return err
			}
			x.Progress(conveyor.Update{Step: i + 1, Steps: len(in.Photos), StepName: "resize", Message: photo})
		}
		return x.SetResult(map[string]any{"resized": in.Photos})
	}

	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, server.Config{
		Addr:      "127.0.0.1:0",
		DataDir:   dataDir,
		Pipelines: []*conveyor.Pipeline{{Name: "resize", Handler: resize}},
		Logger:    slog.New(slog.DiscardHandler),
		// The webhook example's receiver is on loopback, which a node
		// refuses by default.
		WebhookAllowPrivate: true,
	})
	if err != nil {
		cancel()
		removeDataDir(dataDir)
		log.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	return "http://" + srv.Addr(), func() {
		cancel()
		if err := <-ran; err != nil {
			log.Print(err)
		}
		removeDataDir(dataDir)
	}
}

// removeDataDir removes the node's database. A failed removal leaves a
// directory in the system's temporary folder and nothing else, so it is
// reported, not fatal.
func removeDataDir(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		log.Print(err)
	}
}
