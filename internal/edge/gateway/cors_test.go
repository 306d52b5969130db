package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/internal/edge/gateway"
)

const shop = "https://shop.example"

// preflight asks whether origin may POST /api/orders with the headers the
// API takes.
func preflight(h http.Handler, origin string, headers string) *httptest.ResponseRecorder {
	return send(h, http.MethodOptions, "/api/orders", "192.0.2.1:1",
		"Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", headers)
}

// noCORS fails the test if w has any Access-Control-* header.
func noCORS(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	for k := range w.Header() {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("%s: %s: %q, want no CORS headers", what, k, w.Header().Get(k))
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	f := newFixture(t, gateway.Config{AllowedOrigins: []string{shop, "http://localhost:5173"}, PerSecond: 100, Burst: 100})

	w := preflight(f.h, shop, "authorization, content-type, idempotency-key, if-match, x-correlation-id, x-min-position")
	if w.Code != http.StatusOK {
		t.Fatalf("preflight: %d, want 200", w.Code)
	}
	h := w.Header()
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":  shop,
		"Access-Control-Allow-Methods": "POST",
		"Access-Control-Max-Age":       "600",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("preflight %s %q, want %q", name, got, want)
		}
	}
	if got := strings.ToLower(h.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "idempotency-key") || !strings.Contains(got, "authorization") {
		t.Errorf("Access-Control-Allow-Headers %q, want the requested ones", got)
	}
	if v := h.Get("Access-Control-Allow-Credentials"); v != "" {
		t.Errorf("Access-Control-Allow-Credentials %q, want none (bearer tokens only)", v)
	}
	if f.served() != 0 {
		t.Error("the preflight reached the handler")
	}
	if h.Get("RateLimit-Limit") != "" {
		t.Error("the preflight was rate limited")
	}

	noCORS(t, "preflight from another origin", preflight(f.h, "https://evil.example", "content-type"))
	noCORS(t, "preflight with a header the API does not take", preflight(f.h, shop, "x-custom"))
	noCORS(t, "preflight from a look-alike origin", preflight(f.h, shop+".evil.example", "content-type"))
	if w := preflight(f.h, "http://localhost:5173", "content-type"); w.Header().Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Errorf("second allowed origin refused: %v", w.Header())
	}
}

func TestCORSActualRequest(t *testing.T) {
	f := newFixture(t, gateway.Config{AllowedOrigins: []string{shop}, AuthPerMinute: 1})

	w := send(f.h, http.MethodGet, "/api/products", "192.0.2.1:1", "Origin", shop)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != shop {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, shop)
	}
	exposed := w.Header().Get("Access-Control-Expose-Headers")
	for _, name := range []string{"Etag", "X-Event-Position", "X-Correlation-Id", "X-Stale", "Retry-After",
		"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset"} {
		if !strings.Contains(exposed, name) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", exposed, name)
		}
	}
	if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
		t.Errorf("Vary %v, want Origin", w.Header().Values("Vary"))
	}
	noCORS(t, "request from another origin", send(f.h, http.MethodGet, "/api/products", "192.0.2.1:1", "Origin", "https://evil.example"))

	// A browser can read the 429 too.
	send(f.h, http.MethodPost, login, "192.0.2.1:1", "Origin", shop)
	w = send(f.h, http.MethodPost, login, "192.0.2.1:1", "Origin", shop)
	wantProblem(t, w, http.StatusTooManyRequests)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != shop {
		t.Errorf("429: Access-Control-Allow-Origin %q, want %q", got, shop)
	}
}

// TestNoCORSUnconfigured: without allowed origins there is no CORS at all:
// a preflight is an ordinary OPTIONS request for the router.
func TestNoCORSUnconfigured(t *testing.T) {
	f := newFixture(t, gateway.Config{})
	noCORS(t, "preflight", preflight(f.h, shop, "content-type"))
	noCORS(t, "request", send(f.h, http.MethodGet, "/api/products", "192.0.2.1:1", "Origin", shop))
	if f.served() != 2 {
		t.Errorf("handler ran %d times, want 2 (the preflight is passed on)", f.served())
	}
}

func TestCheckOrigin(t *testing.T) {
	for _, ok := range []string{"*", "https://shop.example", "http://localhost:5173", "https://*.example.com", "HTTPS://Shop.Example"} {
		if err := gateway.CheckOrigin(ok); err != nil {
			t.Errorf("CheckOrigin(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "shop.example", "https://shop.example/", "https://shop.example/app",
		"ftp://shop.example", "https://", "https://u:p@shop.example", "https://*.*.example", "https://shop.example?x=1", "null"} {
		if err := gateway.CheckOrigin(bad); err == nil {
			t.Errorf("CheckOrigin(%q) accepted", bad)
		}
	}
}
