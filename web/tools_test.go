package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// quickPipeline logs its input and completes.
func quickPipeline() *conveyor.Pipeline {
	return &conveyor.Pipeline{Name: "quick", Description: "Completes at once", Handler: func(_ context.Context, x *conveyor.Exec) error {
		x.Log("quick " + string(x.Input))
		return nil
	}}
}

// flakyPipeline fails its first attempt half way and completes its
// second: one retry, with progress and a log line in each.
func flakyPipeline() *conveyor.Pipeline {
	return &conveyor.Pipeline{Name: "flaky", Description: "Fails once", Retries: 1, Handler: func(_ context.Context, x *conveyor.Exec) error {
		x.Progress(conveyor.Update{Step: 1, Steps: 2, StepName: "try"})
		x.Log(fmt.Sprintf("attempt %d says hello", x.Attempt))
		if x.Attempt == 1 {
			return errors.New("flaky the first time")
		}
		x.Progress(conveyor.Update{Step: 2, StepName: "finish"})
		return nil
	}}
}

// waitServer polls cond against the server until it holds.
func waitServer(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testListTools drives what the list offers beyond its rows, on a node
// with an API key and more executions than a page holds: the key
// prompt, counts by status, paging, the pipeline and id filters, the
// last hour's chart, relative times, attempts and run time over them,
// the progress chart, log lines labelled by attempt, and running an
// execution again from its page.
func testListTools(t *testing.T, browserCtx context.Context) {
	base := startNode(t, apiKey, quickPipeline(), flakyPipeline())
	c := client.New(base, nil).WithAPIKey(apiKey)
	ctx := t.Context()
	const quick = 55 // more than the page of 50
	items := make([]conveyor.NewExecution, quick)
	for i := range items {
		items[i] = conveyor.NewExecution{Pipeline: "quick", Input: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i))}
	}
	if _, err := c.SubmitBatch(ctx, items, nil); err != nil {
		t.Fatal(err)
	}
	flaky, err := c.Submit(ctx, "flaky", map[string]any{"city": "Lyon", "tries": []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	const total = quick + 1
	waitServer(t, "every execution completed", func() (bool, error) {
		st, err := c.Stats(ctx)
		return err == nil && st.Counts.Completed == total, err
	})

	p := newPage(t, browserCtx)
	p.run("open the page", chromedp.Navigate(base+"/"))

	// No key: the page asks for one. A wrong one: it says the key was
	// refused and asks again. The right one, typed in the prompt: on.
	p.waitFor("the API key prompt", keyNeeded+` && document.querySelector('#key-prompt-text').textContent.includes('only requests that carry')`)
	p.run("enter a wrong key", chromedp.SendKeys(chromedp.CSS("#key-prompt-input"), "wrong-key"), chromedp.Click(chromedp.CSS("#key-prompt-save")))
	p.waitFor("the refused key", keyNeeded+` && localStorage.getItem('conveyor.apiKey') === 'wrong-key' &&
		document.querySelector('#key-prompt-text').textContent.includes('refused')`)
	p.run("enter the key", chromedp.SendKeys(chromedp.CSS("#key-prompt-input"), apiKey), chromedp.Click(chromedp.CSS("#key-prompt-save")))
	p.waitFor("the list", `document.querySelector('#conn').dataset.state === 'ok' && document.querySelector('#key-prompt').hidden &&
		document.querySelectorAll('#executions tbody tr').length === 50`)

	// Counts by status, as the server counts them.
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{"": total, "pending": st.Counts.Pending, "running": st.Counts.Running,
		"completed": st.Counts.Completed, "failed": st.Counts.Failed, "cancelled": st.Counts.Cancelled}
	var conds []string
	for status, n := range counts {
		conds = append(conds, fmt.Sprintf(`(b => b.dataset.count === '%d' && b.querySelector('.n').textContent === '%d')(document.querySelector('#filters button[data-status="%s"]'))`, n, n, status))
	}
	p.waitFor("the counts by status", strings.Join(conds, " && "))

	// The last hour's chart: 60 minutes of bars whose counts add up to
	// the server's.
	tp, err := c.Throughput(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	started, finished := 0, 0
	for _, b := range tp.Buckets {
		started, finished = started+b.Started, finished+b.Finished
	}
	if started != total || finished != total {
		t.Fatalf("server throughput: %d started, %d finished; want %d each", started, finished, total)
	}
	p.waitFor("the throughput chart", fmt.Sprintf(`(sum => document.querySelectorAll('#throughput rect[data-kind="started"]').length === 60 &&
		document.querySelectorAll('#throughput rect[data-kind="finished"]').length === 60 &&
		sum('started') === %d && sum('finished') === %d && document.querySelector('#throughput-totals').textContent === '%d started · %d finished' &&
		[...document.querySelectorAll('#throughput rect')].some(r => +r.getAttribute('height') > 0))
		(kind => [...document.querySelectorAll('#throughput rect[data-kind="' + kind + '"]')].reduce((s, r) => s + +r.dataset.count, 0))`,
		started, finished, started, finished))

	// Times read "…ago", with the exact time on hover.
	p.waitFor("relative creation times", `[...document.querySelectorAll('#executions tbody tr')].every(r =>
		(t => t && /^(just now|\d+s ago|\d+m ago)$/.test(t.textContent) && t.title !== '' && !isNaN(Date.parse(t.getAttribute('datetime'))))(r.querySelector('time')))`)

	// Paging: the older page holds the rest, as the API pages them.
	first, err := c.List(ctx, conveyor.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.List(ctx, conveyor.ListFilter{Cursor: *first.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	var olderIDs []string
	for _, ex := range second.Executions {
		olderIDs = append(olderIDs, ex.ID)
	}
	p.waitFor("the older page button", `!document.querySelector('#page-older').hidden && document.querySelector('#page-newer').hidden`)
	p.run("page to older", chromedp.Click(chromedp.CSS("#page-older")))
	p.waitFor("the older page", fmt.Sprintf(`[...document.querySelectorAll('#executions tbody tr')].map(r => r.dataset.id).join() === %s &&
		document.querySelector('#list-note').textContent.includes('executions 51–%d shown') &&
		document.querySelector('#page-older').hidden && !document.querySelector('#page-newer').hidden`, js(strings.Join(olderIDs, ",")), total))
	p.run("page back", chromedp.Click(chromedp.CSS("#page-newer")))
	p.waitFor("the newest page", `document.querySelectorAll('#executions tbody tr').length === 50 && document.querySelector('#page-newer').hidden`)

	// The pipeline filter: the flaky execution alone, with its two
	// attempts and the run time of the last.
	eval[bool](p, `(s => { s.value = 'flaky'; s.dispatchEvent(new Event('change')); return true })(document.querySelector('#pipeline-filter'))`)
	p.waitFor("the flaky execution alone", fmt.Sprintf(`(rows => rows.length === 1 && rows[0].dataset.id === %s && rows[0].dataset.attempt === '2' &&
		!rows[0].querySelector('.attempts').hidden && rows[0].querySelector('.attempts').textContent === 'attempt 2' &&
		rows[0].querySelector('.attempts').title.includes('sums all 2 attempts') && /^\d/.test(rows[0].querySelector('.run-time').textContent))
		([...document.querySelectorAll('#executions tbody tr')])`, js(flaky.ID)))
	eval[bool](p, `(s => { s.value = ''; s.dispatchEvent(new Event('change')); return true })(document.querySelector('#pipeline-filter'))`)
	p.waitFor("the whole list again", `document.querySelectorAll('#executions tbody tr').length === 50 && document.querySelector('#pipeline-filter').value === ''`)

	// An id's start filters the list as the API does; a malformed one is
	// refused; a whole id opens that execution.
	prefix := flaky.ID[:9]
	byPrefix, err := c.List(ctx, conveyor.ListFilter{IDPrefix: prefix, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	p.run("search an id prefix", chromedp.SendKeys(chromedp.CSS("#id-input"), strings.ToUpper(prefix)+kb.Enter))
	p.waitFor("the executions with the prefix", fmt.Sprintf(`(rows => rows.length === %d && rows.every(r => r.dataset.id.startsWith(%s)))
		([...document.querySelectorAll('#executions tbody tr')]) && !document.querySelector('#id-clear').hidden`,
		min(len(byPrefix.Executions), 50), js(prefix)))
	p.run("clear the id filter", chromedp.Click(chromedp.CSS("#id-clear")))
	p.run("search a malformed id", chromedp.SendKeys(chromedp.CSS("#id-input"), "zz-top"+kb.Enter))
	p.waitFor("the id error", `!document.querySelector('#filter-error').hidden && document.querySelector('#filter-error').textContent.includes('zz-top') &&
		document.querySelectorAll('#executions tbody tr').length === 50`)
	eval[string](p, `document.querySelector('#id-input').value = ''`)
	p.run("search the flaky id", chromedp.SendKeys(chromedp.CSS("#id-input"), flaky.ID+kb.Enter))

	// Its page: attempts, run time over both, the progress chart with the
	// retry marked, log lines under their attempt, relative times.
	p.waitFor("the flaky execution's page", fmt.Sprintf(`location.hash === %s && !document.querySelector('#detail').hidden &&
		document.querySelector('#detail-id').textContent === %s && document.querySelector('#detail-status').textContent === 'completed' &&
		document.querySelector('#detail-run-time').textContent.includes('over 2 attempts') &&
		[...document.querySelectorAll('#detail-logs .lines > *')].map(n => n.classList.contains('attempt-label') ? n.textContent : n.dataset.attempt).join() === 'Attempt 1,1,Attempt 2,2' &&
		document.querySelector('#detail-logs').textContent.includes('attempt 2 says hello')`, js("#/executions/"+flaky.ID), js(flaky.ID)))
	p.waitFor("the progress chart", `(pts => pts.length >= 3 && pts[0] === 0 && pts[pts.length - 1] === 100 && pts.filter(x => x === 0).length === 2 &&
		document.querySelectorAll('#detail-chart .restart').length === 1 && document.querySelector('#detail-chart polyline') !== null)
		([...document.querySelectorAll('#detail-chart circle')].map(c => +c.dataset.pct))`)
	if fields := p.text("#detail-fields"); !strings.Contains(fields, "Attempts2") {
		t.Errorf("detail fields %q lack the attempts", fields)
	}
	p.waitFor("relative times in the detail", `(ts => ts.length >= 3 && ts.every(t => /ago$|^just now$/.test(t.textContent) && t.title !== ''))
		([...document.querySelectorAll('#detail-fields time, #detail-events time, #detail-logs time')])`)

	// Run again: the form holds its pipeline and input; Start runs them.
	p.run("run it again", chromedp.Click(chromedp.CSS("#detail-rerun")))
	p.waitFor("the prefilled form", fmt.Sprintf(`document.querySelector('#detail').hidden && document.querySelector('#pipeline').value === 'flaky' &&
		!document.querySelector('#start-prefill').hidden && document.querySelector('#start-prefill').dataset.from === %s &&
		JSON.stringify(JSON.parse(document.querySelector('#input').value)) === JSON.stringify({"city": "Lyon", "tries": [1, 2]})`, js(flaky.ID)))
	p.run("start it", chromedp.Click(chromedp.CSS("#start")))
	p.waitFor("the new execution", fmt.Sprintf(`!document.querySelector('#start-ok').hidden && document.querySelector('#start-ok').dataset.id !== '' &&
		document.querySelector('#start-ok').dataset.id !== %s && document.querySelector('#start-prefill').hidden`, js(flaky.ID)))
	again, err := c.Get(ctx, eval[string](p, `document.querySelector('#start-ok').dataset.id`))
	if err != nil {
		t.Fatal(err)
	}
	var in, want any
	if err := json.Unmarshal(again.Input, &in); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(flaky.Input, &want)
	if again.Pipeline != "flaky" || !reflect.DeepEqual(in, want) {
		t.Errorf("run again started %s with %s, want flaky with %s", again.Pipeline, again.Input, flaky.Input)
	}
	p.screenshot("tools")
	p.errs.check(t)
}
