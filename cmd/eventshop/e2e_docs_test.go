package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestE2EDocs: the program serves its OpenAPI document and the
// interactive reference, from the binary, under a CSP that lets the page
// load its own scripts and nothing from elsewhere. (Read without do: the
// document does not describe its own members in strict mode.)
func TestE2EDocs(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := s.http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return resp, body
	}
	resp, body := get("/openapi.json")
	var spec struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &spec); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		!strings.HasPrefix(spec.OpenAPI, "3.1") || spec.Paths["/api/orders/{id}/pay"]["post"] == nil {
		t.Errorf("/openapi.json: %s, openapi %q, %d paths, %v", resp.Header.Get("Content-Type"), spec.OpenAPI, len(spec.Paths), err)
	}
	resp, body = get("/docs")
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "http") {
		t.Errorf("/docs CSP %q: want scripts from 'self' only", csp)
	}
	if !strings.Contains(string(body), "/openapi.json") {
		t.Errorf("/docs does not point the reference at /openapi.json:\n%s", body)
	}
	get("/docs/swagger-ui-bundle.js")
}
