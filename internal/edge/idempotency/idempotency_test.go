package idempotency_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/internal/edge/idempotency"
)

func TestFirstCallStoresAndReplay(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	first := f.do("u1", "/api/orders", "k1", `{"a":1}`)
	if first.Code != http.StatusCreated || !strings.Contains(first.Body.String(), `"echo":"{\"a\":1}"`) {
		t.Fatalf("first = %d %s", first.Code, first.Body)
	}
	if first.Header().Get(idempotency.HeaderReplayed) != "" {
		t.Error("first response marked as replayed")
	}
	if first.Header().Get("X-Not-Stored") != "x" {
		t.Error("first response lost a handler header")
	}
	if n, _ := f.rdb.Exists(context.Background(), f.redisKey("u1", "/api/orders", "k1")).Result(); n != 1 {
		t.Fatal("response not stored under the documented key")
	}

	again := f.do("u1", "/api/orders", "k1", `{"a":1}`)
	if again.Code != first.Code || again.Body.String() != first.Body.String() {
		t.Errorf("replay = %d %s, want %d %s", again.Code, again.Body, first.Code, first.Body)
	}
	for _, h := range []string{"Content-Type", "Location", "X-Event-Position", "ETag"} {
		if got, want := again.Header().Get(h), first.Header().Get(h); got != want || got == "" {
			t.Errorf("replayed %s = %q, want %q", h, got, want)
		}
	}
	if again.Header().Get(idempotency.HeaderReplayed) != "true" {
		t.Error("replay lacks Idempotent-Replayed: true")
	}
	if again.Header().Get("X-Not-Stored") != "" {
		t.Error("replay carries a header that is not stored")
	}
	if n := f.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

func TestDifferentBodyIs422(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	f.do("u1", "/api/orders", "k1", `{"a":1}`)
	w := f.do("u1", "/api/orders", "k1", `{"a":2}`)
	wantProblem(t, w, http.StatusUnprocessableEntity, "Idempotency-Key reused with a different request")
	if strings.Contains(w.Body.String(), "k1") {
		t.Error("problem quotes the key")
	}
	if n := f.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

func TestKeysAreScopedByCallerAndRoute(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	for _, c := range []struct{ user, path string }{
		{"u1", "/api/orders"}, {"u2", "/api/orders"}, {"u1", "/api/orders/9/pay"},
	} {
		if w := f.do(c.user, c.path, "shared", `{}`); w.Code != http.StatusCreated || w.Header().Get(idempotency.HeaderReplayed) != "" {
			t.Errorf("%s %s: %d replayed=%q", c.user, c.path, w.Code, w.Header().Get(idempotency.HeaderReplayed))
		}
	}
	if n := f.runs.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
}

func TestConcurrentSameKeyRunsOnce(t *testing.T) {
	const callers = 8
	f := newFixture(t, idempotency.Config{})
	release := make(chan struct{})
	f.reply = func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		<-release // hold the claim until every other caller has answered
		w.WriteHeader(http.StatusCreated)
	}
	start := make(chan struct{})
	results := make(chan *httptest.ResponseRecorder, callers)
	for range callers {
		go func() {
			<-start
			results <- f.do("u1", "/api/orders", "k1", `{"a":1}`)
		}()
	}
	close(start)
	var created, inProgress int
	for i := range callers {
		if i == callers-1 {
			close(release)
		}
		w := <-results
		switch w.Code {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			wantProblem(t, w, http.StatusConflict, "a request with this Idempotency-Key is in progress")
			if w.Header().Get("Retry-After") != "1" {
				t.Errorf("Retry-After = %q", w.Header().Get("Retry-After"))
			}
			inProgress++
		default:
			t.Errorf("unexpected %d %s", w.Code, w.Body)
		}
	}
	if created != 1 || inProgress != callers-1 || f.runs.Load() != 1 {
		t.Errorf("created=%d inProgress=%d runs=%d", created, inProgress, f.runs.Load())
	}
}

func TestInFlightDifferentBodyIs422(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	started, release := make(chan struct{}), make(chan struct{})
	f.reply = func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		close(started)
		<-release
		w.WriteHeader(http.StatusCreated)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- f.do("u1", "/api/orders", "k1", `{"a":1}`) }()
	<-started
	wantProblem(t, f.do("u1", "/api/orders", "k1", `{"a":2}`), http.StatusUnprocessableEntity, "")
	close(release)
	if w := <-done; w.Code != http.StatusCreated {
		t.Errorf("first = %d", w.Code)
	}
}

func TestWithoutHeaderPassesThrough(t *testing.T) {
	f := newFixture(t, idempotency.Config{})
	for i := range 3 {
		w := f.do("u1", "/api/orders", "", `{"a":1}`)
		if w.Code != http.StatusCreated || w.Header().Get(idempotency.HeaderReplayed) != "" {
			t.Fatalf("call %d: %d", i, w.Code)
		}
	}
	if n := f.runs.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
	if keys := f.keys(t); len(keys) != 0 {
		t.Errorf("keys written without a header: %v", keys)
	}
}
