// Package client is the Go SDK for a Conveyor server: submit executions,
// read their status and progress, cancel them, and stream their events over
// WebSocket. The conveyor CLI and the tests use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/conveyor-run/conveyor"
)

// Client talks to one Conveyor server.
type Client struct {
	baseURL string
	http    *http.Client
	apiKey  string
	// idempotencyKey is sent with submissions (WithIdempotencyKey).
	idempotencyKey string
}

// New returns a client for the server at baseURL, e.g.
// "http://127.0.0.1:8080". httpClient may be nil for http.DefaultClient.
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), http: httpClient}
}

// WithAPIKey returns a copy of c that sends key as a bearer token, for a
// server started with --api-key.
func (c *Client) WithAPIKey(key string) *Client {
	cc := *c
	cc.apiKey = key
	return &cc
}

// WithIdempotencyKey returns a copy of c whose submissions (Submit,
// SubmitWithTags, SubmitBatch) send key as their Idempotency-Key: sent
// again within conveyor.IdempotencyTTL, the same submission returns what
// the first one created instead of creating it twice, and another
// submission with the key fails with conveyor.EIDEMPOTENCYMISMATCH. Use
// one key per submission, and the copy for that submission and its
// retries.
func (c *Client) WithIdempotencyKey(key string) *Client {
	cc := *c
	cc.idempotencyKey = key
	return &cc
}

// StreamToken returns a short-lived token with which a browser may open the
// stream of one execution (?token=…), on a server with an API key.
func (c *Client) StreamToken(ctx context.Context, id string) (string, error) {
	var body struct {
		Token string `json:"token"`
	}
	err := c.do(ctx, http.MethodPost, "/executions/"+url.PathEscape(id)+"/token", struct{}{}, &body)
	return body.Token, err
}

// Submit starts an execution of pipeline with input (any JSON-marshalable
// object; nil for {}). It returns once the server has stored it.
func (c *Client) Submit(ctx context.Context, pipeline string, input any) (*conveyor.Execution, error) {
	return c.SubmitWithTags(ctx, pipeline, input, nil)
}

// SubmitWithTags is Submit with tags on the execution.
func (c *Client) SubmitWithTags(ctx context.Context, pipeline string, input any, tags conveyor.Tags) (*conveyor.Execution, error) {
	n := conveyor.NewExecution{Pipeline: pipeline, Tags: tags}
	if input != nil {
		b, err := json.Marshal(input)
		if err != nil {
			return nil, fmt.Errorf("encode input: %w", err)
		}
		n.Input = b
	}
	return c.SubmitExecution(ctx, n)
}

// submit posts a submission with the client's idempotency key, if any.
func (c *Client) submit(ctx context.Context, path string, in, out any) error {
	var h http.Header
	if c.idempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {c.idempotencyKey}}
	}
	return c.doWith(ctx, http.MethodPost, path, h, in, out)
}

// SubmitExecution submits n, with everything a submission may carry:
// tags, its own webhook, and when it may start, RunAt (an RFC 3339 time,
// t.Format(time.RFC3339Nano)) or Delay (a Go duration, d.String()). It
// stays pending until then. Bad values are a *conveyor.Error with code
// conveyor.EINVALID naming the field.
func (c *Client) SubmitExecution(ctx context.Context, n conveyor.NewExecution) (*conveyor.Execution, error) {
	var ex conveyor.Execution
	return &ex, c.submit(ctx, "/executions", n, &ex)
}

// Get returns an execution. A missing one is a *conveyor.Error with code
// conveyor.ENOTFOUND.
func (c *Client) Get(ctx context.Context, id string) (*conveyor.Execution, error) {
	var ex conveyor.Execution
	return &ex, c.do(ctx, http.MethodGet, "/executions/"+url.PathEscape(id), nil, &ex)
}

// Progress returns an execution's progress, or nil while it has none yet
// (the server answers 204).
func (c *Client) Progress(ctx context.Context, id string) (p *conveyor.Progress, err error) {
	err = c.do(ctx, http.MethodGet, "/executions/"+url.PathEscape(id)+"/progress", nil, &p)
	return p, err
}

// Cancel asks the server to cancel an execution. A finished one is a
// *conveyor.Error with code conveyor.ECONFLICT.
func (c *Client) Cancel(ctx context.Context, id string) (*conveyor.Execution, error) {
	var ex conveyor.Execution
	return &ex, c.do(ctx, http.MethodPost, "/executions/"+url.PathEscape(id)+"/cancel", struct{}{}, &ex)
}

// Retry submits the final execution id again as a new execution of the
// same pipeline, input, tags and own webhook, in no batch, and returns
// it: its RetryOf is id. ECONFLICT while id is pending or running.
func (c *Client) Retry(ctx context.Context, id string) (*conveyor.Execution, error) {
	var ex conveyor.Execution
	return &ex, c.do(ctx, http.MethodPost, "/executions/"+url.PathEscape(id)+"/retry", struct{}{}, &ex)
}

// Delete deletes a final execution with its events, log lines and data
// (and its batch, if it was the batch's last member). ECONFLICT while it
// is pending or running, ENOTFOUND if there is none.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/executions/"+url.PathEscape(id), nil, nil)
}

// List returns one page of executions, newest first, without their Input
// and Result unless f.WithInput or f.WithResult asks for them.
func (c *Client) List(ctx context.Context, f conveyor.ListFilter) (*conveyor.ExecutionPage, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Pipeline != "" {
		q.Set("pipeline", f.Pipeline)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	for _, t := range f.Tags {
		q.Add("tag", t.String())
	}
	if f.Batch != "" {
		q.Set("batch", f.Batch)
	}
	if f.IDPrefix != "" {
		q.Set("id_prefix", f.IDPrefix)
	}
	var fields []string
	if f.WithInput {
		fields = append(fields, "input")
	}
	if f.WithResult {
		fields = append(fields, "result")
	}
	if fields != nil {
		q.Set("fields", strings.Join(fields, ","))
	}
	var page conveyor.ExecutionPage
	return &page, c.do(ctx, http.MethodGet, "/executions?"+q.Encode(), nil, &page)
}

// SubmitBatch submits executions as one batch, all or nothing: a bad
// item is a *conveyor.Error whose message names it, executions[i]. tags go
// to every member; an item's own tag wins on the same key.
func (c *Client) SubmitBatch(ctx context.Context, items []conveyor.NewExecution, tags conveyor.Tags) (*conveyor.Batch, error) {
	body := map[string]any{"executions": items}
	if tags != nil {
		body["tags"] = tags
	}
	var b conveyor.Batch
	return &b, c.submit(ctx, "/batches", body, &b)
}

// Batch returns a batch with its counts and progress.
func (c *Client) Batch(ctx context.Context, id string) (*conveyor.Batch, error) {
	var b conveyor.Batch
	return &b, c.do(ctx, http.MethodGet, "/batches/"+url.PathEscape(id), nil, &b)
}

// Batches returns one page of batches, newest first.
func (c *Client) Batches(ctx context.Context, f conveyor.BatchFilter) (*conveyor.BatchPage, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	for _, t := range f.Tags {
		q.Add("tag", t.String())
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	var page conveyor.BatchPage
	return &page, c.do(ctx, http.MethodGet, "/batches?"+q.Encode(), nil, &page)
}

// CancelBatch cancels every member of a batch that is not final. A final
// batch is a *conveyor.Error with code conveyor.ECONFLICT.
func (c *Client) CancelBatch(ctx context.Context, id string) (*conveyor.Batch, error) {
	var b conveyor.Batch
	return &b, c.do(ctx, http.MethodPost, "/batches/"+url.PathEscape(id)+"/cancel", struct{}{}, &b)
}

// Events returns stored events of an execution with seq > after.
func (c *Client) Events(ctx context.Context, id string, after int64) ([]conveyor.Event, error) {
	var body struct {
		Events []conveyor.Event `json:"events"`
	}
	err := c.do(ctx, http.MethodGet, "/executions/"+url.PathEscape(id)+"/events?after="+strconv.FormatInt(after, 10), nil, &body)
	return body.Events, err
}

// Logs returns the kept output lines of an execution, oldest first,
// reading every page.
func (c *Client) Logs(ctx context.Context, id string) ([]conveyor.LogLine, error) {
	var lines []conveyor.LogLine
	for after := int64(0); ; {
		page, err := c.LogsAfter(ctx, id, after)
		if err != nil {
			return nil, err
		}
		lines, after = append(lines, page.Lines...), page.Last
		if !page.More {
			return lines, nil
		}
	}
}

// LogsAfter returns one page of an execution's output lines, those after
// line number after (0: from the oldest kept). Its Last is the after of
// the next page, and of the lines still to come.
func (c *Client) LogsAfter(ctx context.Context, id string, after int64) (*conveyor.LogPage, error) {
	var page conveyor.LogPage
	err := c.do(ctx, http.MethodGet, "/executions/"+url.PathEscape(id)+"/logs?after="+strconv.FormatInt(after, 10), nil, &page)
	return &page, err
}

// Pipelines lists the server's pipelines.
func (c *Client) Pipelines(ctx context.Context) ([]conveyor.PipelineInfo, error) {
	var body struct {
		Pipelines []conveyor.PipelineInfo `json:"pipelines"`
	}
	err := c.do(ctx, http.MethodGet, "/pipelines", nil, &body)
	return body.Pipelines, err
}

// Pipeline describes one pipeline.
func (c *Client) Pipeline(ctx context.Context, name string) (*conveyor.PipelineInfo, error) {
	var p conveyor.PipelineInfo
	return &p, c.do(ctx, http.MethodGet, "/pipelines/"+url.PathEscape(name), nil, &p)
}

// do sends a JSON request and decodes a JSON answer into out (left alone on
// 204). Error answers become *conveyor.Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doWith(ctx, method, path, nil, in, out)
}

// doWith is do with more request headers.
func (c *Client) doWith(ctx context.Context, method, path string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if resp.StatusCode == http.StatusNoContent || out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	var body struct {
		Error *conveyor.Error `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &body) == nil && body.Error != nil && body.Error.Code != "" {
		return body.Error
	}
	return conveyor.Errorf(conveyor.CodeOfHTTPStatus(resp.StatusCode), "%s: %s", resp.Status, strings.TrimSpace(string(b)))
}

func (c *Client) authorize(h http.Header) {
	if c.apiKey != "" {
		h.Set("Authorization", "Bearer "+c.apiKey)
	}
}
