package storetest

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// testSecret is a valid webhook secret.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))

// subscribe stores a subscription to events at a URL on host, with
// pipeline ("" for none) and tags filters.
func (f *fixture) subscribe(host, pipeline string, tags conveyor.Tags, events ...conveyor.WebhookEvent) *conveyor.Webhook {
	f.t.Helper()
	f.n++
	w := &conveyor.Webhook{
		ID:        fmt.Sprintf("w0000000-0000-7000-8000-%012d", f.n),
		URL:       "https://" + host + "/hook",
		Events:    events,
		Tags:      tags,
		Secret:    testSecret,
		CreatedAt: at(f.n),
	}
	if pipeline != "" {
		w.Pipeline = &pipeline
	}
	if err := f.s.CreateWebhook(f.ctx, w); err != nil {
		f.t.Fatalf("CreateWebhook: %v", err)
	}
	return w
}

// deliveries returns every delivery of a subscription, oldest first.
func (f *fixture) deliveries(webhookID string) []*conveyor.Delivery {
	f.t.Helper()
	var all []*conveyor.Delivery
	for cursor := ""; ; {
		page, err := f.s.ListDeliveries(f.ctx, conveyor.DeliveryFilter{WebhookID: webhookID, Limit: 2, Cursor: cursor})
		if err != nil {
			f.t.Fatalf("ListDeliveries: %v", err)
		}
		all = append(all, page.Deliveries...)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	slices.Reverse(all)
	return all
}

func eventTypes(ds []*conveyor.Delivery) []conveyor.WebhookEvent {
	ts := make([]conveyor.WebhookEvent, len(ds))
	for i, d := range ds {
		ts[i] = d.EventType
	}
	return ts
}

// wantDeliveries fails unless the subscription's deliveries are of the
// types want, in order.
func (f *fixture) wantDeliveries(webhookID string, want ...conveyor.WebhookEvent) []*conveyor.Delivery {
	f.t.Helper()
	ds := f.deliveries(webhookID)
	if got := eventTypes(ds); !slices.Equal(got, want) {
		f.t.Errorf("deliveries of %s: %v, want %v", webhookID, got, want)
	}
	return ds
}

// claimAll claims every due delivery (deliveries are due at the store's
// clock, so "now" is an hour ahead of it).
func (f *fixture) claimDeliveries(claim string, limit, perHost int, skip ...string) []*conveyor.Delivery {
	f.t.Helper()
	now := time.Now().Add(time.Hour)
	ds, err := f.s.ClaimDeliveries(f.ctx, conveyor.DeliveryClaim{Claim: claim, Now: now, Until: now.Add(time.Minute),
		Limit: limit, PerHost: perHost, Skip: skip})
	if err != nil {
		f.t.Fatalf("ClaimDeliveries: %v", err)
	}
	return ds
}

func deliveryIDs(ds []*conveyor.Delivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

var allExecutionEvents = []conveyor.WebhookEvent{
	conveyor.WebhookStarted, conveyor.WebhookProgress, conveyor.WebhookStalled, conveyor.WebhookRetrying,
	conveyor.WebhookCompleted, conveyor.WebhookFailed, conveyor.WebhookCancelled,
}

var webhookCases = []testCase{
	{"RoundTrip", func(f *fixture) {
		a := f.subscribe("a.example", "", nil, conveyor.WebhookStarted)
		b := f.subscribe("b.example:8443", "alpha", conveyor.Tags{"tenant": "acme"}, conveyor.WebhookCompleted, conveyor.WebhookBatchFailed)
		got, err := f.s.GetWebhook(f.ctx, b.ID)
		if err != nil {
			f.t.Fatalf("GetWebhook: %v", err)
		}
		if toJSON(got) != toJSON(b) {
			f.t.Errorf("GetWebhook = %s, want %s", toJSON(got), toJSON(b))
		}
		list, err := f.s.ListWebhooks(f.ctx)
		if err != nil {
			f.t.Fatalf("ListWebhooks: %v", err)
		}
		if len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID || list[1].Secret != testSecret {
			f.t.Errorf("ListWebhooks = %s, want b then a with secrets", toJSON(list))
		}
		wantCode(f.t, "CreateWebhook of an existing id", f.s.CreateWebhook(f.ctx, a), conveyor.ECONFLICT)
		if err := f.s.DeleteWebhook(f.ctx, a.ID); err != nil {
			f.t.Fatalf("DeleteWebhook: %v", err)
		}
		_, err = f.s.GetWebhook(f.ctx, a.ID)
		wantCode(f.t, "GetWebhook after delete", err, conveyor.ENOTFOUND)
		wantCode(f.t, "DeleteWebhook twice", f.s.DeleteWebhook(f.ctx, a.ID), conveyor.ENOTFOUND)
		for _, id := range []string{"no-such", "bad\x00id"} {
			_, err = f.s.GetWebhook(f.ctx, id)
			wantCode(f.t, "GetWebhook "+id, err, conveyor.ENOTFOUND)
			_, err = f.s.ListDeliveries(f.ctx, conveyor.DeliveryFilter{WebhookID: id})
			wantCode(f.t, "ListDeliveries "+id, err, conveyor.ENOTFOUND)
		}
		_, err = f.s.ListDeliveries(f.ctx, conveyor.DeliveryFilter{WebhookID: b.ID, Cursor: "x"})
		wantCode(f.t, "ListDeliveries with a bad cursor", err, conveyor.EINVALID)
	}},
	{"Invalid", func(f *fixture) {
		good := func() *conveyor.Webhook {
			return &conveyor.Webhook{ID: "w1", URL: "https://example.com/x", Events: []conveyor.WebhookEvent{conveyor.WebhookStarted},
				Secret: testSecret, CreatedAt: at(1)}
		}
		for name, mut := range map[string]func(w *conveyor.Webhook){
			"no id":        func(w *conveyor.Webhook) { w.ID = "" },
			"ftp":          func(w *conveyor.Webhook) { w.URL = "ftp://example.com/" },
			"no events":    func(w *conveyor.Webhook) { w.Events = nil },
			"bad event":    func(w *conveyor.Webhook) { w.Events = []conveyor.WebhookEvent{"execution.exploded"} },
			"bad secret":   func(w *conveyor.Webhook) { w.Secret = "whsec_!!" },
			"bad tags":     func(w *conveyor.Webhook) { w.Tags = conveyor.Tags{"": "x"} },
			"empty filter": func(w *conveyor.Webhook) { w.Pipeline = ptr("") },
		} {
			w := good()
			mut(w)
			wantCode(f.t, "CreateWebhook, "+name, f.s.CreateWebhook(f.ctx, w), conveyor.EINVALID)
		}
		if list, err := f.s.ListWebhooks(f.ctx); err != nil || len(list) != 0 {
			f.t.Errorf("ListWebhooks after refusals = %d, %v; want none", len(list), err)
		}
	}},
	{"Lifecycle", func(f *fixture) {
		// Every change of an execution makes exactly the deliveries
		// conveyor.WebhookEventsOf says, in its order.
		w := f.subscribe("a.example", "", nil, allExecutionEvents...)
		ex := f.create("alpha")
		var want []conveyor.WebhookEvent
		step := func(what string, change func()) {
			f.t.Helper()
			before := f.get(ex.ID)
			change()
			after := f.get(ex.ID)
			want = append(want, conveyor.WebhookEventsOf(before, after)...)
			if got := eventTypes(f.deliveries(w.ID)); !slices.Equal(got, want) {
				f.t.Fatalf("after %s: deliveries %v, want %v", what, got, want)
			}
		}
		var cur *conveyor.Execution
		step("claim", func() { cur = f.claimOne(ex.ID, at(50)).Execution })
		step("progress 10%", func() { f.append(progressEvent(cur, cur.LastSeq+1, progress(1, 4, 10))) })
		step("progress 30%", func() { f.append(progressEvent(cur, cur.LastSeq+2, progress(1, 4, 30))) })
		step("progress 40%", func() { f.append(progressEvent(cur, cur.LastSeq+3, progress(2, 4, 40))) })
		step("stall", func() { f.append(stalledEvent(cur, cur.LastSeq+4, "s", at(60))) })
		step("progress 80%", func() { f.append(progressEvent(cur, cur.LastSeq+5, progress(3, 4, 80))) })
		step("retrying", func() {
			ev := finalEvent(cur, conveyor.EventRetrying, cur.LastSeq+6)
			ev.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "boom")
			f.append(ev)
		})
		step("claim again", func() { cur = f.claimOne(ex.ID, at(70)).Execution })
		step("progress 60% and completed", func() {
			done := finalEvent(cur, conveyor.EventCompleted, cur.LastSeq+2)
			done.Progress = progress(4, 4, 100)
			f.append(progressEvent(cur, cur.LastSeq+1, progress(3, 4, 60)), done)
		})
		wantOrder := []conveyor.WebhookEvent{
			conveyor.WebhookStarted, conveyor.WebhookProgress, conveyor.WebhookStalled,
			conveyor.WebhookProgress, conveyor.WebhookProgress, conveyor.WebhookRetrying, conveyor.WebhookStarted,
			conveyor.WebhookProgress, conveyor.WebhookProgress, conveyor.WebhookProgress, conveyor.WebhookCompleted,
		}
		ds := f.wantDeliveries(w.ID, wantOrder...)
		for _, d := range ds {
			if d.Status != conveyor.DeliveryPending || d.NextAttemptAt == nil || len(d.Attempts) != 0 ||
				d.ExecutionID == nil || *d.ExecutionID != ex.ID || d.BatchID != nil || d.WebhookID == nil || *d.WebhookID != w.ID ||
				d.URL != w.URL || !strings.HasPrefix(d.ID, "msg_") {
				f.t.Errorf("delivery %s", toJSON(d))
			}
		}

		// Cancelled, and failed after a stall.
		p := f.create("alpha")
		f.cancel(p.ID, at(80))
		r := f.start("alpha")
		f.append(stalledEvent(r, r.LastSeq+1, "s", at(90)))
		f.append(finalEvent(r, conveyor.EventFailed, r.LastSeq+2))
		f.wantDeliveries(w.ID, append(wantOrder, conveyor.WebhookCancelled, conveyor.WebhookStarted,
			conveyor.WebhookStalled, conveyor.WebhookFailed)...)
	}},
	{"Filters", func(f *fixture) {
		all := f.subscribe("a.example", "", nil, conveyor.WebhookStarted)
		alpha := f.subscribe("b.example", "alpha", nil, conveyor.WebhookStarted, conveyor.WebhookCompleted)
		acme := f.subscribe("c.example", "", conveyor.Tags{"tenant": "acme", "env": "prod"}, conveyor.WebhookStarted)
		completedOnly := f.subscribe("d.example", "", nil, conveyor.WebhookCompleted)

		f.start("beta")
		f.tagged("alpha", conveyor.Tags{"tenant": "acme"}) // one tag of two
		f.claim(1, at(100))
		x := f.tagged("beta", conveyor.Tags{"tenant": "acme", "env": "prod", "more": "x"})
		f.claimOne(x.ID, at(101))

		f.wantDeliveries(all.ID, conveyor.WebhookStarted, conveyor.WebhookStarted, conveyor.WebhookStarted)
		f.wantDeliveries(alpha.ID, conveyor.WebhookStarted)
		f.wantDeliveries(acme.ID, conveyor.WebhookStarted)
		f.wantDeliveries(completedOnly.ID)
		if ds := f.deliveries(acme.ID); len(ds) == 1 && *ds[0].ExecutionID != x.ID {
			f.t.Errorf("acme's delivery is of %s, want %s", *ds[0].ExecutionID, x.ID)
		}
	}},
	{"ExecutionWebhook", func(f *fixture) {
		ex := f.newExecution("alpha")
		ex.Webhook = &conveyor.ExecutionWebhook{URL: "https://own.example/x", Events: []conveyor.WebhookEvent{conveyor.WebhookCompleted}}
		if err := f.s.CreateExecution(f.ctx, ex); err != nil {
			f.t.Fatalf("CreateExecution: %v", err)
		}
		if got := f.get(ex.ID); toJSON(got.Webhook) != toJSON(ex.Webhook) {
			f.t.Errorf("webhook = %s, want %s", toJSON(got.Webhook), toJSON(ex.Webhook))
		}
		c := f.claimOne(ex.ID, at(100)).Execution
		if ds := f.claimDeliveries("c1", 10, 10); len(ds) != 0 {
			f.t.Fatalf("claimed %d deliveries before the execution completed", len(ds))
		}
		f.append(finalEvent(c, conveyor.EventCompleted, c.LastSeq+1))
		ds := f.claimDeliveries("c1", 10, 10)
		if len(ds) != 1 || ds[0].WebhookID != nil || ds[0].URL != ex.Webhook.URL || ds[0].Host != "own.example" ||
			ds[0].EventType != conveyor.WebhookCompleted || ds[0].Secret != "" || *ds[0].ExecutionID != ex.ID {
			f.t.Errorf("claimed %s, want the completed delivery of the execution's own webhook", toJSON(ds))
		}

		bad := f.newExecution("alpha")
		bad.Webhook = &conveyor.ExecutionWebhook{URL: "https://own.example/x", Events: []conveyor.WebhookEvent{conveyor.WebhookBatchCompleted}}
		wantCode(f.t, "CreateExecution with a batch event", f.s.CreateExecution(f.ctx, bad), conveyor.EINVALID)
	}},
	{"Batch", func(f *fixture) {
		w := f.subscribe("a.example", "", conveyor.Tags{"tenant": "acme"}, conveyor.WebhookBatchCompleted,
			conveyor.WebhookBatchFailed, conveyor.WebhookBatchCancelled, conveyor.WebhookCompleted, conveyor.WebhookFailed)
		piped := f.subscribe("b.example", "alpha", nil, conveyor.WebhookBatchCompleted)
		b, es := f.createBatch(2, conveyor.Tags{"tenant": "acme"})
		for i := range es {
			c := f.claimOne(es[i].ID, at(100+i)).Execution
			typ := conveyor.EventCompleted
			if i == 1 {
				typ = conveyor.EventFailed
			}
			f.append(finalEvent(c, typ, c.LastSeq+1))
		}
		// The last member's delivery comes before its batch's, which the
		// same write made.
		ds := f.wantDeliveries(w.ID, conveyor.WebhookCompleted, conveyor.WebhookFailed, conveyor.WebhookBatchFailed)
		if len(ds) == 3 && (ds[2].BatchID == nil || *ds[2].BatchID != b.ID || ds[2].ExecutionID != nil) {
			f.t.Errorf("batch delivery %s", toJSON(ds[2]))
		}
		f.wantDeliveries(piped.ID) // a pipeline filter takes no batch events

		other, _ := f.createBatch(1, nil) // not tagged acme
		if _, err := f.s.CancelBatch(f.ctx, other.ID, at(200)); err != nil {
			f.t.Fatal(err)
		}
		c, _ := f.createBatch(1, conveyor.Tags{"tenant": "acme"})
		if _, err := f.s.CancelBatch(f.ctx, c.ID, at(201)); err != nil {
			f.t.Fatal(err)
		}
		f.wantDeliveries(w.ID, conveyor.WebhookCompleted, conveyor.WebhookFailed, conveyor.WebhookBatchFailed,
			conveyor.WebhookBatchCancelled)
	}},
	{"None", func(f *fixture) {
		// No subscription, or only a disabled one: nothing is written.
		ex := f.start("alpha")
		f.append(finalEvent(ex, conveyor.EventCompleted, ex.LastSeq+1))
		if ds := f.claimDeliveries("c", 100, 100); len(ds) != 0 {
			f.t.Errorf("claimed %d deliveries with no subscription", len(ds))
		}
	}},
	{"Claim", func(f *fixture) {
		a := f.subscribe("a.example", "", nil, conveyor.WebhookStarted)
		b := f.subscribe("b.example", "", nil, conveyor.WebhookStarted)
		for range 3 {
			f.start("alpha")
		}
		// Per host at most 2; b's host skipped.
		first := f.claimDeliveries("c1", 10, 2, "b.example")
		if len(first) != 2 || first[0].Host != "a.example" || first[1].Host != "a.example" || first[0].Secret != testSecret {
			f.t.Fatalf("first claim: %s", toJSON(first))
		}
		ds := f.deliveries(a.ID)
		if want := deliveryIDs(ds[:2]); !slices.Equal(deliveryIDs(first), want) {
			f.t.Errorf("claimed %v, want the oldest %v", deliveryIDs(first), want)
		}
		// Held: another claim takes the rest, not these.
		second := f.claimDeliveries("c2", 10, 10)
		if len(second) != 4 {
			f.t.Fatalf("second claim took %d, want the 4 left", len(second))
		}
		for _, d := range second {
			if slices.Contains(deliveryIDs(first), d.ID) {
				f.t.Errorf("delivery %s claimed twice", d.ID)
			}
		}
		if ds := f.claimDeliveries("c3", 10, 10); len(ds) != 0 {
			f.t.Errorf("third claim took %d", len(ds))
		}
		// HeldBefore takes claims that hold until before it, not others.
		soon := time.Now().Add(time.Hour)
		held, err := f.s.ClaimDeliveries(f.ctx, conveyor.DeliveryClaim{Claim: "c3", Now: soon, Until: soon.Add(2 * time.Minute),
			Limit: 10, PerHost: 10, HeldBefore: soon.Add(2 * time.Minute)})
		if err != nil || len(held) != 6 {
			f.t.Fatalf("claim with HeldBefore: %d, %v; want all 6", len(held), err)
		}
		held, err = f.s.ClaimDeliveries(f.ctx, conveyor.DeliveryClaim{Claim: "c3b", Now: soon, Until: soon.Add(time.Minute),
			Limit: 10, PerHost: 10, HeldBefore: soon.Add(time.Minute)})
		if err != nil || len(held) != 0 {
			f.t.Fatalf("claim with an earlier HeldBefore: %d, %v; want none", len(held), err)
		}
		// An expired claim is taken again.
		late := time.Now().Add(3 * time.Hour)
		again, err := f.s.ClaimDeliveries(f.ctx, conveyor.DeliveryClaim{Claim: "c4", Now: late, Until: late.Add(time.Minute), Limit: 10, PerHost: 10})
		if err != nil || len(again) != 6 {
			f.t.Fatalf("after expiry: %d, %v; want all 6", len(again), err)
		}

		// The body is kept once; a lost claim writes nothing.
		d := again[0]
		if _, err := f.s.SetDeliveryBody(f.ctx, d.ID, "c1", []byte(`{"x":1}`)); conveyor.ErrorCode(err) != conveyor.ECONFLICT {
			f.t.Errorf("SetDeliveryBody with a lost claim: %v, want ECONFLICT", err)
		}
		kept, err := f.s.SetDeliveryBody(f.ctx, d.ID, "c4", []byte(`{"x":1}`))
		if err != nil || string(kept) != `{"x":1}` {
			f.t.Errorf("SetDeliveryBody = %s, %v", kept, err)
		}
		if kept, err = f.s.SetDeliveryBody(f.ctx, d.ID, "c4", []byte(`{"x":2}`)); err != nil || string(kept) != `{"x":1}` {
			f.t.Errorf("SetDeliveryBody again = %s, %v; want the first kept", kept, err)
		}

		// A failed attempt with a retry, then delivered.
		now := time.Now().UTC().Truncate(time.Microsecond)
		next := now.Add(2 * time.Hour)
		attempt := conveyor.Attempt{Time: now, StatusCode: 500, DurationMS: 12}
		wantCode(f.t, "RecordDelivery with a lost claim", f.s.RecordDelivery(f.ctx, conveyor.DeliveryOutcome{
			ID: d.ID, Claim: "c1", Attempt: attempt, Status: conveyor.DeliveryPending, NextAttemptAt: &next}), conveyor.ECONFLICT)
		if err := f.s.RecordDelivery(f.ctx, conveyor.DeliveryOutcome{
			ID: d.ID, Claim: "c4", Attempt: attempt, Status: conveyor.DeliveryPending, NextAttemptAt: &next}); err != nil {
			f.t.Fatalf("RecordDelivery: %v", err)
		}
		wantCode(f.t, "RecordDelivery twice", f.s.RecordDelivery(f.ctx, conveyor.DeliveryOutcome{
			ID: d.ID, Claim: "c4", Attempt: attempt, Status: conveyor.DeliveryDelivered}), conveyor.ECONFLICT)
		got := f.findDelivery(*d.WebhookID, d.ID)
		if got.Status != conveyor.DeliveryPending || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(next) ||
			len(got.Attempts) != 1 || got.Attempts[0].StatusCode != 500 || !got.Attempts[0].Time.Equal(now) {
			f.t.Errorf("after a failed attempt: %s", toJSON(got))
		}
		// Not due before next.
		for _, c := range f.claimDeliveries("c5", 10, 10) {
			if c.ID == d.ID {
				f.t.Errorf("claimed %s before its next attempt", d.ID)
			}
		}
		far := next.Add(time.Hour)
		retry, err := f.s.ClaimDeliveries(f.ctx, conveyor.DeliveryClaim{Claim: "c6", Now: far, Until: far.Add(time.Minute), Limit: 10, PerHost: 10})
		if err != nil || !slices.Contains(deliveryIDs(retry), d.ID) {
			f.t.Fatalf("claim after next attempt: %v, %v", deliveryIDs(retry), err)
		}
		for _, r := range retry {
			if r.ID == d.ID && string(r.Body) != `{"x":1}` {
				f.t.Errorf("claimed body %s, want the kept one", r.Body)
			}
		}
		if err := f.s.RecordDelivery(f.ctx, conveyor.DeliveryOutcome{ID: d.ID, Claim: "c6",
			Attempt: conveyor.Attempt{Time: now, Error: "connection refused"}, Status: conveyor.DeliveryDelivered}); err != nil {
			f.t.Fatal(err)
		}
		got = f.findDelivery(*d.WebhookID, d.ID)
		if got.Status != conveyor.DeliveryDelivered || got.NextAttemptAt != nil || len(got.Attempts) != 2 || got.Attempts[1].Error != "connection refused" {
			f.t.Errorf("after delivery: %s", toJSON(got))
		}

		// Redelivered now: pending again, due at once.
		red, err := f.s.RedeliverNow(f.ctx, *d.WebhookID, d.ID, now)
		if err != nil || red.Status != conveyor.DeliveryPending || red.NextAttemptAt == nil || !red.NextAttemptAt.Equal(now) {
			f.t.Errorf("RedeliverNow = %s, %v", toJSON(red), err)
		}
		_, err = f.s.RedeliverNow(f.ctx, b.ID, d.ID, now) // another subscription's
		if *d.WebhookID != b.ID {
			wantCode(f.t, "RedeliverNow of another webhook's delivery", err, conveyor.ENOTFOUND)
		}
		_, err = f.s.RedeliverNow(f.ctx, a.ID, "msg_none", now)
		wantCode(f.t, "RedeliverNow of an unknown delivery", err, conveyor.ENOTFOUND)
	}},
	{"Gone", func(f *fixture) {
		// A 410 disables the subscription and fails its pending deliveries.
		w := f.subscribe("a.example", "", nil, conveyor.WebhookStarted, conveyor.WebhookCompleted)
		ex := f.start("alpha")
		f.append(finalEvent(ex, conveyor.EventCompleted, ex.LastSeq+1))
		ds := f.claimDeliveries("c", 1, 1)
		if len(ds) != 1 {
			f.t.Fatalf("claimed %d", len(ds))
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		if err := f.s.RecordDelivery(f.ctx, conveyor.DeliveryOutcome{ID: ds[0].ID, Claim: "c",
			Attempt: conveyor.Attempt{Time: now, StatusCode: 410}, Status: conveyor.DeliveryFailed, DisableWebhook: true}); err != nil {
			f.t.Fatal(err)
		}
		got, err := f.s.GetWebhook(f.ctx, w.ID)
		if err != nil || got.DisabledAt == nil || !got.DisabledAt.Equal(now) {
			f.t.Errorf("webhook after 410: %s, %v", toJSON(got), err)
		}
		for _, d := range f.deliveries(w.ID) {
			if d.Status != conveyor.DeliveryFailed || d.NextAttemptAt != nil {
				f.t.Errorf("delivery after 410: %s", toJSON(d))
			}
		}
		f.start("alpha")
		f.wantDeliveries(w.ID, conveyor.WebhookStarted, conveyor.WebhookCompleted) // none for a disabled one
	}},
	{"Secret", func(f *fixture) {
		other := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("o", 32)))
		s, stored, err := f.s.WebhookSecret(f.ctx, testSecret)
		if err != nil || s != testSecret || !stored {
			f.t.Errorf("WebhookSecret first = %q, %v, %v", s, stored, err)
		}
		s, stored, err = f.s.WebhookSecret(f.ctx, other)
		if err != nil || s != testSecret || stored {
			f.t.Errorf("WebhookSecret again = %q, %v, %v; want the first kept", s, stored, err)
		}
		_, _, err = f.s.WebhookSecret(f.ctx, "nope")
		wantCode(f.t, "WebhookSecret of a bad secret", err, conveyor.EINVALID)
	}},
}

// findDelivery returns one delivery of a subscription.
func (f *fixture) findDelivery(webhookID, id string) *conveyor.Delivery {
	f.t.Helper()
	for _, d := range f.deliveries(webhookID) {
		if d.ID == id {
			return d
		}
	}
	f.t.Fatalf("delivery %s of %s not found", id, webhookID)
	return nil
}

// sharedWebhookCases run on two nodes of one database.
var sharedWebhookCases = []sharedCase{
	{"OneNodeEach", func(f *sharedFixture) {
		f.subscribe("a.example", "", nil, conveyor.WebhookStarted)
		f.subscribe("b.example", "", nil, conveyor.WebhookStarted)
		for range 20 {
			f.start("alpha")
		}
		var (
			mu   sync.Mutex
			seen = map[string]string{}
			wg   sync.WaitGroup
		)
		for i, s := range f.nodes() {
			wg.Go(func() {
				for {
					now := time.Now().Add(time.Hour)
					ds, err := s.ClaimDeliveries(f.ctx, conveyor.DeliveryClaim{Claim: fmt.Sprint("node", i), Now: now,
						Until: now.Add(time.Minute), Limit: 3, PerHost: 2})
					if err != nil {
						f.t.Error(err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						if by, ok := seen[d.ID]; ok {
							f.t.Errorf("delivery %s claimed by node%d and %s", d.ID, i, by)
						}
						seen[d.ID] = fmt.Sprint("node", i)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != 40 {
			f.t.Errorf("claimed %d deliveries, want 40", len(seen))
		}
	}},
}
