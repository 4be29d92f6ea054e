package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// maxResponseBody is how much of a response an http step reads: enough to
// reuse the connection and to log why a call failed, never a whole
// download.
const maxResponseBody = 64 << 10

// HTTPSpec is an http step: one request, which must answer with the
// expected status.
type HTTPSpec struct {
	Method  string            `yaml:"method" json:"method"`
	URL     string            `yaml:"url" json:"url"`
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	Body    string            `yaml:"body" json:"body,omitempty"`
	Expect  int               `yaml:"expect" json:"expect"` // status wanted
}

// MarshalJSON hides header values and the URL's password, which are where
// tokens live, from whoever may list pipelines.
func (s HTTPSpec) MarshalJSON() ([]byte, error) {
	type plain HTTPSpec
	v := plain(s)
	v.Headers = redact(s.Headers)
	if u, err := url.Parse(s.URL); err == nil {
		v.URL = u.Redacted()
	}
	return json.Marshal(v)
}

// Run makes the request. Any status but the expected one fails the step
// (ESTEPFAILED), and the start of the response body goes to the log.
// Redirects are followed unless a 3xx status is expected. The request
// carries X-Conveyor-Execution-Id and X-Conveyor-Attempt so that a
// receiver can tell a retry from a new call.
func (s *HTTPSpec) Run(ctx context.Context, x *conveyor.Exec) error {
	var body io.Reader
	if s.Body != "" {
		body = strings.NewReader(s.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, s.URL, body)
	if err != nil {
		return conveyor.Errorf(conveyor.ESTEPFAILED, "build request: %v", err)
	}
	req.Header.Set("X-Conveyor-Execution-Id", x.ID)
	req.Header.Set("X-Conveyor-Attempt", strconv.Itoa(x.Attempt))
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{}
	if s.Expect >= 300 && s.Expect < 400 {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return conveyor.Errorf(conveyor.ESTEPFAILED, "%s %s: %v", s.Method, redactURL(s.URL), unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if resp.StatusCode != s.Expect {
		if len(data) > 0 {
			x.Log(conveyor.TruncateUTF8(string(data), 1024))
		}
		return conveyor.Errorf(conveyor.ESTEPFAILED, "%s %s: status %s, want %d", s.Method, redactURL(s.URL), resp.Status, s.Expect)
	}
	return nil
}

// unwrapURLError drops *url.Error's repetition of the method and URL,
// which the step's message already names (without the password).
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

func redact(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = "<redacted>"
	}
	return out
}
