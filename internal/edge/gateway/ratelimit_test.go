package gateway_test

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/internal/edge/gateway"
)

const login = "/api/auth/login"

// TestRateLimitAnswers429: within the limit each answer says what is left;
// beyond it the answer is a 429 problem with Retry-After, and the handler
// is not called. The auth limit is per minute, so nothing here depends on
// how fast the test runs.
func TestRateLimitAnswers429(t *testing.T) {
	f := newFixture(t, gateway.Config{AuthPerMinute: 3})
	for i := 1; i <= 3; i++ {
		w := send(f.h, http.MethodPost, login, "192.0.2.1:4000")
		if w.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s, want 200", i, w.Code, w.Body)
		}
		if got := intHeader(t, w, "RateLimit-Limit"); got != 3 {
			t.Errorf("request %d: RateLimit-Limit %d, want 3", i, got)
		}
		if got := intHeader(t, w, "RateLimit-Remaining"); got != 3-i {
			t.Errorf("request %d: RateLimit-Remaining %d, want %d", i, got, 3-i)
		}
		// Each request takes one 20 s emission interval of the bucket.
		inRange(t, "RateLimit-Reset", intHeader(t, w, "RateLimit-Reset"), 20*i-10, 20*i)
		if w.Header().Get("Retry-After") != "" {
			t.Errorf("request %d: Retry-After on an admitted request", i)
		}
	}
	w := send(f.h, http.MethodPost, login, "192.0.2.1:4001")
	wantProblem(t, w, http.StatusTooManyRequests)
	inRange(t, "Retry-After", intHeader(t, w, "Retry-After"), 1, 20)
	inRange(t, "RateLimit-Reset", intHeader(t, w, "RateLimit-Reset"), 50, 60)
	if got := intHeader(t, w, "RateLimit-Remaining"); got != 0 {
		t.Errorf("429 with RateLimit-Remaining %d, want 0", got)
	}
	if got := intHeader(t, w, "RateLimit-Limit"); got != 3 {
		t.Errorf("429 with RateLimit-Limit %d, want 3", got)
	}
	if n := f.served(); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
}

// TestGeneralLimit: the per-second limit admits a burst, then refuses.
func TestGeneralLimit(t *testing.T) {
	f := newFixture(t, gateway.Config{PerSecond: 1, Burst: 5})
	for i := 1; i <= 50; i++ {
		w := send(f.h, http.MethodGet, "/api/products", "192.0.2.1:4000")
		if w.Code == http.StatusOK {
			continue
		}
		wantProblem(t, w, http.StatusTooManyRequests)
		if i <= 5 {
			t.Errorf("refused request %d within a burst of 5", i)
		}
		if got := intHeader(t, w, "Retry-After"); got != 1 {
			t.Errorf("Retry-After %d at 1 request/s, want 1", got)
		}
		if got := intHeader(t, w, "RateLimit-Limit"); got != 5 {
			t.Errorf("RateLimit-Limit %d, want the burst, 5", got)
		}
		inRange(t, "RateLimit-Reset", intHeader(t, w, "RateLimit-Reset"), 1, 5)
		return
	}
	t.Fatal("50 requests at once under a limit of 1/s, burst 5, were all admitted")
}

// TestRateLimitPerIP: every client IP has a bucket of its own; IPv6
// addresses share the bucket of their /64.
func TestRateLimitPerIP(t *testing.T) {
	f := newFixture(t, gateway.Config{AuthPerMinute: 2})
	for _, c := range []struct {
		remote string
		want   int
	}{
		{"192.0.2.1:1", 200}, {"192.0.2.1:2", 200}, {"192.0.2.1:3", 429},
		{"192.0.2.2:1", 200},
		{"[2001:db8::1]:1", 200}, {"[2001:db8::2]:1", 200}, {"[2001:db8::ffff]:1", 429},
		{"[2001:db8:0:1::1]:1", 200},
		{"[::ffff:192.0.2.2]:1", 200}, {"192.0.2.2:9", 429}, // IPv4-mapped is the IPv4 address
	} {
		if w := send(f.h, http.MethodPost, login, c.remote); w.Code != c.want {
			t.Errorf("from %s: %d, want %d", c.remote, w.Code, c.want)
		}
	}
}

// TestAuthRoutesStricter: sign-in, sign-up and refresh share one small
// budget per IP; other routes stay under the general limit.
func TestAuthRoutesStricter(t *testing.T) {
	f := newFixture(t, gateway.Config{PerSecond: 1000, Burst: 1000, AuthPerMinute: 2})
	const ip = "192.0.2.1:1"
	for _, c := range []struct {
		method, path string
		want, limit  int
	}{
		{"POST", login, 200, 2},
		{"POST", "/api/auth/register", 200, 2},
		{"POST", "/api/auth/refresh", 429, 2},
		{"POST", login, 429, 2},
		{"GET", "/api/products", 200, 1000},
		{"POST", "/api/auth/logout", 200, 1000},
		{"GET", login, 200, 1000}, // not a sign-in
	} {
		w := send(f.h, c.method, c.path, ip)
		if w.Code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.want)
		}
		if got := intHeader(t, w, "RateLimit-Limit"); got != c.limit {
			t.Errorf("%s %s: RateLimit-Limit %d, want %d", c.method, c.path, got, c.limit)
		}
	}

	// With the auth limit off, the auth routes fall under the general one.
	f = newFixture(t, gateway.Config{PerSecond: 1000, Burst: 1000})
	if got := intHeader(t, send(f.h, "POST", login, ip), "RateLimit-Limit"); got != 1000 {
		t.Errorf("auth limit off: RateLimit-Limit %d on sign-in, want the general 1000", got)
	}
}

// TestExemptPaths: probes and scrapes are never limited nor counted.
func TestExemptPaths(t *testing.T) {
	f := newFixture(t, gateway.Config{PerSecond: 1, Burst: 1})
	for range 5 {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			w := send(f.h, http.MethodGet, p, "192.0.2.1:1")
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d, want 200", p, w.Code)
			}
			if v := w.Header().Get("RateLimit-Limit"); v != "" {
				t.Errorf("GET %s: RateLimit-Limit %q on an exempt path", p, v)
			}
		}
	}
	if w := send(f.h, http.MethodGet, "/api/products", "192.0.2.1:1"); w.Code != http.StatusOK {
		t.Errorf("first counted request: %d, want 200 (exempt requests used the budget)", w.Code)
	}
}

// TestForwardedFor: X-Forwarded-For picks the bucket only with TrustProxy,
// and then only its last entry (the proxy's) counts.
func TestForwardedFor(t *testing.T) {
	const proxy = "10.0.0.1:5000"
	xff := func(v string) []string { return []string{"X-Forwarded-For", v} }

	untrusted := newFixture(t, gateway.Config{AuthPerMinute: 1})
	if w := send(untrusted.h, "POST", login, proxy, xff("203.0.113.1")...); w.Code != 200 {
		t.Fatalf("first: %d", w.Code)
	}
	if w := send(untrusted.h, "POST", login, proxy, xff("203.0.113.2")...); w.Code != 429 {
		t.Errorf("untrusted, another X-Forwarded-For, same connection address: %d, want 429", w.Code)
	}

	trusted := newFixture(t, gateway.Config{AuthPerMinute: 1, TrustProxy: true})
	for _, c := range []struct {
		xff  string
		want int
	}{
		{"203.0.113.1", 200},
		{"203.0.113.2", 200},                // another client behind the proxy
		{"203.0.113.1", 429},                // the first one again
		{"198.51.100.9, 203.0.113.2", 429},  // a forged first entry changes nothing
		{"203.0.113.2, 198.51.100.77", 200}, // the proxy's entry is the last
		{"198.51.100.77:4711", 429},         // a port is not a new client
	} {
		if w := send(trusted.h, "POST", login, proxy, xff(c.xff)...); w.Code != c.want {
			t.Errorf("trusted, X-Forwarded-For %q: %d, want %d", c.xff, w.Code, c.want)
		}
	}
}

// TestFailOpen: with Redis unreachable, requests are served without a
// limit, and a warning says so.
func TestFailOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	served := 0
	h := build(t, gateway.Config{PerSecond: 1, Burst: 1, AuthPerMinute: 1}, rdb, log,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))

	for i := range 3 {
		w := send(h, "POST", login, "192.0.2.1:1")
		if w.Code != http.StatusOK {
			t.Fatalf("request %d with Redis down: %d %s, want 200", i+1, w.Code, w.Body)
		}
		if v := w.Header().Get("RateLimit-Limit"); v != "" {
			t.Errorf("RateLimit-Limit %q without a limit", v)
		}
	}
	if served != 3 {
		t.Errorf("handler ran %d times, want 3", served)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "rate limit unavailable") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}

// TestKeysUnderPrefix: the limiter's keys live under the key prefix (not
// under redis_rate's own "rate:"), and expire.
func TestKeysUnderPrefix(t *testing.T) {
	f := newFixture(t, gateway.Config{PerSecond: 10, Burst: 10, AuthPerMinute: 5})
	send(f.h, "GET", "/api/products", "192.0.2.1:1")
	send(f.h, "POST", login, "192.0.2.1:1")
	ctx := t.Context()
	for _, pattern := range []string{f.prefix + "ratelimit:api:*", f.prefix + "ratelimit:auth:*"} {
		keys, err := f.rdb.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("keys %s: %v, want one", pattern, keys)
		}
		if strings.Contains(keys[0], "192.0.2.1") {
			t.Errorf("key %s holds the raw IP", keys[0])
		}
		if ttl := f.rdb.TTL(ctx, keys[0]).Val(); ttl <= 0 {
			t.Errorf("key %s has TTL %v, want one", keys[0], ttl)
		}
	}
	if keys := f.rdb.Keys(ctx, "rate:"+f.prefix+"*").Val(); len(keys) > 0 {
		t.Errorf("keys outside the prefix: %v", keys)
	}
}
