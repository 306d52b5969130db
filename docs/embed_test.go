package docs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	vconfig "github.com/pb33f/libopenapi-validator/config"

	"github.com/eventshop/eventshop/docs"
	"github.com/eventshop/eventshop/internal/edge"
)

// docsServer serves docs.Routes as cmd/eventshop/serve.go mounts them:
// behind the API's middleware (correlation ids).
func docsServer(t *testing.T) *httptest.Server {
	t.Helper()
	r := chi.NewRouter()
	r.Use(edge.Middleware(nil))
	docs.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// fetch GETs path with header name/value pairs and checks the exchange
// against the document, as the end-to-end tests do for the API's routes
// (strict: every header and member documented).
func fetch(t *testing.T, srv *httptest.Server, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	v := docsValidator(t)
	check := *resp
	check.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := v.ValidateHttpResponse(req, &check); !ok {
		for _, e := range errs {
			t.Errorf("GET %s → %d does not match openapi.yaml: %s: %s", path, resp.StatusCode, e.Message, e.Reason)
		}
	}
	if ok, errs := v.ValidateHttpRequestSync(req); !ok && resp.StatusCode < 400 {
		for _, e := range errs {
			t.Errorf("GET %s → %d: the request does not match openapi.yaml: %s: %s", path, resp.StatusCode, e.Message, e.Reason)
		}
	}
	return resp, body
}

// strictValidator is the document's validator for these tests, built once.
var strictValidator = sync.OnceValues(func() (validator.Validator, error) {
	doc, err := libopenapi.NewDocument(docs.OpenAPIYAML())
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(doc, vconfig.WithStrictMode(), vconfig.WithFormatAssertions(),
		// /openapi.json: the document's own parts are not described again.
		vconfig.WithStrictIgnorePaths("$.body.info.**", "$.body.servers.**", "$.body.security.**",
			"$.body.tags.**", "$.body.paths.**", "$.body.components.**",
			// A path with a dot in its name is written in brackets.
			"$.body.paths['/openapi.json']", "$.body.paths['/openapi.json'].**"))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return v, nil
})

func docsValidator(t *testing.T) validator.Validator {
	t.Helper()
	v, err := strictValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestServeOpenAPIJSON(t *testing.T) {
	srv := docsServer(t)
	resp, body := fetch(t, srv, "/openapi.json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want, err := docs.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) {
		t.Error("GET /openapi.json is not docs.OpenAPIJSON()")
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Errorf("GET /openapi.json: openapi %q, %v", doc.OpenAPI, err)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "public, no-cache" {
		t.Errorf("ETag %q, Cache-Control %q: want a validator and revalidation", etag, resp.Header.Get("Cache-Control"))
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		nm, nmBody := fetch(t, srv, "/openapi.json", "If-None-Match", inm)
		if nm.StatusCode != http.StatusNotModified || len(nmBody) != 0 || nm.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d with %d bytes, ETag %q; want 304, no body, the same ETag", inm, nm.StatusCode, len(nmBody), nm.Header.Get("ETag"))
		}
	}
	if again, _ := fetch(t, srv, "/openapi.json", "If-None-Match", `"0123"`); again.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match of other content: %d, want 200", again.StatusCode)
	}
}

var (
	scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	srcAttr   = regexp.MustCompile(`(?i)\b(?:src|href)="([^"]*)"`)
)

// TestServeDocsPage: the page loads only what the server itself serves,
// has no inline script (a Content-Security-Policy of 'self' forbids it),
// and every file it names is served with its content type.
func TestServeDocsPage(t *testing.T) {
	srv := docsServer(t)
	resp, page := fetch(t, srv, "/docs")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /docs: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, m := range scriptTag.FindAllStringSubmatch(string(page), -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script in /docs: %s", m[0])
		}
	}
	if strings.Contains(string(page), " style=") || strings.Contains(string(page), "<style") {
		t.Error("inline style in /docs")
	}
	if !strings.Contains(string(page), `data-spec-url="/openapi.json"`) {
		t.Error("/docs does not point the reference at /openapi.json")
	}
	var named []string
	for _, m := range srcAttr.FindAllStringSubmatch(string(page), -1) {
		ref := m[1]
		if ref == "/openapi.json" {
			continue
		}
		file, ok := strings.CutPrefix(ref, "/docs/")
		if !ok {
			t.Errorf("/docs loads %s, not from /docs/", ref)
			continue
		}
		named = append(named, file)
	}
	for _, want := range []string{"swagger-ui-bundle.js", "docs.js", "swagger-ui.css", "docs.css", "favicon-32x32.png"} {
		if !slices.Contains(named, want) {
			t.Errorf("/docs does not load %s", want)
		}
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
	for _, name := range docs.AssetNames() {
		resp, body := fetch(t, srv, "/docs/"+name)
		ext := name[strings.LastIndex(name, "."):]
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != types[ext] || len(body) == 0 {
			t.Errorf("GET /docs/%s: %d %q, %d bytes", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("ETag") == "" {
			t.Errorf("GET /docs/%s: no nosniff or no ETag", name)
		}
		if nm, _ := fetch(t, srv, "/docs/"+name, "If-None-Match", resp.Header.Get("ETag")); nm.StatusCode != http.StatusNotModified {
			t.Errorf("GET /docs/%s with its ETag: %d, want 304", name, nm.StatusCode)
		}
	}
	for _, name := range named {
		if !slices.Contains(docs.AssetNames(), name) {
			t.Errorf("/docs loads /docs/%s, which is not served", name)
		}
	}
	// The page's own script names no other origin.
	_, js := fetch(t, srv, "/docs/docs.js")
	if regexp.MustCompile(`https?://`).Match(js) {
		t.Error("docs.js names another origin")
	}
}

func TestServeDocsUnknownFile(t *testing.T) {
	srv := docsServer(t)
	for _, name := range []string{"index.html", "LICENSE", "swagger-ui-bundle.js.map", "..%2fopenapi.yaml", "nope.js"} {
		resp, body := fetch(t, srv, "/docs/"+name)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET /docs/%s: %d %q %s, want a 404 problem", name, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}

// TestDocsAssetsDocumented: the files the document says /docs/{file}
// serves are the ones served.
func TestDocsAssetsDocumented(t *testing.T) {
	op := openAPI(t).Paths.PathItems.GetOrZero("/docs/{file}").Get
	var enum []string
	for _, p := range op.Parameters {
		if p.Name == "file" {
			for _, v := range p.Schema.Schema().Enum {
				enum = append(enum, v.Value)
			}
		}
	}
	slices.Sort(enum)
	if !slices.Equal(enum, docs.AssetNames()) {
		t.Errorf("openapi.yaml names %v under /docs/{file}, the server serves %v", enum, docs.AssetNames())
	}
}
