package idempotency_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/redis/go-redis/v9"
)

func TestRetryableResultsAreNotStored(t *testing.T) {
	for _, c := range []struct {
		name       string
		status     int
		retryAfter string
		stored     bool
	}{
		{"500", http.StatusInternalServerError, "", false},
		{"503", http.StatusServiceUnavailable, "", false},
		{"429", http.StatusTooManyRequests, "", false},
		{"409 in progress", http.StatusConflict, "1", false},
		{"409 conflict", http.StatusConflict, "", true},
		{"402 declined", http.StatusPaymentRequired, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, idempotency.Config{})
			f.reply = func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				w.WriteHeader(c.status)
			}
			for range 2 {
				if w := f.do("u1", "/api/orders/1/pay", "k1", `{}`); w.Code != c.status {
					t.Fatalf("status = %d, want %d", w.Code, c.status)
				}
			}
			wantRuns, wantKeys := int64(2), 0
			if c.stored {
				wantRuns, wantKeys = 1, 1
			}
			if n := f.runs.Load(); n != wantRuns {
				t.Errorf("handler ran %d times, want %d", n, wantRuns)
			}
			if n := len(f.keys(t)); n != wantKeys {
				t.Errorf("%d keys in Redis, want %d", n, wantKeys)
			}
		})
	}
}

func TestPanicReleasesClaim(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	f.reply = func(http.ResponseWriter, *http.Request, []byte) { panic("boom") }
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		f.do("u1", "/api/orders", "k1", `{}`)
	}()
	if keys := f.keys(t); len(keys) != 0 {
		t.Fatalf("claim left behind: %v", keys)
	}
	f.reply = nil
	if w := f.do("u1", "/api/orders", "k1", `{}`); w.Code != http.StatusCreated {
		t.Errorf("retry after panic = %d", w.Code)
	}
}

func TestBadKeyIs400(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	short := newFixture(t, idempotency.Config{MaxKeyLength: 8})
	wantProblem(t, f.do("u1", "/api/orders", strings.Repeat("k", 256), `{}`), http.StatusBadRequest, "")
	wantProblem(t, f.do("u1", "/api/orders", "k\x01", `{}`), http.StatusBadRequest, "")
	wantProblem(t, short.do("u1", "/api/orders", "123456789", `{}`), http.StatusBadRequest, "")
	if w := f.do("u1", "/api/orders", strings.Repeat("k", 255), `{}`); w.Code != http.StatusCreated {
		t.Errorf("255-byte key = %d", w.Code)
	}

	r := httptest.NewRequest(http.MethodPost, "/api/orders", strings.NewReader(`{}`))
	r.Header[idempotency.HeaderKey] = []string{""}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	wantProblem(t, w, http.StatusBadRequest, "")

	if n := f.runs.Load() + short.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

func TestBodyTooLargeIs413(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4)
		f.h.ServeHTTP(w, r)
	})
	r := httptest.NewRequest(http.MethodPost, "/api/orders", strings.NewReader(`{"a":1}`))
	r.Header.Set(idempotency.HeaderKey, "k1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	wantProblem(t, w, http.StatusRequestEntityTooLarge, "")
	if f.runs.Load() != 0 {
		t.Error("handler ran")
	}
}

func TestRedisDownIs503(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	var runs atomic.Int64
	h := idempotency.New(rdb, idempotency.Config{KeyPrefix: "test:down:"}).
		Middleware(func(*http.Request) string { return "u1" })(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runs.Add(1) }))
	r := httptest.NewRequest(http.MethodPost, "/api/orders", strings.NewReader(`{}`))
	r.Header.Set(idempotency.HeaderKey, "k1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	wantProblem(t, w, http.StatusServiceUnavailable, "")
	if runs.Load() != 0 {
		t.Error("handler ran without the store")
	}
}

func TestStoredResponseExpires(t *testing.T) {
	f := newFixture(t, idempotency.Config{TTL: time.Hour, LockTTL: 10 * time.Second})
	f.do("u1", "/api/orders", "k1", `{}`)
	ttl, err := f.rdb.TTL(context.Background(), f.redisKey("u1", "/api/orders", "k1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 10*time.Second || ttl > time.Hour {
		t.Errorf("TTL = %v, want in (LockTTL, 1h]", ttl)
	}
}

func TestClaimHasLockTTL(t *testing.T) {
	f := newFixture(t, idempotency.Config{LockTTL: 30 * time.Second})
	started, release := make(chan struct{}), make(chan struct{})
	f.reply = func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		close(started)
		<-release
	}
	done := make(chan struct{})
	go func() { f.do("u1", "/api/orders", "k1", `{}`); close(done) }()
	<-started
	ttl, err := f.rdb.TTL(context.Background(), f.redisKey("u1", "/api/orders", "k1")).Result()
	close(release)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 30*time.Second {
		t.Errorf("claim TTL = %v, want in (0, 30s]", ttl)
	}
}

// TestClaimIsRenewedWhileTheHandlerRuns: a handler slower than LockTTL
// keeps its claim (a retry meanwhile is told to wait, not run), and the
// handler sees the request's key in its context.
func TestClaimIsRenewedWhileTheHandlerRuns(t *testing.T) {
	f := newFixture(t, idempotency.Config{LockTTL: 300 * time.Millisecond})
	started, release := make(chan struct{}), make(chan struct{})
	keys := make(chan string, 2)
	f.reply = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		keys <- idempotency.RequestKey(r.Context())
		if r.Header.Get("X-User") == "u1" {
			close(started)
			<-release
		}
		w.WriteHeader(http.StatusCreated)
	}
	done := make(chan struct{})
	go func() { f.do("u1", "/api/orders", "k1", `{}`); close(done) }()
	<-started
	// Three lifetimes of the claim later it must still be held.
	deadline := time.Now().Add(900 * time.Millisecond)
	for time.Now().Before(deadline) {
		wantProblem(t, f.do("u1", "/api/orders", "k1", `{}`), http.StatusConflict, "")
		time.Sleep(50 * time.Millisecond)
	}
	close(release)
	<-done
	if n := f.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times while its claim was held, want 1", n)
	}
	first := <-keys
	f.do("u2", "/api/orders", "k1", `{}`)
	other := <-keys
	if first == "" || other == "" || first == other {
		t.Errorf("RequestKey = %q for u1 and %q for u2: want two distinct, non-empty keys", first, other)
	}
	if want := strings.TrimPrefix(f.redisKey("u1", "/api/orders", "k1"), f.prefix+"idem:"); first != want {
		t.Errorf("RequestKey = %q, want the key's digest %q", first, want)
	}
	if got := idempotency.RequestKey(context.Background()); got != "" {
		t.Errorf("RequestKey without a key = %q", got)
	}
}
