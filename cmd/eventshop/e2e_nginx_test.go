package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/deploy/nginxtest"
)

// The gateway of deploy/nginx in front of the real program: nginx, on the
// machine's binary (nginxtest), sends to `eventshop serve`, which serves
// reads and writes in one process, through two recording proxies
// (nginxtest.Upstream) that stand in for the read and the write API, so a
// test sees which one nginx chose. The tests skip when nginx is not
// installed (scripts/services.sh installs it).

// nginxVars are the GATEWAY_* settings of a test's nginx: the upstreams,
// an allowed browser origin, and limits no test reaches but the one that
// sets its own.
func nginxVars(write, read *nginxtest.Upstream, kv ...string) map[string]string {
	env := map[string]string{
		"GATEWAY_WRITEAPI": write.Addr, "GATEWAY_READAPI": read.Addr,
		"GATEWAY_CORS_ORIGINS": `https://shop\.example\.test`,
		"GATEWAY_RATE_API":     "200r/s", "GATEWAY_BURST_API": "400",
		"GATEWAY_RATE_AUTH": "120r/m", "GATEWAY_BURST_AUTH": "60",
		// The test's own address plays the balancer in front.
		"GATEWAY_REAL_IP_FROM": "127.0.0.1/32",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

// viaNginx sends a request to nginx, without the contract checks of
// server.do (nginx's own answers are not the API's); body is sent as is,
// hdr is name/value pairs.
func viaNginx(t *testing.T, gw *nginxtest.Gateway, method, path string, body []byte, hdr ...string) *response {
	t.Helper()
	req, err := http.NewRequest(method, gw.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s via nginx: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{method: method, path: path, status: resp.StatusCode, header: resp.Header, raw: raw}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&r.body); err != nil {
			t.Fatalf("%s: not JSON: %v", r, err)
		}
	}
	return r
}

func nginxJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantNginxHeaders checks r carries each security header once, with
// csp as its Content-Security-Policy.
func wantNginxHeaders(t *testing.T, r *response, csp string) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer", "Content-Security-Policy": csp,
	} {
		if got := r.header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s %s → %d: %s %q, want %q once", r.method, r.path, r.status, name, got, want)
		}
	}
	if got := r.header.Get("Server"); got != "nginx" {
		t.Errorf("%s %s: Server %q, want nginx without its version", r.method, r.path, got)
	}
}

const nginxAPICSP = "default-src 'none'; frame-ancestors 'none'"

// TestNginxGateway: reads and writes pass through nginx to the API that
// serves them, with nginx's headers, log, body limit and CORS.
func TestNginxGateway(t *testing.T) {
	t.Parallel()
	if _, err := nginxtest.Binary(); err != nil {
		t.Skip(err)
	}
	s := newE2E(t, "TRUST_PROXY_HEADERS", "true")
	write, read := nginxtest.NewUpstream(t, s.base), nginxtest.NewUpstream(t, s.base)
	gw := nginxtest.Start(t, nginxVars(write, read))
	get := func(path string, hdr ...string) *response { return viaNginx(t, gw, http.MethodGet, path, nil, hdr...) }

	t.Run("reads and writes pass through", func(t *testing.T) {
		// Once the catalogue has the demo products, the page is the same
		// through nginx as straight from the program.
		deadline := time.Now().Add(20 * time.Second)
		direct := want(t, s.do(http.MethodGet, "/api/products?limit=5", "", nil), http.StatusOK)
		for num(t, direct.body["total"]) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
			direct = want(t, s.do(http.MethodGet, "/api/products?limit=5", "", nil), http.StatusOK)
		}
		via := want(t, get("/api/products?limit=5"), http.StatusOK)
		if num(t, direct.body["total"]) == 0 || !bytes.Equal(via.raw, direct.raw) {
			t.Errorf("GET /api/products via nginx:\n%s\ndirect:\n%s", via.raw, direct.raw)
		}
		wantNginxHeaders(t, via, nginxAPICSP)

		email, corr := uniqueEmail("nginx"), "nginx-e2e-"+uuid.NewString()
		reg := viaNginx(t, gw, http.MethodPost, "/api/auth/register",
			nginxJSON(t, map[string]any{"email": email, "password": testPassword, "full_name": "Via Nginx"}), "X-Correlation-ID", corr)
		want(t, reg, http.StatusCreated)
		wantPosition(t, reg)
		if str(reg.body, "email") != email || reg.header.Get("X-Correlation-ID") != corr {
			t.Errorf("register via nginx: %s (X-Correlation-ID %q)", reg, reg.header.Get("X-Correlation-ID"))
		}
		tok := want(t, viaNginx(t, gw, http.MethodPost, "/api/auth/login", nginxJSON(t, map[string]any{"email": email, "password": testPassword})), http.StatusOK)
		me := want(t, get("/api/auth/me", "Authorization", "Bearer "+str(tok.body, "access_token")), http.StatusOK)
		if id := str(me.body, "id"); id != str(reg.body, "id") {
			t.Errorf("/api/auth/me via nginx: %s, want user %s", me, str(reg.body, "id"))
		}
		// The client's correlation id went through nginx into the event.
		evs := s.streamEvents("user-" + str(reg.body, "id"))
		if len(evs) == 0 || evs[0].Correlation != corr {
			t.Errorf("user.registered: %+v, want correlation id %s", evs, corr)
		}
	})

	t.Run("routes by method", func(t *testing.T) {
		for _, rt := range []struct {
			method, path string
			to           *nginxtest.Upstream
		}{
			{"GET", "/api/products", read}, {"GET", "/api/products/categories", read},
			{"GET", "/api/orders", read}, {"GET", "/api/orders/" + uuid.NewString() + "/history", read},
			{"GET", "/api/users", read}, {"GET", "/api/notifications", read},
			{"GET", "/api/admin/projections", read}, {"POST", "/api/admin/projections/users.v1/rebuild", read},
			{"POST", "/api/admin/projections/users.v1/parked/" + uuid.NewString() + "/skip", read},
			{"GET", "/openapi.json", read}, {"GET", "/docs", read},
			{"GET", "/api/auth/me", write}, {"GET", "/api/auth/health", write}, {"GET", "/api/orders/health", write},
			{"POST", "/api/orders", write}, {"POST", "/api/orders/" + uuid.NewString() + "/pay", write},
			{"PATCH", "/api/products/" + uuid.NewString(), write}, {"DELETE", "/api/users/" + uuid.NewString() + "/roles/vendor", write},
			{"POST", "/api/users/" + uuid.NewString() + "/roles", write},
		} {
			other := map[*nginxtest.Upstream]*nginxtest.Upstream{read: write, write: read}[rt.to]
			req := rt.method + " " + rt.path
			before, otherBefore := rt.to.Count(req), other.Total()
			corr := "route-" + uuid.NewString()
			r := viaNginx(t, gw, rt.method, rt.path, nil, "X-Correlation-ID", corr)
			if rt.to.Count(req) != before+1 || other.Total() != otherBefore {
				t.Errorf("%s → %d went to the wrong API", req, r.status)
			}
			line := gw.WaitLog(5*time.Second, func(l map[string]any) bool { return l["request_correlation_id"] == corr })
			if line["upstream"] != rt.to.Addr {
				t.Errorf("%s: access log upstream %v, want %s", req, line["upstream"], rt.to.Addr)
			}
		}
	})

	t.Run("nginx's own answers", func(t *testing.T) {
		before := write.Total() + read.Total()
		if r := want(t, get("/healthz"), http.StatusOK); str(r.body, "status") != "ok" {
			t.Errorf("nginx /healthz: %s", r)
		}
		for _, path := range []string{"/metrics", "/readyz", "/dev/mail", "/"} {
			wantNginxHeaders(t, wantProblem(t, get(path), http.StatusNotFound), nginxAPICSP)
		}
		if after := write.Total() + read.Total(); after != before {
			t.Errorf("nginx's own routes reached the APIs (%d requests)", after-before)
		}
		docs := get("/docs")
		if csp := docs.header.Values("Content-Security-Policy"); len(csp) != 1 || !strings.Contains(csp[0], "script-src 'self'") {
			t.Errorf("/docs: Content-Security-Policy %q, want the docs page's policy once", csp)
		}
	})

	t.Run("forwarded proto and HSTS", func(t *testing.T) {
		if h := get("/api/products").header.Get("Strict-Transport-Security"); h != "" {
			t.Errorf("plain HTTP got Strict-Transport-Security %q", h)
		}
		// From the trusted balancer (GATEWAY_REAL_IP_FROM), https.
		r := get("/api/products", "X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.7")
		if h := r.header.Values("Strict-Transport-Security"); len(h) != 1 || !strings.HasPrefix(h[0], "max-age=") {
			t.Errorf("https via the balancer: Strict-Transport-Security %q, want it once", h)
		}
		gw.WaitLog(5*time.Second, func(l map[string]any) bool { return l["remote_addr"] == "203.0.113.7" })
	})

	t.Run("access log", func(t *testing.T) {
		corr := "nginx-log-" + uuid.NewString()
		r := want(t, get("/api/products/categories", "X-Correlation-ID", corr), http.StatusOK)
		if r.header.Get("X-Correlation-ID") != corr {
			t.Errorf("X-Correlation-ID %q, want %q echoed", r.header.Get("X-Correlation-ID"), corr)
		}
		l := gw.WaitLog(5*time.Second, func(l map[string]any) bool { return l["request_correlation_id"] == corr })
		if l["correlation_id"] != corr || l["status"] != float64(200) || l["upstream"] != read.Addr || l["method"] != "GET" {
			t.Errorf("access log line %v", l)
		}
		if _, ok := l["request_time"].(float64); !ok {
			t.Errorf("access log request_time %v is not a number", l["request_time"])
		}
		// Without one, nginx makes the id (its request id), the API
		// echoes it, and the log has it.
		made := want(t, get("/api/products/categories"), http.StatusOK).header.Get("X-Correlation-ID")
		l = gw.WaitLog(5*time.Second, func(l map[string]any) bool { return l["correlation_id"] == made })
		if made == "" || l["request_id"] != made || l["request_correlation_id"] != "" {
			t.Errorf("made correlation id %q, log line %v", made, l)
		}
	})

	t.Run("body limit", func(t *testing.T) {
		before := write.Total()
		wantNginxHeaders(t, wantProblem(t, viaNginx(t, gw, http.MethodPost, "/api/orders", bytes.Repeat([]byte("x"), 1<<20+1)), http.StatusRequestEntityTooLarge), nginxAPICSP)
		if write.Total() != before {
			t.Error("a body over 1 MiB reached the write API")
		}
		// Exactly 1 MiB passes nginx: the API answers (not signed in).
		if r := viaNginx(t, gw, http.MethodPost, "/api/orders", bytes.Repeat([]byte("x"), 1<<20)); r.status == http.StatusRequestEntityTooLarge || write.Total() != before+1 {
			t.Errorf("a 1 MiB body: %d, reached the write API %d times", r.status, write.Total()-before)
		}
	})

	t.Run("CORS", func(t *testing.T) {
		before := write.Total() + read.Total()
		pre := viaNginx(t, gw, http.MethodOptions, "/api/orders", nil, "Origin", "https://shop.example.test",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
		want(t, pre, http.StatusNoContent)
		h := pre.header
		if h.Get("Access-Control-Allow-Origin") != "https://shop.example.test" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Idempotency-Key") || h.Get("Access-Control-Max-Age") == "" ||
			!slices.Contains(h.Values("Vary"), "Origin") {
			t.Errorf("preflight from an allowed origin: %v", h)
		}
		for _, origin := range []string{"https://evil.example.test", "https://shopXexample.test"} {
			r := viaNginx(t, gw, http.MethodOptions, "/api/orders", nil, "Origin", origin, "Access-Control-Request-Method", "POST")
			if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("preflight from %s: %d, Access-Control-Allow-Origin %q", origin, r.status, r.header.Get("Access-Control-Allow-Origin"))
			}
		}
		if after := write.Total() + read.Total(); after != before {
			t.Error("a preflight reached the APIs")
		}
		r := want(t, get("/api/products", "Origin", "https://shop.example.test"), http.StatusOK)
		if got := r.header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://shop.example.test" ||
			!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Event-Position") {
			t.Errorf("GET from an allowed origin: Access-Control-Allow-Origin %q, Expose-Headers %q", got, r.header.Get("Access-Control-Expose-Headers"))
		}
	})
}

// TestNginxLoginRateLimit: after a burst, nginx refuses sign-ins from an
// address with 429 before they reach the write API, however the client
// dresses up X-Forwarded-For; other routes stay open.
func TestNginxLoginRateLimit(t *testing.T) {
	t.Parallel()
	if _, err := nginxtest.Binary(); err != nil {
		t.Skip(err)
	}
	s := newE2E(t, "TRUST_PROXY_HEADERS", "true")
	write, read := nginxtest.NewUpstream(t, s.base), nginxtest.NewUpstream(t, s.base)
	// One sign-in a minute after a burst of 3, and nobody in front of
	// nginx is trusted to name the client (TEST-NET-1).
	gw := nginxtest.Start(t, nginxVars(write, read, "GATEWAY_RATE_AUTH", "1r/m", "GATEWAY_BURST_AUTH", "3", "GATEWAY_REAL_IP_FROM", "192.0.2.1/32"))
	var statuses []int
	for i := range 8 {
		r := viaNginx(t, gw, http.MethodPost, "/api/auth/login",
			nginxJSON(t, map[string]any{"email": uniqueEmail("burst"), "password": "wrong password"}),
			"X-Forwarded-For", "198.51.100."+string(rune('1'+i)))
		statuses = append(statuses, r.status)
		if r.status == http.StatusTooManyRequests {
			wantProblem(t, r, http.StatusTooManyRequests)
			wantNginxHeaders(t, r, nginxAPICSP)
			if !strings.Contains(str(r.body, "detail"), "gateway") {
				t.Errorf("429 not from nginx: %s", r)
			}
		}
	}
	if want := []int{401, 401, 401, 401, 429, 429, 429, 429}; !slices.Equal(statuses, want) {
		t.Errorf("sign-in burst: %v, want %v", statuses, want)
	}
	if n := write.Count("POST /api/auth/login"); n != 4 {
		t.Errorf("the write API saw %d sign-ins, want 4", n)
	}
	want(t, viaNginx(t, gw, http.MethodGet, "/api/products", nil), http.StatusOK)
}
