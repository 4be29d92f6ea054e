package main_test

// End-to-end tests of the webhooks commands: the real binary against a
// real server delivering to a receiver on loopback.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

// cliDeliveries lists a subscription's deliveries with webhooks
// deliveries -o json.
func cliDeliveries(t *testing.T, n *node, hook string) []conveyor.Delivery {
	t.Helper()
	var ds []conveyor.Delivery
	for line := range strings.Lines(mustCLI(t, n, "", "webhooks", "deliveries", hook, "-o", "json")) {
		var d conveyor.Delivery
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("webhooks deliveries -o json printed %q: %v", line, err)
		}
		ds = append(ds, d)
	}
	return ds
}

// TestWebhookCommands: add, ls, deliveries, redeliver and rm, and the
// errors of bad input.
func TestWebhookCommands(t *testing.T) {
	t.Parallel()
	pipes := t.TempDir()
	writePipeline(t, pipes, "quick", quickPipeline)
	n := startNode(t, t.TempDir(), pipes, "--webhook-allow-private")
	rc := newHookReceiver(t, false)
	url := rc.URL + "/hook"

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"webhooks", "add", "--events", "execution.completed"}, "webhooks add takes one URL"},
		{[]string{"webhooks", "add", url}, `required flag(s) "events" not set`},
		// The server's 422, as it words it.
		{[]string{"webhooks", "add", url, "--events", "execution.completed,execution.done"}, `invalid: events[1]: "execution.done" is not an event type`},
		{[]string{"webhooks", "add", "ftp://example.com/", "--events", "execution.completed"}, "only http and https"},
		{[]string{"webhooks", "add", url, "--events", "execution.completed", "--tag", "env"}, "key:value"},
		{[]string{"webhooks", "rm"}, "webhooks rm takes the ids"},
		{[]string{"webhooks", "deliveries", "no-such-hook"}, `not_found: webhook "no-such-hook" not found`},
	} {
		if _, errOut, err := cli(t, n, "", bad.args...); err == nil || !strings.Contains(errOut, bad.want) {
			t.Errorf("conveyor %s: err %v, stderr %q; want an error with %q", strings.Join(bad.args, " "), err, errOut, bad.want)
		}
	}

	out, errOut, err := cli(t, n, "", "webhooks", "add", url, "--events", "execution.completed,execution.failed",
		"--pipeline", "quick", "--tag", "env:test")
	if err != nil {
		t.Fatalf("webhooks add: %v\n%s", err, errOut)
	}
	fields := map[string]string{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) == 2 {
			fields[f[0]] = f[1]
		}
	}
	hook := fields["id"]
	if hook == "" || conveyor.ValidWebhookSecret(fields["secret"]) != nil || !strings.Contains(errOut, "shown only this once") {
		t.Fatalf("webhooks add printed %q, stderr %q; want the id, the secret and that it is shown once", out, errOut)
	}

	table := mustCLI(t, n, "", "webhooks", "ls")
	if got := rows(t, table); !slices.Equal(got, []string{hook}) {
		t.Fatalf("webhooks ls lists %v, want [%s]", got, hook)
	}
	for _, want := range []string{url, "execution.completed,execution.failed", "quick", "env:test"} {
		if !strings.Contains(table, want) {
			t.Errorf("webhooks ls has no %q:\n%s", want, table)
		}
	}
	var listed conveyor.Webhook
	if err := json.Unmarshal([]byte(mustCLI(t, n, "", "webhooks", "ls", "-o", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if listed.ID != hook || listed.Secret != "" || *listed.Pipeline != "quick" || listed.Tags["env"] != "test" {
		t.Errorf("webhooks ls -o json printed %+v, want the subscription without its secret", listed)
	}

	other := strings.TrimSpace(mustCLI(t, n, "", "run", "quick", "-d")) // not tagged: no delivery
	ex := strings.TrimSpace(mustCLI(t, n, "", "run", "quick", "-d", "--tag", "env:test"))
	var d conveyor.Delivery
	waitFor(t, "the delivery of the tagged execution", func() bool {
		ds := cliDeliveries(t, n, hook)
		if len(ds) > 0 {
			d = ds[0]
		}
		return len(ds) == 1 && d.Status == conveyor.DeliveryDelivered
	})
	if *d.ExecutionID != ex || d.EventType != conveyor.WebhookCompleted || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 200 {
		t.Errorf("delivery %+v, want execution.completed of %s delivered on the first attempt", d, ex)
	}
	if status(t, n.client, other).Status != conveyor.StatusCompleted {
		t.Errorf("the untagged execution %s did not complete", other)
	}
	table = mustCLI(t, n, "", "webhooks", "deliveries", hook)
	if got := rows(t, table); !slices.Equal(got, []string{d.ID}) || !strings.Contains(table, "delivered") ||
		!strings.Contains(table, ex) || !strings.Contains(table, "200 (") {
		t.Errorf("webhooks deliveries printed\n%s\nwant the delivery of %s, delivered with 200", table, ex)
	}

	if out := mustCLI(t, n, "", "webhooks", "redeliver", hook, d.ID); !strings.Contains(out, d.ID+": redelivery requested") {
		t.Errorf("webhooks redeliver printed %q", out)
	}
	waitFor(t, "the second attempt", func() bool {
		ds := cliDeliveries(t, n, hook)
		return len(ds) == 1 && ds[0].Status == conveyor.DeliveryDelivered && len(ds[0].Attempts) == 2
	})
	if got, _ := rc.counts(); got[d.ID] != 2 {
		t.Errorf("the receiver got delivery %s %d times, want 2", d.ID, got[d.ID])
	}
	if _, errOut, err := cli(t, n, "", "webhooks", "redeliver", hook, "no-such-delivery"); err == nil || !strings.Contains(errOut, "not_found") {
		t.Errorf("webhooks redeliver of an unknown delivery: err %v, stderr %q", err, errOut)
	}

	if out := mustCLI(t, n, "", "webhooks", "rm", hook); out != hook+": deleted\n" {
		t.Errorf("webhooks rm printed %q", out)
	}
	if out := mustCLI(t, n, "", "webhooks", "ls", "-o", "json"); out != "" {
		t.Errorf("webhooks ls after rm printed %q", out)
	}
	if _, errOut, err := cli(t, n, "", "webhooks", "rm", hook); err == nil || !strings.Contains(errOut, "not_found") {
		t.Errorf("webhooks rm again: err %v, stderr %q", err, errOut)
	}
}
