package web_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// receiver is a webhook receiver on loopback that keeps every request.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte // bodies[i] is got[i]'s
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got, rc.bodies = append(rc.got, r), append(rc.bodies, body)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// requests returns the requests with webhook-id id and their bodies.
func (rc *receiver) requests(id string) (reqs []*http.Request, bodies [][]byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, r := range rc.got {
		if r.Header.Get("webhook-id") == id {
			reqs, bodies = append(reqs, r), append(bodies, rc.bodies[i])
		}
	}
	return reqs, bodies
}

// checkSignature checks a delivery's webhook-signature with the secret
// the page showed, as the Standard Webhooks spec says: v1, and the base64
// HMAC-SHA256 of "id.timestamp.body" keyed with the decoded secret.
func checkSignature(t *testing.T, secret string, r *http.Request, body []byte) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("secret %q: %v", secret, err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !slices.Contains(strings.Fields(r.Header.Get("webhook-signature")), want) {
		t.Errorf("webhook-signature %q, want %q from the secret the page showed", r.Header.Get("webhook-signature"), want)
	}
}

// deliveryRow is a JavaScript expression for the row of delivery id.
func deliveryRow(id string) string {
	return fmt.Sprintf(`document.querySelector(%s)`, js(`#deliveries tr[data-id="`+id+`"]`))
}

// testWebhooks adds a subscription in the page, with a refused URL
// first; sees its delivery arrive, signed with the secret the page
// showed once; redelivers it from the page; and deletes the
// subscription.
func testWebhooks(t *testing.T, browserCtx context.Context) {
	rc := newReceiver(t)
	base := startNode(t, apiKey, quickPipeline())
	c := client.New(base, nil).WithAPIKey(apiKey)
	p := newPage(t, browserCtx)
	openDashboard(p, base, apiKey)

	p.run("open the webhooks", chromedp.Click(chromedp.CSS(`#views a[data-view="webhooks"]`)))
	p.waitFor("the empty webhooks page", `location.hash === '#/webhooks' && !document.querySelector('#view-webhooks').hidden &&
		document.querySelector('#view-executions').hidden && !document.querySelector('#webhooks-empty').hidden &&
		document.querySelector('#deliveries-card').hidden && document.querySelector('#webhook-pipeline option[value="quick"]') !== null &&
		[...document.querySelectorAll('#webhook-events input:checked')].map(i => i.value).join() === 'execution.completed,execution.failed'`)

	// A URL the server refuses: its 422, as the server words it.
	p.run("add a bad webhook", chromedp.SetValue(chromedp.CSS("#webhook-url"), "ftp://example.com/hook"), chromedp.Click(chromedp.CSS("#webhook-add")))
	p.waitFor("the refusal", `!document.querySelector('#webhook-error').hidden && document.querySelector('#webhook-secret').hidden`)
	if got := p.text("#webhook-error"); !strings.Contains(got, "invalid") || !strings.Contains(got, "only http and https") || !strings.Contains(got, "422") {
		t.Errorf("error shown for an ftp URL: %q, want the code, the server's message and the status", got)
	}

	url := rc.URL + "/hook"
	eval[bool](p, `(s => { s.value = 'quick'; return true })(document.querySelector('#webhook-pipeline'))`)
	p.run("add the webhook", chromedp.SetValue(chromedp.CSS("#webhook-url"), url),
		chromedp.SetValue(chromedp.CSS("#webhook-tags"), "env:browser"), chromedp.Click(chromedp.CSS("#webhook-add")))
	p.waitFor("the secret and the new subscription", fmt.Sprintf(`!document.querySelector('#webhook-secret').hidden &&
		document.querySelector('#webhook-secret-value').textContent.startsWith('whsec_') && document.querySelector('#webhook-error').hidden &&
		location.hash === '#/webhooks/' + document.querySelector('#webhook-secret').dataset.id &&
		(r => r && r.classList.contains('selected') && r.querySelector('.url').textContent === %s)
		(document.querySelector('#webhooks tr[data-id="' + document.querySelector('#webhook-secret').dataset.id + '"]')) &&
		!document.querySelector('#deliveries-card').hidden && !document.querySelector('#deliveries-empty').hidden`, js(url)))
	if got := p.text("#webhook-secret"); !strings.Contains(got, "shown only this once") {
		t.Errorf("the secret box says %q, want it to say it is shown only once", got)
	}
	hook := eval[string](p, `document.querySelector('#webhook-secret').dataset.id`)
	secret := eval[string](p, `document.querySelector('#webhook-secret-value').textContent`)
	hooks, err := c.Webhooks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 1 || hooks[0].ID != hook || hooks[0].URL != url || *hooks[0].Pipeline != "quick" || hooks[0].Tags["env"] != "browser" ||
		!slices.Equal(hooks[0].Events, []conveyor.WebhookEvent{conveyor.WebhookCompleted, conveyor.WebhookFailed}) {
		t.Fatalf("the server has subscriptions %+v, want the one added in the page", hooks)
	}
	row := fmt.Sprintf(`#webhooks tr[data-id="%s"]`, hook)
	if got := p.text(row); !strings.Contains(got, "execution.completed") || !strings.Contains(got, "pipeline quick") || !strings.Contains(got, "env:browser") {
		t.Errorf("the subscription's row reads %q, want its events and filters", got)
	}

	// An execution it selects is delivered; one it does not, not.
	if _, err := c.Submit(t.Context(), "quick", nil); err != nil {
		t.Fatal(err)
	}
	ex, err := c.SubmitWithTags(t.Context(), "quick", nil, conveyor.Tags{"env": "browser"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitFor("the delivered delivery", fmt.Sprintf(`(rows => rows.length === 1 && rows[0].dataset.status === 'delivered' &&
		rows[0].dataset.attempts === '1' && rows[0].querySelector('.badge').textContent === 'delivered' &&
		rows[0].querySelector('.attempt').textContent === '204' && rows[0].querySelector('.attempt').dataset.ok === 'true' &&
		rows[0].textContent.includes('execution.completed') &&
		rows[0].querySelector('a[href="#/executions/%s"]') !== null)([...document.querySelectorAll('#deliveries tbody tr')])`, ex.ID))
	delivery := eval[string](p, `document.querySelector('#deliveries tbody tr').dataset.id`)
	reqs, bodies := rc.requests(delivery)
	if len(reqs) != 1 {
		t.Fatalf("the receiver got delivery %s %d times, want once", delivery, len(reqs))
	}
	checkSignature(t, secret, reqs[0], bodies[0])

	// Redeliver: a second attempt of the same delivery, with the same id.
	p.run("redeliver", chromedp.Click(chromedp.CSS(`#deliveries tr[data-id="`+delivery+`"] button.redeliver`)))
	p.waitFor("the second attempt", fmt.Sprintf(`(r => r.dataset.status === 'delivered' && r.dataset.attempts === '2' &&
		[...r.querySelectorAll('.attempt')].every(a => a.dataset.ok === 'true'))(%s)`, deliveryRow(delivery)))
	reqs, bodies = rc.requests(delivery)
	if len(reqs) != 2 {
		t.Fatalf("the receiver got delivery %s %d times, want twice", delivery, len(reqs))
	}
	checkSignature(t, secret, reqs[1], bodies[1])
	p.screenshot("webhooks")

	// The secret goes when the user says it is kept.
	p.run("dismiss the secret", chromedp.Click(chromedp.CSS("#webhook-secret-done")))
	p.waitFor("the secret gone", `document.querySelector('#webhook-secret').hidden && document.querySelector('#webhook-secret-value').textContent === ''`)

	// Delete takes a second click.
	p.run("click delete once", chromedp.Click(chromedp.CSS(row+" button.delete")))
	p.waitFor("delete to ask again", fmt.Sprintf(`document.querySelector(%s).textContent === 'Delete?'`, js(row+" button.delete")))
	p.run("click delete again", chromedp.Click(chromedp.CSS(row+" button.delete")))
	p.waitFor("the subscription gone", `location.hash === '#/webhooks' && document.querySelectorAll('#webhooks tbody tr').length === 0 &&
		!document.querySelector('#webhooks-empty').hidden && document.querySelector('#deliveries-card').hidden`)
	if hooks, err := c.Webhooks(t.Context()); err != nil || len(hooks) != 0 {
		t.Errorf("the server has subscriptions %+v, %v after the delete", hooks, err)
	}
	p.errs.check(t)
}
