package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

// fixture is a gateway in front of a handler that answers 200 "ok" and
// counts its calls.
type fixture struct {
	t      *testing.T
	h      http.Handler
	rdb    *redis.Client
	prefix string
	mu     sync.Mutex
	calls  int
}

// newFixture builds a gateway of cfg on a Redis key prefix of the test's
// own (cfg.KeyPrefix is set).
func newFixture(t *testing.T, cfg gateway.Config) *fixture {
	t.Helper()
	rdb, prefix := redistest.New(t)
	cfg.KeyPrefix = prefix
	f := &fixture{t: t, rdb: rdb, prefix: prefix}
	f.h = build(t, cfg, rdb, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls++
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	}))
	return f
}

func build(t *testing.T, cfg gateway.Config, rdb redis.UniversalClient, log *slog.Logger, next http.Handler) http.Handler {
	t.Helper()
	g, err := gateway.New(cfg, rdb, log)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	return g.Middleware(next)
}

func (f *fixture) served() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// send makes a request from remote ("ip:port") with header name/value
// pairs and returns the answer.
func send(h http.Handler, method, path, remote string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// wantProblem checks w is an RFC 9457 problem of status.
func wantProblem(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d (%s), want %d", w.Code, w.Body, status)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type, Title, Detail string
		Status              int
	}
	if err := json.NewDecoder(bytes.NewReader(w.Body.Bytes())).Decode(&p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Type == "" || p.Title != http.StatusText(status) || p.Status != status || p.Detail == "" {
		t.Errorf("problem %+v, want type, title %q, status %d and detail", p, http.StatusText(status), status)
	}
}

// intHeader is the whole number in header name of w; it fails the test
// when there is none.
func intHeader(t *testing.T, w *httptest.ResponseRecorder, name string) int {
	t.Helper()
	n, err := strconv.Atoi(w.Header().Get(name))
	if err != nil {
		t.Fatalf("%s %q: want a whole number", name, w.Header().Get(name))
	}
	return n
}

// inRange fails the test unless lo <= n <= hi.
func inRange(t *testing.T, what string, n, lo, hi int) {
	t.Helper()
	if n < lo || n > hi {
		t.Errorf("%s = %d, want %d..%d", what, n, lo, hi)
	}
}
