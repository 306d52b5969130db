package edge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

// outOfTime runs call under a deadline that has long passed by the time a
// slow dependency answers, and returns what the driver returned, with the
// request whose context carried the deadline.
func outOfTime(t *testing.T, call func(context.Context) error) (*http.Request, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	t.Cleanup(cancel)
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/products", nil)
	err := call(ctx)
	if err == nil {
		t.Fatal("the call outlived its deadline and succeeded")
	}
	return r, err
}

// TestWriteErrorOutOfTime: a request whose deadline ends the calls it
// makes to PostgreSQL and Redis answers 503 with Retry-After, never 500,
// however the driver words the error and whether or not the handler
// wrapped it; a definite answer reached before the deadline keeps its
// status.
func TestWriteErrorOutOfTime(t *testing.T) {
	// A connection per query: pgx closes one whose query its context
	// cancelled.
	pg := func(ctx context.Context) error {
		conn, err := pgx.Connect(context.Background(), pgtest.AdminURL())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "SELECT pg_sleep(10)")
		return err
	}
	// The Redis client as the process makes it: one that keeps to its
	// callers' deadlines.
	_, prefix := redistest.New(t)
	opts, err := redis.ParseURL(redistest.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	redisBlock := func(ctx context.Context) error {
		return rdb.BLPop(ctx, 10*time.Second, prefix+"never").Err()
	}
	cases := map[string]func(t *testing.T) (*http.Request, error){
		"pgx": func(t *testing.T) (*http.Request, error) { return outOfTime(t, pg) },
		"pgx wrapped": func(t *testing.T) (*http.Request, error) {
			r, err := outOfTime(t, pg)
			return r, fmt.Errorf("list orders: %w", err)
		},
		"pgx as unavailable": func(t *testing.T) (*http.Request, error) {
			r, err := outOfTime(t, pg)
			return r, edge.Unavailable(err)
		},
		"redis": func(t *testing.T) (*http.Request, error) { return outOfTime(t, redisBlock) },
		"unknown error after the deadline": func(t *testing.T) (*http.Request, error) {
			r, _ := outOfTime(t, pg)
			return r, errors.New("conn closed")
		},
		"deadline of a step, request still in time": func(t *testing.T) (*http.Request, error) {
			_, err := outOfTime(t, redisBlock)
			return httptest.NewRequest(http.MethodGet, "/", nil), err
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := c(t)
			w := httptest.NewRecorder()
			edge.WriteError(w, r, err)
			var p struct{ Status int }
			if jerr := json.Unmarshal(w.Body.Bytes(), &p); jerr != nil {
				t.Fatalf("body %q: %v", w.Body, jerr)
			}
			if w.Code != http.StatusServiceUnavailable || p.Status != http.StatusServiceUnavailable {
				t.Errorf("%v (%#v): %d, want 503", err, err, w.Code)
			}
			if w.Header().Get("Retry-After") != "1" {
				t.Errorf("%v: Retry-After %q, want 1", err, w.Header().Get("Retry-After"))
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}

	// A handler that got its answer before the deadline keeps it.
	r, _ := outOfTime(t, pg)
	w := httptest.NewRecorder()
	edge.WriteError(w, r, domain.NotFound("order", "x"))
	if w.Code != http.StatusNotFound {
		t.Errorf("a 404 reached in time and written after the deadline: %d", w.Code)
	}
}
