package idempotency_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
	"github.com/redis/go-redis/v9"
)

// fixture is a store on the test Redis and a handler counting its runs.
type fixture struct {
	rdb    *redis.Client
	prefix string
	cfg    idempotency.Config
	runs   atomic.Int64
	// reply, when set, answers instead of the default 201.
	reply func(w http.ResponseWriter, r *http.Request, body []byte)
	h     http.Handler
}

func newFixture(t *testing.T, cfg idempotency.Config) *fixture {
	t.Helper()
	rdb, prefix := redistest.New(t)
	cfg.KeyPrefix = prefix
	f := &fixture{rdb: rdb, prefix: prefix, cfg: cfg}
	store := idempotency.New(rdb, cfg)
	f.h = store.Middleware(func(r *http.Request) string { return r.Header.Get("X-User") })(http.HandlerFunc(f.serve))
	return f
}

func (f *fixture) serve(w http.ResponseWriter, r *http.Request) {
	n := f.runs.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(err)
	}
	if f.reply != nil {
		f.reply(w, r, body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/api/orders/1")
	w.Header().Set("X-Event-Position", fmt.Sprintf("pos-%d", n))
	w.Header().Set("ETag", `"7"`)
	w.Header().Set("X-Not-Stored", "x")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"run":%d,"echo":%q}`, n, body)
}

// do sends one request; key "" means no Idempotency-Key header.
func (f *fixture) do(user, path, key, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("X-User", user)
	if key != "" {
		r.Header.Set(idempotency.HeaderKey, key)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// redisKey computes the documented key layout.
func (f *fixture) redisKey(user, path, key string) string {
	sum := sha256.Sum256([]byte(user + "\x00" + http.MethodPost + " " + path + "\x00" + key))
	return f.prefix + "idem:" + hex.EncodeToString(sum[:])
}

func (f *fixture) keys(t *testing.T) []string {
	t.Helper()
	keys, err := f.rdb.Keys(context.Background(), f.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func wantProblem(t *testing.T, w *httptest.ResponseRecorder, status int, detail string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d (body %s)", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	want := map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": float64(status)}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("problem %s = %v, want %v", k, p[k], v)
		}
	}
	if detail != "" && p["detail"] != detail {
		t.Errorf("problem detail = %v, want %q", p["detail"], detail)
	}
}
