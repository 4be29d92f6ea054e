package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
)

// The contract: api/openapi.yaml, as GET /openapi.json serves it. Every
// test server of this package (setupStore) checks every response it gives
// against it, and every message of every stream it sends, so that the
// document cannot drift from the code: an undocumented status, field,
// error code or message type fails the test that met it.

// contract is the served document, loaded and validated once.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	routes []string // api.Server.Patterns
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	a := api.New(api.Config{})
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		return nil, fmt.Errorf("GET /openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rec.Body.Bytes())
	if err != nil {
		return nil, fmt.Errorf("load /openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate /openapi.json: %w", err)
	}
	// The servers are examples; the tests' servers listen elsewhere.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("route /openapi.json: %w", err)
	}
	return &contract{doc: doc, router: router, routes: a.Patterns()}, nil
})

func mustContract(t testing.TB) *contract {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// operations are the document's operations as mux patterns, "GET /path".
func (c *contract) operations() map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

// message is the schema x-conveyor-message of op names: the messages of
// its stream. Nil when op is not a stream.
func (c *contract) message(op *openapi3.Operation) (*openapi3.Schema, error) {
	ext, ok := op.Extensions["x-conveyor-message"]
	if !ok {
		return nil, nil
	}
	ref, _ := ext.(map[string]any)["$ref"].(string)
	s := c.schema(ref)
	if s == nil {
		return nil, fmt.Errorf("%s: x-conveyor-message %v names no schema", op.OperationID, ext)
	}
	return s, nil
}

// schema is the component schema ref points to, nil if none.
func (c *contract) schema(ref string) *openapi3.Schema {
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if s := c.doc.Components.Schemas[name]; ok && s != nil {
		return s.Value
	}
	return nil
}

func TestOpenAPIDocumentDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	if !c.doc.IsOpenAPI31OrLater() || c.doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi: %q, want 3.1.0", c.doc.OpenAPI)
	}
	ops := c.operations()
	for _, route := range c.routes {
		if ops[route] == nil {
			t.Errorf("api/server.go serves %s; api/openapi.yaml does not describe it", route)
		}
	}
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		if !slices.Contains(c.routes, op) {
			t.Errorf("api/openapi.yaml describes %s; api/server.go does not serve it", op)
		}
	}
	for name, op := range ops {
		msg, err := c.message(op)
		if err != nil {
			t.Error(err)
		}
		stream := strings.HasSuffix(name, "/sse") || strings.HasSuffix(name, "/ws") || strings.HasSuffix(name, "/logs")
		if stream != (msg != nil) {
			t.Errorf("%s: x-conveyor-message %v; a stream needs one, nothing else has one", name, op.Extensions["x-conveyor-message"])
		}
		if ws := strings.HasSuffix(name, "/ws"); ws != (op.Extensions["x-websocket"] == true) || ws != (op.Responses.Status(http.StatusSwitchingProtocols) != nil) {
			t.Errorf("%s: a WebSocket has x-websocket: true and a 101 answer, nothing else has either", name)
		}
	}
}

// TestOpenAPIDiscriminators checks that each discriminator maps every
// schema of its oneOf, by the const of its property: the contract check
// validates a stream message against the schema its type maps to.
func TestOpenAPIDiscriminators(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	for name, ref := range c.doc.Components.Schemas {
		d := ref.Value.Discriminator
		if d == nil {
			continue
		}
		var oneOf []string
		for _, s := range ref.Value.OneOf {
			oneOf = append(oneOf, s.Ref)
			prop := s.Value.Properties[d.PropertyName]
			if prop == nil || d.Mapping[fmt.Sprint(prop.Value.Const)].Ref != s.Ref {
				t.Errorf("%s: %s is not mapped by its %s", name, s.Ref, d.PropertyName)
			}
		}
		var mapped []string
		for _, m := range d.Mapping {
			mapped = append(mapped, m.Ref)
		}
		slices.Sort(oneOf)
		if slices.Sort(mapped); !slices.Equal(oneOf, mapped) {
			t.Errorf("%s: discriminator maps %v, oneOf holds %v", name, mapped, oneOf)
		}
	}
}

// TestOpenAPIErrorCodes checks the error codes of the document against
// error.go: the same codes, each answered with its status. The codes are
// read from error.go's httpStatuses, the one table of them.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	codes := apiErrorCodes(t)
	var enum []string
	for _, v := range c.doc.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	if slices.Sort(enum); !slices.Equal(enum, codes) {
		t.Errorf("ErrorCode enum %v, error.go's httpStatuses %v", enum, codes)
	}
	// Every documented error answer takes exactly the codes of its status.
	checked := map[string]bool{}
	for name, op := range c.operations() {
		for status, resp := range op.Responses.Map() {
			n, _ := strconv.Atoi(status)
			mt := resp.Value.Content.Get("application/json")
			if n < 400 || resp.Ref == "" || mt == nil || checked[status+resp.Ref] {
				continue // not an error answer of the API's (the health check's 503), or done
			}
			checked[status+resp.Ref] = true
			for _, code := range codes {
				body := map[string]any{"error": map[string]any{"code": code, "message": "m"}}
				err := mt.Schema.Value.VisitJSON(body, openapi3.EnableJSONSchema2020())
				if want := conveyor.HTTPStatus(code) == n; want != (err == nil) {
					t.Errorf("%s %s: error code %s (HTTP %d) valid %v, want %v", name, status, code, conveyor.HTTPStatus(code), err == nil, want)
				}
			}
		}
	}
}

// apiErrorCodes are the codes of error.go's httpStatuses, sorted.
func apiErrorCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../error.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{} // constant name -> code
	var table *ast.CompositeLit
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range spec.Names[:len(spec.Values)] {
			switch value := spec.Values[i].(type) {
			case *ast.BasicLit:
				if value.Kind == token.STRING {
					values[name.Name], _ = strconv.Unquote(value.Value)
				}
			case *ast.CompositeLit:
				if name.Name == "httpStatuses" {
					table = value
				}
			}
		}
		return false
	})
	if table == nil {
		t.Fatal("error.go: no httpStatuses")
	}
	var codes []string
	for _, e := range table.Elts {
		id, ok := e.(*ast.CompositeLit).Elts[0].(*ast.Ident)
		if !ok || values[id.Name] == "" {
			t.Fatalf("error.go: httpStatuses entry %v is not a code constant", e)
		}
		codes = append(codes, values[id.Name])
	}
	slices.Sort(codes)
	return codes
}

// checkContract wraps a test server's handler: it checks each response
// against the contract (routes, statuses, headers, bodies) and each
// message of each stream against the stream's message schema, and fails
// t with what did not match once t's server is closed (a server's
// goroutines may outlive its test).
func checkContract(t *testing.T, next http.Handler) http.Handler {
	c := mustContract(t)
	v := &contractChecker{c: c, next: next, routes: http.NewServeMux()}
	for _, p := range c.routes {
		v.routes.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	// Registered before the server's cleanup, so run after it.
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { v.running.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Log("contract check: requests still running at the end of the test")
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, err := range v.errs {
			t.Errorf("contract (api/openapi.yaml): %v", err)
		}
		v.errs, v.closed = nil, true
	})
	return v
}

type contractChecker struct {
	c       *contract
	next    http.Handler
	routes  *http.ServeMux // c.routes, to tell an undocumented route from no route
	running sync.WaitGroup

	mu     sync.Mutex
	errs   []error
	closed bool
}

func (v *contractChecker) fail(r *http.Request, format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.closed {
		msg := fmt.Sprintf(format, args...)
		// kin-openapi's errors end with the whole schema, which would
		// bury what failed.
		msg, _, _ = strings.Cut(msg, "\nSchema:\n")
		v.errs = append(v.errs, fmt.Errorf("%s %s: %s", r.Method, r.URL.RequestURI(), msg))
	}
}

func (v *contractChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.running.Add(1)
	defer v.running.Done()
	route, params, routeErr := v.c.router.FindRoute(r)
	var schema *openapi3.Schema
	if routeErr == nil {
		var err error
		if schema, err = v.c.message(route.Operation); err != nil {
			v.fail(r, "%v", err)
		}
	}
	rec := &recorder{ResponseWriter: w, fail: func(format string, args ...any) { v.fail(r, format, args...) }, contract: v.c, message: schema}
	v.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK // nothing written
	}
	if routeErr != nil {
		v.checkUnrouted(r, rec)
		return
	}
	rec.checkStreamEnd()
	if rec.status == http.StatusOK && rec.body.Len() == 0 && rec.header.Get("Content-Type") == "" && schema != nil {
		// The documented answer of a stream resumed after its final
		// message (components/responses/EventStream): without a
		// text/event-stream, an EventSource stops instead of reconnecting.
		return
	}
	stream := rec.sse || rec.status == http.StatusSwitchingProtocols
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 rec.status,
		Header:                 rec.header,
		Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: stream},
	}
	if err := openapi3filter.ValidateResponse(r.Context(), input); err != nil {
		v.fail(r, "%d: %v\nbody: %.500s", rec.status, err, rec.body.Bytes())
	}
	if rec.sse {
		if resp := route.Operation.Responses.Status(rec.status); resp == nil || resp.Value.Content.Get("text/event-stream") == nil {
			v.fail(r, "%d text/event-stream is not documented", rec.status)
		}
	}
}

// checkUnrouted checks the answer to a request the document has no
// operation for: the server must have no route for it either, and answer
// it with an error.
func (v *contractChecker) checkUnrouted(r *http.Request, rec *recorder) {
	if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/") {
		return // the dashboard: a web page, not the API
	}
	// The server refuses a path that is not clean (404) before it routes
	// it, where a mux would redirect it to the clean one.
	clean := path.Clean(r.URL.Path)
	if strings.HasSuffix(r.URL.Path, "/") && clean != "/" {
		clean += "/"
	}
	if _, pattern := v.routes.Handler(r); pattern != "" && clean == r.URL.Path {
		v.fail(r, "the server routes it to %s, which api/openapi.yaml does not describe", pattern)
		return
	}
	var body any
	err := json.Unmarshal(rec.body.Bytes(), &body)
	if err == nil {
		err = v.c.doc.Components.Schemas["ErrorBody"].Value.VisitJSON(body, openapi3.EnableJSONSchema2020())
	}
	if err != nil {
		v.fail(r, "%d on no route: not an error body: %v", rec.status, err)
		return
	}
	code, _ := body.(map[string]any)["error"].(map[string]any)["code"].(string)
	if conveyor.HTTPStatus(code) != rec.status {
		v.fail(r, "%d on no route with error code %s", rec.status, code)
	}
}

// recorder passes a response through, keeping what the contract check
// needs: the status and headers, the body of an ordinary answer, and the
// messages of a stream, checked as they are sent.
type recorder struct {
	http.ResponseWriter
	fail     func(format string, args ...any)
	contract *contract
	message  *openapi3.Schema // the stream's messages; nil if not a stream

	status int
	header http.Header
	body   bytes.Buffer
	sse    bool
	frames []byte // of an SSE stream, not yet complete
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status, rec.header = status, rec.ResponseWriter.Header().Clone()
		ct := rec.header.Get("Content-Type")
		rec.sse = strings.HasPrefix(ct, "text/event-stream")
		if rec.sse && rec.message == nil {
			rec.fail("an event stream on an endpoint without x-conveyor-message")
		}
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.sse {
		rec.frames = append(rec.frames, b...)
		for {
			frame, rest, ok := bytes.Cut(rec.frames, []byte("\n\n"))
			if !ok {
				break
			}
			rec.checkSSEFrame(string(frame))
			rec.frames = rest
		}
	} else {
		rec.body.Write(b)
	}
	return rec.ResponseWriter.Write(b)
}

func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// checkSSEFrame checks one Server-Sent Event: id: (optional, a number),
// event: its message's type, data: the message; or comments alone.
func (rec *recorder) checkSSEFrame(frame string) {
	var id, event, data string
	for line := range strings.SplitSeq(frame, "\n") {
		name, value, _ := strings.Cut(line, ": ")
		switch name {
		case "":
			// a comment: ": heartbeat"
		case "id":
			id = value
		case "event":
			event = value
		case "data":
			data = value
		default:
			rec.fail("SSE line %q", line)
		}
	}
	if event == "" && data == "" && id == "" {
		return
	}
	if n, err := strconv.ParseInt(id, 10, 64); id != "" && (err != nil || n < 0) {
		rec.fail("SSE id %q is not a number", id)
	}
	if typ := rec.checkMessage([]byte(data)); typ != event {
		rec.fail("SSE event: %q for a message of type %q", event, typ)
	}
}

// checkMessage checks one stream message against the stream's schema and
// returns its type.
func (rec *recorder) checkMessage(data []byte) string {
	var msg any
	if err := json.Unmarshal(data, &msg); err != nil {
		rec.fail("stream message %q: %v", data, err)
		return ""
	}
	typ, _ := msg.(map[string]any)["type"].(string)
	if rec.message == nil {
		return typ
	}
	// The schema of its type, for a short error; the document test
	// checks that the mapping lists the oneOf.
	schema := rec.message
	if d := schema.Discriminator; d != nil {
		ref, ok := d.Mapping[typ]
		if !ok {
			rec.fail("stream message %s: type %q is not one of this stream's", data, typ)
			return typ
		}
		schema = rec.contract.schema(ref.Ref)
	}
	if err := schema.VisitJSON(msg, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		rec.fail("stream message %s: %v", data, err)
	}
	return typ
}

// checkStreamEnd fails an SSE stream that ended inside a message.
func (rec *recorder) checkStreamEnd() {
	if rec.sse && len(bytes.TrimSpace(rec.frames)) > 0 {
		rec.fail("SSE stream ends with an incomplete message %q", rec.frames)
	}
}

// Hijack hands the WebSocket library a connection whose writes are read
// as frames: each text message the server sends is checked. An SSE stream
// takes over its connection too (sse.go) and writes its response head,
// then its events, which are checked as Write checks them.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rec.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if h := rec.Header(); strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") {
		rec.status, rec.header, rec.sse = http.StatusOK, h.Clone(), true
		if rec.message == nil {
			rec.fail("an event stream on an endpoint without x-conveyor-message")
		}
		return &sseConnRecorder{Conn: conn, rec: rec}, brw, nil
	}
	if err := brw.Flush(); err != nil {
		return nil, nil, err
	}
	wc := &wsRecorder{Conn: conn, rec: rec}
	return wc, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(wc, brw.Writer.Size())), nil
}

// sseConnRecorder reads what an SSE stream writes to the connection it
// took over: the response head, then events, each checked. It keeps its
// own buffer: it is written after the handler returned (the stream runs
// apart from its request).
type sseConnRecorder struct {
	net.Conn
	rec *recorder

	mu     sync.Mutex
	inHead bool // set once the response head is written
	buf    []byte
}

func (sc *sseConnRecorder) Write(b []byte) (int, error) {
	sc.mu.Lock()
	sc.buf = append(sc.buf, b...)
	if !sc.inHead {
		if _, rest, ok := bytes.Cut(sc.buf, []byte("\r\n\r\n")); ok {
			sc.inHead, sc.buf = true, append([]byte(nil), rest...)
		}
	}
	for sc.inHead {
		frame, rest, ok := bytes.Cut(sc.buf, []byte("\n\n"))
		if !ok {
			break
		}
		sc.rec.checkSSEFrame(string(frame))
		sc.buf = rest
	}
	sc.mu.Unlock()
	return sc.Conn.Write(b)
}

// wsRecorder reads the WebSocket frames written to a connection (a
// server's: never masked) and checks each text message.
type wsRecorder struct {
	net.Conn
	rec *recorder

	mu      sync.Mutex
	pending []byte // written, not yet a whole frame
	message []byte // the text message being assembled from frames
}

func (wc *wsRecorder) Write(b []byte) (int, error) {
	wc.mu.Lock()
	wc.pending = append(wc.pending, b...)
	for wc.frame() {
	}
	wc.mu.Unlock()
	return wc.Conn.Write(b)
}

// frame consumes one whole frame of pending, if there is one.
func (wc *wsRecorder) frame() bool {
	p := wc.pending
	if len(p) < 2 {
		return false
	}
	fin, rsv, opcode := p[0]&0x80 != 0, p[0]&0x70, p[0]&0x0f
	masked, n, hdr := p[1]&0x80 != 0, uint64(p[1]&0x7f), 2
	switch n {
	case 126:
		if len(p) < 4 {
			return false
		}
		n, hdr = uint64(binary.BigEndian.Uint16(p[2:4])), 4
	case 127:
		if len(p) < 10 {
			return false
		}
		n, hdr = binary.BigEndian.Uint64(p[2:10]), 10
	}
	if masked || rsv != 0 {
		wc.rec.fail("WebSocket frame masked (%v) or compressed (rsv %x): the check reads neither", masked, rsv)
	}
	if uint64(len(p)-hdr) < n {
		return false
	}
	payload := p[hdr : hdr+int(n)]
	switch opcode {
	case 0x1, 0x0: // text, continuation
		wc.message = append(wc.message, payload...)
		if fin {
			wc.rec.checkMessage(wc.message)
			wc.message = nil
		}
	case 0x2:
		wc.rec.fail("a binary WebSocket message")
	}
	wc.pending = p[hdr+int(n):]
	return true
}

// TestContractCheckFindsMismatches makes sure the check fails what it
// should: an undocumented route, an undocumented field, a missing one, a
// wrong error code, an undocumented status and stream messages the
// stream's schema does not allow.
func TestContractCheckFindsMismatches(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	v := &contractChecker{c: c, routes: http.NewServeMux()}
	for _, p := range c.routes {
		v.routes.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	for _, tc := range []struct {
		name, path, contentType string
		status                  int
		body                    string
	}{
		{"a route the document lacks", "/undocumented", "application/json", 200, `{}`},
		{"an unknown field", "/pipelines/x", "application/json", 200, `{"name":"x","kind":"steps","retries":0,"steps":[],"colour":"red"}`},
		{"a missing field", "/pipelines/x", "application/json", 200, `{"name":"x","kind":"steps","steps":[]}`},
		{"a code of another status", "/pipelines/x", "application/json", 404, `{"error":{"code":"conflict","message":"m"}}`},
		{"an undocumented status", "/pipelines/x", "application/json", 409, `{"error":{"code":"conflict","message":"m"}}`},
		{"a wrong type", "/executions/stats", "application/json", 200, `{"counts":{"pending":"1","running":0,"completed":0,"failed":0,"cancelled":0},"up_to":1}`},
		{"an unknown message type", "/executions/x/progress/sse", "text/event-stream", 200, "event: gone\ndata: {\"type\":\"gone\",\"execution_id\":\"x\",\"seq\":1,\"timestamp\":\"2026-01-01T00:00:00Z\"}\n\n"},
		{"a message without its field", "/executions/x/progress/sse", "text/event-stream", 200, "id: 1\nevent: started\ndata: {\"type\":\"started\",\"execution_id\":\"x\",\"seq\":1,\"timestamp\":\"2026-01-01T00:00:00Z\"}\n\n"},
		{"a batch message on a stream of one", "/executions/x/progress/sse", "text/event-stream", 200, "event: batch\ndata: {\"type\":\"batch\",\"batch_id\":\"b\",\"status\":\"running\",\"total\":1,\"counts\":{\"pending\":0,\"running\":1,\"completed\":0,\"failed\":0,\"cancelled\":0},\"progress\":{\"percentage\":0},\"timestamp\":\"2026-01-01T00:00:00Z\"}\n\n"},
		{"an event: that is not the type", "/executions/x/progress/sse", "text/event-stream", 200, "id: 1\nevent: status\ndata: {\"type\":\"started\",\"execution_id\":\"x\",\"seq\":1,\"timestamp\":\"2026-01-01T00:00:00Z\",\"attempt\":1,\"status\":\"running\"}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routes := v.routes
			if tc.path == "/undocumented" {
				routes = http.NewServeMux()
				routes.HandleFunc("GET /undocumented", func(http.ResponseWriter, *http.Request) {})
			}
			v := &contractChecker{c: c, routes: routes, next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})}
			v.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(t.Context(), http.MethodGet, tc.path, nil))
			if len(v.errs) == 0 {
				t.Errorf("the check let %s through", tc.name)
			} else {
				t.Logf("caught: %v", v.errs[0])
			}
		})
	}
}

// TestOpenAPIDocumentNeedsNoKey: client generators fetch it without one.
func TestOpenAPIDocumentNeedsNoKey(t *testing.T) {
	t.Parallel()
	h := setupWithKey(t, "secret", 1)
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	h.getJSON("/openapi.json", http.StatusOK, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("GET /openapi.json without the key: openapi %q", doc.OpenAPI)
	}
	var body struct {
		Error conveyor.Error `json:"error"`
	}
	h.getJSON("/pipelines", http.StatusUnauthorized, &body)
}

// TestOpenAPIJSONIsTheYAML: the served JSON says what openapi.yaml says,
// as another YAML parser (kin-openapi's) reads it.
func TestOpenAPIJSONIsTheYAML(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	y, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := openapi3.NewLoader().LoadFromData(y)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(c.doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("GET /openapi.json differs from openapi.yaml:\n%s\n%s", got, want)
	}
}
