package gateway_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/edge/problem"
)

const docsCSP = "default-src 'none'; script-src 'self'"

// wantSecurityHeaders checks the headers every response carries, with csp.
func wantSecurityHeaders(t *testing.T, what string, w *httptest.ResponseRecorder, csp string) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": csp,
	} {
		if got := w.Header().Get(name); got != want {
			t.Errorf("%s: %s %q, want %q", what, name, got, want)
		}
	}
}

// TestSecurityHeaders: every answer has them, the gateway's own refusals
// and the handler's errors included.
func TestSecurityHeaders(t *testing.T) {
	cfg := gateway.Config{AuthPerMinute: 1, MaxBodyBytes: 8, AllowedOrigins: []string{shop},
		PathCSP: map[string]string{"/docs": docsCSP}}
	f := newFixture(t, cfg)
	notFound := build(t, cfg, f.rdb, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusNotFound, "no such route"))
	}))

	wantSecurityHeaders(t, "200", send(f.h, "GET", "/api/products", "192.0.2.1:1"), gateway.DefaultCSP)
	wantSecurityHeaders(t, "handler's 404", send(notFound, "GET", "/nowhere", "192.0.2.1:1"), gateway.DefaultCSP)
	send(f.h, "POST", login, "192.0.2.1:1")
	w := send(f.h, "POST", login, "192.0.2.1:1")
	wantProblem(t, w, http.StatusTooManyRequests)
	wantSecurityHeaders(t, "429", w, gateway.DefaultCSP)
	r := httptest.NewRequest("POST", "/api/orders", strings.NewReader("0123456789"))
	w = httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	wantProblem(t, w, http.StatusRequestEntityTooLarge)
	wantSecurityHeaders(t, "413", w, gateway.DefaultCSP)
	wantSecurityHeaders(t, "preflight", preflight(f.h, shop, "content-type"), gateway.DefaultCSP)

	for path, csp := range map[string]string{
		"/docs": docsCSP, "/docs/": docsCSP, "/docs/assets/app.js": docsCSP,
		"/docsx": gateway.DefaultCSP, "/api/docs": gateway.DefaultCSP, "/openapi.json": gateway.DefaultCSP,
	} {
		wantSecurityHeaders(t, path, send(f.h, "GET", path, "192.0.2.1:1"), csp)
	}
}

// TestPathCSPLongestPrefix: a more specific prefix wins.
func TestPathCSPLongestPrefix(t *testing.T) {
	f := newFixture(t, gateway.Config{CSP: "default-src 'none'", PathCSP: map[string]string{
		"/docs/": "docs", "/docs/raw": "raw",
	}})
	for path, csp := range map[string]string{"/docs/x": "docs", "/docs/raw": "raw", "/docs/raw/y": "raw", "/x": "default-src 'none'"} {
		wantSecurityHeaders(t, path, send(f.h, "GET", path, "192.0.2.1:1"), csp)
	}
}

// TestHSTS: only for requests that came over TLS, to this process or, when
// trusted, to the proxy in front.
func TestHSTS(t *testing.T) {
	hsts := func(h http.Handler, viaTLS bool, hdr ...string) string {
		r := httptest.NewRequest("GET", "/api/products", nil)
		if viaTLS {
			r.TLS = &tls.ConnectionState{}
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Header().Get("Strict-Transport-Security")
	}
	plain := newFixture(t, gateway.Config{})
	trusted := newFixture(t, gateway.Config{TrustProxy: true})
	for _, c := range []struct {
		what string
		h    http.Handler
		tls  bool
		hdr  []string
		want bool
	}{
		{"plain HTTP", plain.h, false, nil, false},
		{"TLS", plain.h, true, nil, true},
		{"untrusted X-Forwarded-Proto", plain.h, false, []string{"X-Forwarded-Proto", "https"}, false},
		{"trusted X-Forwarded-Proto https", trusted.h, false, []string{"X-Forwarded-Proto", "https"}, true},
		{"trusted X-Forwarded-Proto http", trusted.h, false, []string{"X-Forwarded-Proto", "http"}, false},
		{"trusted, the proxy's entry is last", trusted.h, false, []string{"X-Forwarded-Proto", "https, http"}, false},
		{"trusted, no header", trusted.h, false, nil, false},
	} {
		got := hsts(c.h, c.tls, c.hdr...)
		if (got != "") != c.want {
			t.Errorf("%s: Strict-Transport-Security %q, want present: %v", c.what, got, c.want)
		}
		if got != "" && got != gateway.DefaultHSTS {
			t.Errorf("%s: Strict-Transport-Security %q, want %q", c.what, got, gateway.DefaultHSTS)
		}
	}
}
