package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/edge/metrics"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/projections"
)

// TestProjectionMetricsFromDatabase: the metrics of the reports the
// projections' runners store in PostgreSQL, read as a read API process
// without runners reads them.
func TestProjectionMetricsFromDatabase(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := projections.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO projections.checkpoints (name, commit, prepare, state, lag_events, lag_ms, reported_at)
		VALUES ('orders.v1', 77, 3, 'catching_up', 40, 2500, now()), ('users.v1', 12, 1, 'halted', 3, 0, now());
		INSERT INTO projections.parked (projection, event_id, stream_id, version, type, commit, prepare, status)
		VALUES ('users.v1', gen_random_uuid(), 'user-1', 2, 'user.registered', 13, 1, 'halted')`); err != nil {
		t.Fatal(err)
	}
	a := &app{pool: pool}
	w := httptest.NewRecorder()
	metrics.New(metrics.Config{Projections: a.reports}).Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	samples := parseSamples(t, w.Body.Bytes())
	for _, c := range []struct {
		metric, projection string
		want               float64
	}{
		{"eventshop_projection_position", "orders.v1", 77},
		{"eventshop_projection_lag_events", "orders.v1", 40},
		{"eventshop_projection_lag_seconds", "orders.v1", 2.5},
		{"eventshop_projection_up", "orders.v1", 1},
		{"eventshop_projection_failing", "orders.v1", 0},
		{"eventshop_projection_up", "users.v1", 0},
		{"eventshop_projection_failing", "users.v1", 1},
		{"eventshop_projection_parked_events", "users.v1", 1},
		{"eventshop_projection_position", "catalog.v1", 0},
		{"eventshop_projection_up", "catalog.v1", 0},
	} {
		if got, ok := find(samples, c.metric, "projection", c.projection); !ok || got != c.want {
			t.Errorf("%s{projection=%q} = %v (present: %v), want %v", c.metric, c.projection, got, ok, c.want)
		}
	}
	if _, ok := find(samples, "eventshop_projection_lag_events", "projection", "catalog.v1"); ok {
		t.Error("lag_events of a projection that never ran")
	}
}

// TestCapturedMailStaysOnThisMachine: /dev/mail answers clients connected
// from a loopback address, and 404 to any other, whatever forwarding
// headers claim.
func TestCapturedMailStaysOnThisMachine(t *testing.T) {
	h := loopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for addr, want := range map[string]int{
		"127.0.0.1:5000": http.StatusOK, "[::1]:5000": http.StatusOK, "[::ffff:127.0.0.1]:5000": http.StatusOK,
		"10.0.0.7:5000": http.StatusNotFound, "172.17.0.1:40000": http.StatusNotFound, "[2001:db8::1]:5000": http.StatusNotFound,
		"garbage": http.StatusNotFound,
	} {
		req := httptest.NewRequest(http.MethodGet, "/dev/mail", nil)
		req.RemoteAddr = addr
		req.Header.Set("X-Forwarded-For", "127.0.0.1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("from %s: %d, want %d", addr, w.Code, want)
		}
	}
}
