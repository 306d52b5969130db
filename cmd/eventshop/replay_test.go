package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/testsupport/testwait"
	"github.com/eventshop/eventshop/projections"
)

// readModels are the projections `eventshop replay` takes by default.
var readModels = []string{"users.v1", "orders.v1", "products.v1", "catalog.v1"}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// readModelHash is a hash of every row of the PostgreSQL read models, in
// primary key order.
func readModelHash(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var h string
	err := pool.QueryRow(context.Background(), `SELECT md5(
		(SELECT coalesce(string_agg(u::text, '|' ORDER BY u.id), '') FROM readmodel.users u) || '#' ||
		(SELECT coalesce(string_agg(o::text, '|' ORDER BY o.id), '') FROM readmodel.orders o) || '#' ||
		(SELECT coalesce(string_agg(i::text, '|' ORDER BY i.order_id, i.line), '') FROM readmodel.order_items i) || '#' ||
		(SELECT coalesce(string_agg(v::text, '|' ORDER BY v.product_id), '') FROM readmodel.product_vendors v) || '#' ||
		(SELECT coalesce(string_agg(p::text, '|' ORDER BY p.id), '') FROM readmodel.products p) || '#' ||
		(SELECT coalesce(string_agg(c::text, '|' ORDER BY c.kind, c.category, c.vendor_id), '') FROM readmodel.product_counts c))`).Scan(&h)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// catalogue is the whole public catalogue as the read API lists it, and
// its categories.
func (s *server) catalogue() string {
	s.t.Helper()
	list := want(s.t, s.get("/api/products?limit=100&sort=name", ""), http.StatusOK)
	cats := want(s.t, s.get("/api/products/categories", ""), http.StatusOK)
	return string(list.raw) + string(cats.raw)
}

// waitLive waits until the reports of names, written after the call,
// say live with no lag, and their checkpoints stop moving. A runner
// reports about once a second, so a report older than the call may
// predate the last writes.
func waitLive(t *testing.T, pool *pgxpool.Pool, names ...string) {
	t.Helper()
	since := time.Now()
	var last []projections.Report
	testwait.Until(t, 30*time.Second, func() string {
		reps, err := projections.Reports(context.Background(), pool, names)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { last = reps }()
		for i, r := range reps {
			if r.State != projections.StateLive || r.LagEvents != 0 || !r.ReportedAt.After(since) ||
				last == nil || last[i].Position != r.Position {
				return fmt.Sprintf("projections not live and caught up: %+v", reps)
			}
		}
		return ""
	})
}

// shopActivity writes a bit of everything through the write API.
func shopActivity(s *server) {
	s.t.Helper()
	admin := s.admin()
	vendor := s.newUser(admin, "replay-vendor", "vendor")
	buyer := s.newUser(admin, "replay-buyer")
	p := s.product(vendor, 50, "12.50")
	want(s.t, s.do(http.MethodPatch, "/api/products/"+p, vendor.token, map[string]any{"name": "Renamed"}), http.StatusOK)
	paid := s.order(buyer, line{p, 2})
	want(s.t, s.pay(buyer, paid, goodCard), http.StatusOK)
	want(s.t, s.complete(admin, paid), http.StatusOK)
	cancelled := s.order(buyer, line{p, 1})
	want(s.t, s.cancel(buyer, cancelled, map[string]any{"reason": "changed my mind"}), http.StatusOK)
	s.order(buyer, line{p, 3}) // left pending
}

// TestReplayFromScratchEqualsLive: `eventshop replay --from-scratch` with
// the system stopped rebuilds every read model from the log, and what it
// builds equals what the live projections built, row for row and document
// for document.
func TestReplayFromScratchEqualsLive(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t)
	s := startServer(t, env)
	shopActivity(s)
	pool, err := pgxpool.New(context.Background(), env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	waitLive(t, pool, readModels...)
	liveRows, liveCatalogue := readModelHash(t, pool), s.catalogue()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	var out, errs bytes.Buffer
	// Without --embedded, and with the local run down, a replay refuses to
	// write to a stand-in of its own.
	if err := run(context.Background(), []string{"replay", "--from-scratch"}, func(k string) string { return env[k] }, &out, &errs); err == nil ||
		!strings.Contains(err.Error(), "MONGO_URL") {
		t.Fatalf("replay with no MongoDB: %v, want MONGO_URL is required", err)
	}
	if reps, err := projections.Reports(context.Background(), pool, readModels); err != nil || reps[0].Rebuild != "" {
		t.Fatalf("a refused replay filed a rebuild: %+v %v", reps, err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"replay", "--from-scratch", "--embedded"}, func(k string) string { return env[k] }, &out, &errs); err != nil {
		t.Fatalf("replay: %v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, name := range readModels {
		if !strings.Contains(out.String(), "replay: "+name) {
			t.Errorf("no summary line for %s in:\n%s", name, out.String())
		}
	}
	if !strings.Contains(out.String(), "events/s, ETA") {
		t.Errorf("no progress line in:\n%s", out.String())
	}
	reps, err := projections.Reports(context.Background(), pool, readModels)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.RebuiltAt.IsZero() || r.Rebuild != "" {
			t.Errorf("%s after replay: rebuilt at %v, rebuild %q", r.Name, r.RebuiltAt, r.Rebuild)
		}
	}
	if got := readModelHash(t, pool); got != liveRows {
		t.Errorf("PostgreSQL read models after the rebuild: hash %s, live %s", got, liveRows)
	}
	s = startServer(t, env)
	if got := s.catalogue(); got != liveCatalogue {
		t.Errorf("catalogue after the rebuild:\n%s\nlive:\n%s", got, liveCatalogue)
	}
}

// TestReplayBesideRunningSystem: with the local run serving, `eventshop
// replay` attaches to its embedded servers; a rebuild is carried out by
// the running process, which holds the projection, while the replay
// follows it to the end; the API keeps answering with the same data.
func TestReplayBesideRunningSystem(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t, "MONGO_ADDR", freeAddr(t))
	s := startServer(t, env)
	shopActivity(s)
	pool, err := pgxpool.New(context.Background(), env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	waitLive(t, pool, readModels...)
	admin := s.admin()
	orders := want(t, s.get("/api/orders?limit=100", admin.token), http.StatusOK).raw
	liveCatalogue := s.catalogue()

	var out, errs bytes.Buffer
	getenv := func(k string) string { return env[k] }
	if err := run(context.Background(), []string{"replay"}, getenv, &out, &errs); err != nil {
		t.Fatalf("replay (catch up): %v\n%s\n%s", err, out.String(), errs.String())
	}
	out.Reset()
	err = run(context.Background(), []string{"replay", "--from-scratch", "--projection", "orders.v1,products.v1,catalog.v1"}, getenv, &out, &errs)
	if err != nil {
		t.Fatalf("replay --from-scratch: %v\n%s\n%s", err, out.String(), errs.String())
	}
	if strings.Contains(out.String(), "users.v1") {
		t.Errorf("replay touched a projection it was not given:\n%s", out.String())
	}
	reps, err := projections.Reports(context.Background(), pool, []string{"orders.v1", "products.v1", "catalog.v1", "users.v1"})
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].RebuiltAt.IsZero() || reps[1].RebuiltAt.IsZero() || reps[2].RebuiltAt.IsZero() || !reps[3].RebuiltAt.IsZero() {
		t.Errorf("rebuilt: %+v", reps)
	}
	if got := want(t, s.get("/api/orders?limit=100", admin.token), http.StatusOK).raw; !bytes.Equal(got, orders) {
		t.Errorf("orders after the rebuild:\n%s\nbefore:\n%s", got, orders)
	}
	if got := s.catalogue(); got != liveCatalogue {
		t.Errorf("catalogue after the rebuild:\n%s\nbefore:\n%s", got, liveCatalogue)
	}

	if err := run(context.Background(), []string{"replay", "--projection", "nope.v1"}, getenv, &out, &errs); err == nil ||
		!strings.Contains(err.Error(), "nope.v1") {
		t.Errorf("replay of an unknown projection: %v", err)
	}
}
