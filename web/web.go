// Package web is the dashboard: a page that lists executions with live
// progress bars, their tags and batches, counts them by status, filters
// them by status, pipeline, id, tag and batch and pages through them,
// charts the last hour's throughput, starts, re-runs and cancels them and
// shows one in detail (its progress over time, its logs by attempt);
// lists batches with their rollups, each batch's page following its
// members; and lists webhook subscriptions, adds (showing the secret once)
// and deletes them, with a subscription's recent deliveries, their
// attempts and a button to redeliver one.
// It is plain HTML, CSS and JavaScript embedded in the binary, so a fresh
// clone builds with go build alone and the page works offline.
//
// The page talks to the API on the same origin. It keeps an optional API
// key in the browser's localStorage and sends it as "Authorization:
// Bearer". A browser holds at most six connections to a server, so the
// page follows what it shows over one Server-Sent Events stream of many
// executions (GET /executions/progress/sse), not one per row. An
// EventSource cannot send the key: with one, the page opens only the
// streams a token from POST /batches/{id}/token or
// POST /executions/{id}/token opens (a batch, one execution), and reads
// the rest of the list again every second. app.js says more.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static/*
var static embed.FS

// file is one embedded asset, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes pins the types of the assets; mime.TypeByExtension reads
// the system's tables, which differ between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
}

// contentSecurityPolicy lets the page load only its own files and talk
// only to its own origin: data from the API can never run as code.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var files = load()

func load() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			if ct = mime.TypeByExtension(path.Ext(p)); ct == "" {
				ct = "application/octet-stream"
			}
		}
		sum := sha256.Sum256(body)
		out[strings.TrimPrefix(p, "static/")] = file{
			body:        body,
			contentType: ct,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		panic("web: read embedded assets: " + err.Error())
	}
	return out
}

// Handler serves the dashboard's files from the root of its URL space:
// "/" is the page, "/app.js" and "/style.css" its assets. Mount it under
// a prefix with http.StripPrefix. Files are revalidated on every load
// (ETag), so a new binary's page is never mixed with an old script.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	f, ok := files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(f.contentType, "text/html") {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
