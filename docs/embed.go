package docs

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/internal/edge/problem"
)

//go:embed openapi.yaml
var openAPIYAML []byte

// reference is the interactive reference page and what it loads: ours, and
// the vendored Swagger UI's (see reference/README.md).
//
//go:embed reference/index.html reference/docs.js reference/docs.css
//go:embed reference/swagger-ui/swagger-ui-bundle.js reference/swagger-ui/swagger-ui.css reference/swagger-ui/favicon-32x32.png
var reference embed.FS

// assets names the files served under /docs/{file}, each with the embedded
// file it is. Nothing else is served there.
var assets = map[string]string{
	"docs.js":              "reference/docs.js",
	"docs.css":             "reference/docs.css",
	"swagger-ui-bundle.js": "reference/swagger-ui/swagger-ui-bundle.js",
	"swagger-ui.css":       "reference/swagger-ui/swagger-ui.css",
	"favicon-32x32.png":    "reference/swagger-ui/favicon-32x32.png",
}

// contentTypes are the media types of the served files, by extension.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
	".json": "application/json",
}

// AssetNames lists the files served under /docs/{file}, sorted.
func AssetNames() []string { return slices.Sorted(maps.Keys(assets)) }

// OpenAPIYAML returns the OpenAPI 3.1 document as written (openapi.yaml).
func OpenAPIYAML() []byte { return bytes.Clone(openAPIYAML) }

// OpenAPIJSON returns the OpenAPI 3.1 document as JSON, as GET
// /openapi.json serves it. Errors: the document is not YAML that JSON can
// hold (which the package's tests rule out).
func OpenAPIJSON() ([]byte, error) {
	s, err := loadSite()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(s.spec.body), nil
}

// Routes mounts GET /openapi.json (the document as JSON), GET /docs (the
// interactive reference page) and GET /docs/{file} (what the page loads) on
// r. Every file is embedded in the binary and served with a content hash as
// ETag (If-None-Match gets 304) and Cache-Control "public, no-cache". The
// document is converted to JSON once, on the first call; Routes panics if it
// cannot be, which the package's tests rule out, as regexp.MustCompile does
// for a pattern.
func Routes(r chi.Router) {
	s, err := loadSite()
	if err != nil {
		panic(err)
	}
	r.Get("/openapi.json", s.spec.ServeHTTP)
	r.Get("/docs", s.page.ServeHTTP)
	r.Get("/docs/{file}", func(w http.ResponseWriter, r *http.Request) {
		f, ok := s.assets[chi.URLParam(r, "file")]
		if !ok {
			problem.Write(w, problem.New(http.StatusNotFound, "no such file of the API reference"))
			return
		}
		f.ServeHTTP(w, r)
	})
}

// site is everything Routes serves, read and hashed once.
type site struct {
	spec   *file
	page   *file
	assets map[string]*file
}

var loadSite = sync.OnceValues(func() (*site, error) {
	spec, err := yamlToJSON(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("docs: openapi.yaml as JSON: %w", err)
	}
	s := &site{spec: newFile(spec, contentTypes[".json"]), assets: map[string]*file{}}
	page, err := reference.ReadFile("reference/index.html")
	if err != nil {
		return nil, fmt.Errorf("docs: %w", err)
	}
	s.page = newFile(page, contentTypes[".html"])
	for name, embedded := range assets {
		body, err := reference.ReadFile(embedded)
		if err != nil {
			return nil, fmt.Errorf("docs: %w", err)
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil, fmt.Errorf("docs: no content type for %s", name)
		}
		s.assets[name] = newFile(body, ct)
	}
	return s, nil
})

// file is one embedded file as served.
type file struct {
	body        []byte
	contentType string
	etag        string // strong, quoted: a hash of body
}

func newFile(body []byte, contentType string) *file {
	sum := sha256.Sum256(body)
	return &file{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// ServeHTTP answers with f, or 304 when If-None-Match names its ETag.
func (f *file) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("ETag", f.etag)
	// Cached, but revalidated: a new binary may serve a new document under
	// the same URL.
	h.Set("Cache-Control", "public, no-cache")
	if noneMatch(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", f.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", fmt.Sprint(len(f.body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(f.body) // a failed write means the client went away
}

// noneMatch reports whether an If-None-Match header names etag: "*", or a
// list holding it, weakly compared (RFC 9110 §13.1.2).
func noneMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
