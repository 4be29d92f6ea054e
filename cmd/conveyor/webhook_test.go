package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// hookReceiver is a webhook receiver on loopback that records every
// request by webhook-id; while hang is set it never answers.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  map[string]int // requests by webhook-id
	ok   map[string]int // answered 200
	hang bool
	held chan struct{} // closed when the test ends: hung requests return
}

func newHookReceiver(t *testing.T, hang bool) *hookReceiver {
	rc := &hookReceiver{got: map[string]int{}, ok: map[string]int{}, hang: hang, held: make(chan struct{})}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get("webhook-id")
		rc.mu.Lock()
		rc.got[id]++
		hang := rc.hang
		rc.mu.Unlock()
		if hang {
			select {
			case <-rc.held:
			case <-r.Context().Done():
			}
			return
		}
		rc.mu.Lock()
		rc.ok[id]++
		rc.mu.Unlock()
	}))
	t.Cleanup(func() { close(rc.held); rc.Close() })
	return rc
}

func (rc *hookReceiver) counts() (got, ok map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	got, ok = map[string]int{}, map[string]int{}
	for k, v := range rc.got {
		got[k] = v
	}
	for k, v := range rc.ok {
		ok[k] = v
	}
	return got, ok
}

// subscribeHook subscribes to events at url through the API.
func subscribeHook(t *testing.T, n *node, url string, events ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"url": url, "events": events})
	resp, err := http.Post(n.url+"/webhooks", "application/json", bytes.NewReader(body)) //nolint:noctx // a test
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var w struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&w); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /webhooks: %d %v", resp.StatusCode, err)
	}
	return w.ID
}

// deliveriesOf lists a subscription's deliveries through the API.
func deliveriesOf(t *testing.T, n *node, id string) []conveyor.Delivery {
	t.Helper()
	resp, err := get(t, n.url+"/webhooks/"+id+"/deliveries?limit=500")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Deliveries []conveyor.Delivery `json:"deliveries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Deliveries
}

// TestWebhookSurvivesKill: the node is killed (SIGKILL) after the event
// and before its delivery was answered; after a restart the delivery
// goes out and is delivered once.
func TestWebhookSurvivesKill(t *testing.T) {
	data, pipes := t.TempDir(), t.TempDir()
	writePipeline(t, pipes, "quick", "steps:\n  - name: nap\n    sleep: 10ms\n")
	rc := newHookReceiver(t, true)
	n := startNode(t, data, pipes, "--webhook-allow-private")
	hook := subscribeHook(t, n, rc.URL+"/hook", "execution.completed")
	ex, err := n.client.Submit(context.Background(), "quick", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery to reach the receiver", func() bool {
		got, _ := rc.counts()
		return len(got) == 1
	})
	n.kill() // mid-delivery: the receiver has not answered

	rc.mu.Lock()
	rc.hang = false
	rc.mu.Unlock()
	n2 := startNode(t, data, pipes, "--webhook-allow-private")
	var d conveyor.Delivery
	waitFor(t, "the delivery to be delivered after the restart", func() bool {
		ds := deliveriesOf(t, n2, hook)
		if len(ds) == 1 {
			d = ds[0]
		}
		return len(ds) == 1 && ds[0].Status == conveyor.DeliveryDelivered
	})
	if *d.ExecutionID != ex.ID || d.EventType != conveyor.WebhookCompleted || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 200 {
		t.Errorf("delivery %+v", d)
	}
	got, ok := rc.counts()
	if len(got) != 1 || got[d.ID] != 2 || ok[d.ID] != 1 {
		t.Errorf("receiver got %v, answered %v; want delivery %s sent twice (once cut short), answered once", got, ok, d.ID)
	}
}

// TestWebhookTwoNodes: two nodes on one PostgreSQL database send each
// delivery from one node only.
func TestWebhookTwoNodes(t *testing.T) {
	nodes, _ := cluster(t, 2, map[string]string{"quick": "steps:\n  - name: nap\n    sleep: 1ms\n"}, "--webhook-allow-private")
	rc := newHookReceiver(t, false)
	hook := subscribeHook(t, nodes[0], rc.URL, "execution.started", "execution.completed")
	const n = 40
	for i := range n {
		if _, err := nodes[i%2].client.Submit(context.Background(), "quick", nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every delivery to be delivered", func() bool {
		ds := deliveriesOf(t, nodes[1], hook)
		done := 0
		for _, d := range ds {
			if d.Status == conveyor.DeliveryDelivered {
				done++
			}
		}
		return done == 2*n
	})
	got, ok := rc.counts()
	if len(got) != 2*n {
		t.Errorf("receiver got %d deliveries, want %d", len(got), 2*n)
	}
	for id, c := range got {
		if c != 1 || ok[id] != 1 {
			t.Errorf("delivery %s sent %d times", id, c)
		}
	}
	for _, d := range deliveriesOf(t, nodes[0], hook) {
		if len(d.Attempts) != 1 {
			t.Errorf("delivery %s has %d attempts", d.ID, len(d.Attempts))
		}
	}
}
