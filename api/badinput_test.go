package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func TestBadInputGetsClearErrorsAndWritesNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, 1, &conveyor.Pipeline{Name: "quick", Steps: []conveyor.Step{{Name: "only", Run: noop}}})
	big := `{"pipeline":"quick","input":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		code                                  string
	}{
		{"not json content type", "POST", "/executions", "text/plain", `{"pipeline":"quick"}`, 415, conveyor.EUNSUPPORTED},
		{"no content type", "POST", "/executions", "", `{"pipeline":"quick"}`, 415, conveyor.EUNSUPPORTED},
		{"too large", "POST", "/executions", "application/json", big, 413, conveyor.ETOOLARGE},
		{"malformed", "POST", "/executions", "application/json", `{"pipeline":`, 400, conveyor.EBADREQUEST},
		{"unknown field", "POST", "/executions", "application/json", `{"pipeline":"quick","priority":1}`, 400, conveyor.EBADREQUEST},
		{"wrong type", "POST", "/executions", "application/json", `{"pipeline":42}`, 400, conveyor.EBADREQUEST},
		{"trailing data", "POST", "/executions", "application/json", `{"pipeline":"quick"} {}`, 400, conveyor.EBADREQUEST},
		{"empty body", "POST", "/executions", "application/json", ``, 400, conveyor.EBADREQUEST},
		{"array body", "POST", "/executions", "application/json", `[]`, 400, conveyor.EBADREQUEST},
		{"missing pipeline", "POST", "/executions", "application/json", `{"input":{}}`, 422, conveyor.EINVALID},
		{"unknown pipeline", "POST", "/executions", "application/json", `{"pipeline":"nope"}`, 422, conveyor.EUNKNOWNPIPELINE},
		{"input not an object", "POST", "/executions", "application/json", `{"pipeline":"quick","input":[1,2]}`, 422, conveyor.EINVALID},
		{"input a string", "POST", "/executions", "application/json", `{"pipeline":"quick","input":"x"}`, 422, conveyor.EINVALID},
		{"input not UTF-8", "POST", "/executions", "application/json", "{\"pipeline\":\"quick\",\"input\":{\"s\":\"\xff\"}}", 400, conveyor.EBADREQUEST},
		{"NUL id", "GET", "/executions/%00", "", ``, 404, conveyor.ENOTFOUND},
		{"non-UTF-8 id", "GET", "/executions/%ff/progress", "", ``, 404, conveyor.ENOTFOUND},
		{"non-UTF-8 id events", "GET", "/executions/%ff/events", "", ``, 404, conveyor.ENOTFOUND},
		{"NUL id logs", "GET", "/executions/%00/logs", "", ``, 404, conveyor.ENOTFOUND},
		{"NUL id cancel", "POST", "/executions/%00/cancel", "", ``, 404, conveyor.ENOTFOUND},
		{"non-UTF-8 pipeline filter", "GET", "/executions?pipeline=%ff", "", ``, 400, conveyor.EBADREQUEST},
		{"bad tag key", "POST", "/executions", "application/json", `{"pipeline":"quick","tags":{"Bad Key":"x"}}`, 422, conveyor.EINVALID},
		{"tag value not a string", "POST", "/executions", "application/json", `{"pipeline":"quick","tags":{"n":1}}`, 422, conveyor.EINVALID},
		{"tag value too long", "POST", "/executions", "application/json", `{"pipeline":"quick","tags":{"k":"` + strings.Repeat("v", 256) + `"}}`, 422, conveyor.EINVALID},
		{"tag value null", "POST", "/executions", "application/json", `{"pipeline":"quick","tags":{"k":null}}`, 422, conveyor.EINVALID},
		{"tags not an object", "POST", "/executions", "application/json", `{"pipeline":"quick","tags":["a"]}`, 400, conveyor.EBADREQUEST},
		{"bad tag filter", "GET", "/executions?tag=nocolon", "", ``, 400, conveyor.EBADREQUEST},
		{"bad tag filter key", "GET", "/executions?tag=Bad:x", "", ``, 400, conveyor.EBADREQUEST},
		{"bad status filter", "GET", "/executions?status=done", "", ``, 400, conveyor.EBADREQUEST},
		{"limit zero", "GET", "/executions?limit=0", "", ``, 400, conveyor.EBADREQUEST},
		{"limit not a number", "GET", "/executions?limit=ten", "", ``, 400, conveyor.EBADREQUEST},
		{"limit too big", "GET", "/executions?limit=100000", "", ``, 400, conveyor.EBADREQUEST},
		{"malformed query", "GET", "/executions?cursor=%%%garbage", "", ``, 400, conveyor.EBADREQUEST},
		{"malformed cursor", "GET", "/executions?cursor=not-a-cursor", "", ``, 400, conveyor.EBADREQUEST},
		{"bad events after", "GET", "/executions/x/events?after=-1", "", ``, 400, conveyor.EBADREQUEST},
		{"events after with a sign", "GET", "/executions/x/events?after=%2B1", "", ``, 400, conveyor.EBADREQUEST},
		{"cancel unknown", "POST", "/executions/nope/cancel", "", ``, 404, conveyor.ENOTFOUND},
		{"cancel with a body that is not an object", "POST", "/executions/nope/cancel", "application/json", `[1]`, 400, conveyor.EBADREQUEST},
		{"cancel with a null body", "POST", "/executions/nope/cancel", "application/json", `null`, 400, conveyor.EBADREQUEST},
		{"cancel with a body of a Unicode space", "POST", "/executions/nope/cancel", "application/json", "\u00a0", 400, conveyor.EBADREQUEST},
		{"cancel with unknown field", "POST", "/executions/nope/cancel", "application/json", `{"force":true}`, 400, conveyor.EBADREQUEST},
		{"unknown pipeline info", "GET", "/pipelines/nope", "", ``, 404, conveyor.ENOTFOUND},
		{"logs of unknown", "GET", "/executions/nope/logs", "", ``, 404, conveyor.ENOTFOUND},
		{"unknown path", "GET", "/nope", "", ``, 404, conveyor.ENOTFOUND},
		{"wrong method", "DELETE", "/executions", "", ``, 405, conveyor.EMETHOD},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, h.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e struct{ Error *conveyor.Error }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
				t.Fatalf("body %q is not a JSON error", body)
			}
			if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, e.Error, tc.status, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	page, err := h.client.List(context.Background(), conveyor.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Executions) != 0 {
		t.Fatalf("bad requests created %d executions", len(page.Executions))
	}
}
