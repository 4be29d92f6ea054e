package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// testWaits: a pending execution submitted to run later says in its row
// when it starts, and its page shows its run_at.
func testWaits(t *testing.T, browserCtx context.Context) {
	base := startNode(t, "", quickPipeline())
	ex, err := client.New(base, nil).SubmitExecution(t.Context(), conveyor.NewExecution{Pipeline: "quick", Delay: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	p := newPage(t, browserCtx)
	p.run("open the page", chromedp.Navigate(base+"/"))
	p.waitFor("the delayed row", fmt.Sprintf(`(r => r && r.dataset.status === 'pending' &&
		r.querySelector('.step').textContent.startsWith('starts at '))(%s)`, row(ex.ID)))

	p.run("open the delayed execution's page", chromedp.Navigate(base+"/ui/#/executions/"+ex.ID))
	p.waitFor("its fields", `!document.querySelector('#detail').hidden && document.querySelector('#detail-fields').textContent.includes('Starts at')`)
	if got := p.text("#detail-fields"); !strings.Contains(got, "Starts atin ") {
		t.Errorf("detail fields %q, want Starts at in the future", got)
	}
}
