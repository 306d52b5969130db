package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

// TestE2EGateway: the gateway in front of the local run: security headers
// on every answer, CORS for the configured origins, the 1 MiB body limit on
// every route, and the per-IP budget of sign-ins.
func TestE2EGateway(t *testing.T) {
	t.Parallel()
	const origin = "https://shop.example"
	s := newE2E(t, "AUTH_RATE_LIMIT_PER_MINUTE", "3", "CORS_ALLOWED_ORIGINS", origin+", http://localhost:5173")

	products := want(t, s.do(http.MethodGet, "/api/products", "", nil), http.StatusOK)
	wantSecurityHeaders(t, products)
	if v := products.header.Get("Strict-Transport-Security"); v != "" {
		t.Errorf("Strict-Transport-Security %q over plain HTTP", v)
	}
	if v := products.header.Get("RateLimit-Limit"); v == "" {
		t.Error("an API answer without RateLimit-Limit")
	}
	healthz := want(t, s.do(http.MethodGet, "/healthz", "", nil), http.StatusOK)
	wantSecurityHeaders(t, healthz)
	if v := healthz.header.Get("RateLimit-Limit"); v != "" {
		t.Errorf("/healthz is rate limited (RateLimit-Limit %q)", v)
	}

	t.Run("CORS", func(t *testing.T) {
		preflight := func(from string) *response {
			return s.do(http.MethodOptions, "/api/orders", "", nil, "Origin", from,
				"Access-Control-Request-Method", "POST",
				"Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
		}
		r := want(t, preflight(origin), http.StatusOK)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("preflight: Access-Control-Allow-Origin %q, want %q", got, origin)
		}
		if got := r.header.Get("Access-Control-Max-Age"); got != "600" {
			t.Errorf("preflight: Access-Control-Max-Age %q, want 600", got)
		}
		if got := strings.ToLower(r.header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "idempotency-key") {
			t.Errorf("preflight: Access-Control-Allow-Headers %q, want idempotency-key among them", got)
		}
		if got := r.header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("preflight: Access-Control-Allow-Credentials %q, want none", got)
		}
		wantSecurityHeaders(t, r)
		if got := preflight("https://evil.example").header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from another origin: Access-Control-Allow-Origin %q, want none", got)
		}
		r = want(t, s.do(http.MethodGet, "/api/products", "", nil, "Origin", origin), http.StatusOK)
		if got := r.header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "X-Event-Position") || !strings.Contains(got, "Ratelimit-Remaining") {
			t.Errorf("Access-Control-Expose-Headers %q", got)
		}
	})

	t.Run("body limit on every route", func(t *testing.T) {
		// A GET handler never reads a body: only the gateway can refuse it.
		big := rawBody(strings.Repeat("x", gateway.DefaultMaxBodyBytes+1))
		wantSecurityHeaders(t, wantProblem(t, s.do(http.MethodGet, "/api/products", "", big), http.StatusRequestEntityTooLarge))
	})

	t.Run("sign-in budget", func(t *testing.T) {
		// Right passwords: the failed sign-in throttling has nothing to count.
		for range 3 {
			s.login(adminEmail, adminPassword)
		}
		r := wantProblem(t, s.post("/api/auth/login", "", map[string]any{"email": adminEmail, "password": adminPassword}), http.StatusTooManyRequests)
		wantSecurityHeaders(t, r)
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || n > 20 {
			t.Errorf("Retry-After %q, want 1..20 s (one sign-in every 20 s)", r.header.Get("Retry-After"))
		}
		if r.header.Get("RateLimit-Limit") != "3" || r.header.Get("RateLimit-Remaining") != "0" {
			t.Errorf("RateLimit-Limit %q, RateLimit-Remaining %q; want 3 and 0",
				r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"))
		}
		// Sign-up and refresh share the budget; the rest of the API does not.
		wantProblem(t, s.post("/api/auth/register", "", map[string]any{"email": uniqueEmail("late"), "password": testPassword, "full_name": "Late"}), http.StatusTooManyRequests)
		wantProblem(t, s.post("/api/auth/refresh", "", map[string]any{"refresh_token": "x"}), http.StatusTooManyRequests)
		want(t, s.do(http.MethodGet, "/api/products", "", nil), http.StatusOK)
	})
}

// TestE2EGatewaySharedBudget: two write API processes on one Redis share
// each client's budget, as replicas behind a load balancer must.
func TestE2EGatewaySharedBudget(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t, "AUTH_RATE_LIMIT_PER_MINUTE", "3")
	a := startServer(t, env, "writeapi")
	b := startServer(t, env, "writeapi")
	email := uniqueEmail("replicas")
	a.register(email, testPassword, "Replicas") // 1
	b.login(email, testPassword)                // 2
	a.login(email, testPassword)                // 3
	wantProblem(t, b.post("/api/auth/login", "", map[string]any{"email": email, "password": testPassword}), http.StatusTooManyRequests)
	wantProblem(t, a.post("/api/auth/login", "", map[string]any{"email": email, "password": testPassword}), http.StatusTooManyRequests)
}

// TestE2EOverload: with MAX_IN_FLIGHT=1 and no queue, reads waiting for
// an X-Min-Position from the future fill their own budget (4 slots);
// one more is answered 503 at once, while plain reads, probes and
// commands, which have budgets of their own, are served; the waiting
// reads still answer as API.md says (stale after their 2 s wait, not cut
// by their deadline); and /metrics counted the refusal.
func TestE2EOverload(t *testing.T) {
	t.Parallel()
	s := newE2E(t, "MAX_IN_FLIGHT", "1", "MAX_QUEUE", "0")
	const waiting = 4

	fresh := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, s.base+"/api/products", nil)
		req.Header.Set("X-Min-Position", "999999999999.999999999999")
		return s.http.Do(req)
	}
	held := make(chan *http.Response, waiting)
	for range waiting {
		go func() {
			resp, err := fresh()
			if err != nil {
				t.Errorf("a waiting read: %v", err)
			}
			held <- resp
		}()
	}
	testwait.Until(t, 10*time.Second, func() string {
		if _, samples := s.scrape(); !hasSample(samples, "eventshop_http_in_flight", waiting, "class", "fresh") {
			return "the waiting reads are not all in flight"
		}
		return ""
	})

	r := wantProblem(t, s.get("/api/products", "", "X-Min-Position", "999999999999.999999999999"), http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", r.header.Get("Retry-After"))
	}
	wantSecurityHeaders(t, r)
	want(t, s.get("/api/products", ""), http.StatusOK)
	want(t, s.get("/healthz", ""), http.StatusOK)
	s.login(adminEmail, adminPassword)

	for range waiting {
		resp := <-held
		if resp == nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Stale") != "true" {
			t.Errorf("a waiting read: %d, X-Stale %q; want 200 and true", resp.StatusCode, resp.Header.Get("X-Stale"))
		}
	}
	if _, samples := s.scrape(); !hasSample(samples, "eventshop_http_overload_total", 1, "class", "fresh", "outcome", "queue_full") {
		t.Error("/metrics does not count the refused read")
	}
}

// hasSample reports whether samples hold name with labels at value.
func hasSample(samples []sample, name string, value float64, labels ...string) bool {
	v, ok := find(samples, name, labels...)
	return ok && v == value
}

// wantSecurityHeaders checks the headers the gateway puts on every answer.
func wantSecurityHeaders(t *testing.T, r *response) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": gateway.DefaultCSP,
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s %s → %d: %s %q, want %q", r.method, r.path, r.status, name, got, want)
		}
	}
}

// TestGatewayConfig: the gateway's variables, their defaults and what is
// refused.
func TestGatewayConfig(t *testing.T) {
	load := func(kv ...string) (config, error) {
		env := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return loadConfig(func(k string) string { return env[k] })
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.PerSecond != 50 || cfg.Gateway.Burst != 100 || cfg.Gateway.AuthPerMinute != 60 ||
		cfg.Gateway.MaxBodyBytes != 1<<20 || cfg.Gateway.AllowedOrigins != nil {
		t.Errorf("defaults: %d/s burst %d, auth %d/min, body %d, origins %v",
			cfg.Gateway.PerSecond, cfg.Gateway.Burst, cfg.Gateway.AuthPerMinute, cfg.Gateway.MaxBodyBytes, cfg.Gateway.AllowedOrigins)
	}
	cfg, err = load("RATE_LIMIT_PER_SECOND", "10", "AUTH_RATE_LIMIT_PER_MINUTE", "0", "MAX_BODY_BYTES", "4096",
		"CORS_ALLOWED_ORIGINS", " https://a.example , http://localhost:5173,")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.Burst != 20 || cfg.Gateway.AuthPerMinute != 0 || cfg.Gateway.MaxBodyBytes != 4096 ||
		strings.Join(cfg.Gateway.AllowedOrigins, " ") != "https://a.example http://localhost:5173" {
		t.Errorf("set: burst %d, auth %d/min, body %d, origins %q",
			cfg.Gateway.Burst, cfg.Gateway.AuthPerMinute, cfg.Gateway.MaxBodyBytes, cfg.Gateway.AllowedOrigins)
	}
	if g := cfg.Gateway; g.MaxInFlight != gateway.DefaultMaxInFlight() || g.MaxQueue != 4*g.MaxInFlight ||
		g.QueueWait != gateway.DefaultQueueWait || g.RequestTimeout != 5*time.Second {
		t.Errorf("admission defaults: %d in flight, queue %d, wait %v, timeout %v", g.MaxInFlight, g.MaxQueue, g.QueueWait, g.RequestTimeout)
	}
	if cfg, err = load("MAX_IN_FLIGHT", "0"); err != nil || cfg.Gateway.MaxInFlight != 0 {
		t.Errorf("MAX_IN_FLIGHT=0 (off): %v, %d", err, cfg.Gateway.MaxInFlight)
	}
	for _, kv := range [][2]string{
		{"MAX_IN_FLIGHT", "-1"}, {"MAX_QUEUE", "many"}, {"MAX_QUEUE_WAIT", "0"}, {"REQUEST_TIMEOUT", "1s"}, {"REQUEST_TIMEOUT", "soon"},
		{"RATE_LIMIT_PER_SECOND", "-1"}, {"RATE_LIMIT_PER_SECOND", "fast"}, {"RATE_LIMIT_BURST", "0"},
		{"AUTH_RATE_LIMIT_PER_MINUTE", "-5"}, {"MAX_BODY_BYTES", "0"}, {"MAX_BODY_BYTES", "2097152"},
		{"CORS_ALLOWED_ORIGINS", "https://a.example/"}, {"CORS_ALLOWED_ORIGINS", "a.example"},
	} {
		if _, err := load(kv[0], kv[1]); err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s=%s: %v, want an error naming %s", kv[0], kv[1], err, kv[0])
		}
	}
}
