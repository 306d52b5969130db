package benchmarks_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/testsupport/benchutil"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/edge/metrics"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
	"github.com/eventshop/eventshop/projections"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/readapi"
	"github.com/eventshop/eventshop/writeapi"
)

const (
	routeEvents = 60_000 // the simulated log behind the read models
	routeConc   = 32
	routeRounds = 6
	routeSample = 500 // products and orders the requests pick from
	// routeGoal is the least share of the raw driver's rate a route
	// should reach.
	routeGoal = 0.7
)

// orderByID is the query pgread.Store.Order runs (order_queries.go): the
// order with its items aggregated in line order.
const orderByID = `SELECT o.id::text, o.user_id::text, o.status, o.total_cents, o.payment_id,
	o.payment_amount_cents, o.payment_last4, o.payment_refunded, o.cancel_reason,
	o.created_at, o.updated_at, o.version,
	i.products, i.skus, i.names, i.quantities, i.prices
FROM readmodel.orders o
CROSS JOIN LATERAL (
	SELECT coalesce(array_agg(product_id::text), '{}') AS products,
		coalesce(array_agg(sku), '{}') AS skus,
		coalesce(array_agg(name), '{}') AS names,
		coalesce(array_agg(quantity), '{}') AS quantities,
		coalesce(array_agg(price_cents), '{}') AS prices
	FROM (SELECT * FROM readmodel.order_items WHERE order_id = o.id ORDER BY line) AS lines) i
WHERE o.id = $1 AND o.status <> 'abandoned'`

// BenchmarkReadRoutes serves GET /api/products/{id} and GET
// /api/orders/{id} through the HTTP stack cmd/eventshop serves (chi, the
// metrics and write API middleware, the write API's Authenticate with real
// tokens in Redis, the read API) on a loopback listener, at concurrency
// 32, and beside each, in alternating rounds, the bare driver doing the
// same lookup on the same store: a mongo-driver FindOne by _id on the live
// catalogue collection, and a pgx QueryRow of the order and its items.
//
// The read models come from a simulated log: the orders (and users) from
// all of it; the catalogue from the shop's opening only (the products as
// listed, before any order moved their stock), since the catalogue on
// FerretDB takes far longer than a bench run to follow a long log (see
// BenchmarkRebuild).
func BenchmarkReadRoutes(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b, true)
	sh := newShop(2, routeEvents)
	catalog := mongoread.New(e.mongo)
	writeLog(b, e.store.Pool(), sh.events[:sh.opened])
	catchUpTo(b, e, projections.NewSinkRunner(e.pool, e.store, catalog.Projection(), runnerOptions()), catalog.Projection().Filter())
	writeLog(b, e.store.Pool(), sh.events[sh.opened:])
	ordersModel := pgread.OrdersProjection{}
	catchUpTo(b, e, projections.NewRunner(e.pool, e.store, ordersModel, runnerOptions()), ordersModel.Filter())

	srv, tokens := routeServer(b, e, catalog)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * routeConc, MaxIdleConnsPerHost: 2 * routeConc}}
	b.Cleanup(client.CloseIdleConnections)

	// The requests: products listed at the opening; orders, each asked
	// for by its customer with an access token of its own.
	rng := rand.New(rand.NewPCG(3, 4))
	productIDs := make([]string, routeSample)
	for i := range productIDs {
		productIDs[i] = sh.products[rng.IntN(shopProducts)].ID
	}
	var orders []*shopOrder
	for _, o := range sh.orders {
		orders = append(orders, o)
	}
	slices.SortFunc(orders, func(a, b *shopOrder) int { return a.state.CreatedAt.Compare(b.state.CreatedAt) })
	type orderReq struct {
		id    uuid.UUID
		token string
	}
	orderReqs := make([]orderReq, routeSample)
	for i := range orderReqs {
		o := orders[rng.IntN(len(orders))].state
		tok, err := tokens.Issue(ctx, o.UserID, []string{user.RoleCustomer})
		if err != nil {
			b.Fatal(err)
		}
		orderReqs[i] = orderReq{id: uuid.MustParse(o.ID), token: tok.AccessToken}
	}
	live := liveCatalogue(b, e.mongo)

	get := func(path, token string) error {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
	cases := []routeCase{
		{
			name: "GET /api/products/{id}", rawName: "FindOne by _id", requests: 3_000,
			route: func(i int) error { return get("/api/products/"+productIDs[i%routeSample], "") },
			raw: func(i int) error {
				_, err := live.FindOne(ctx, bson.D{{Key: "_id", Value: productIDs[i%routeSample]}}).Raw()
				return err
			},
		},
		{
			name: "GET /api/orders/{id}", rawName: "QueryRow of order + items", requests: 12_000,
			route: func(i int) error {
				r := orderReqs[i%routeSample]
				return get("/api/orders/"+r.id.String(), r.token)
			},
			raw: func(i int) error { return queryOrder(ctx, e, orderReqs[i%routeSample].id) },
		},
	}
	for _, c := range cases {
		b.Run(c.name[len("GET /api/"):len(c.name)-len("/{id}")], func(b *testing.B) {
			c.compare(b, routeRounds, "routes", "raw", routeGoal)
		})
	}
	note("routes: HTTP/1.1 over loopback with keep-alive, client and server in the benchmark's process; each side in %d alternating rounds; "+
		"the read models' pool is pgxpool's default (as DATABASE_URL without pool settings gives) and FerretDB's the embedded server's default, "+
		"for route and raw alike; the read models hold %d orders and %d products", routeRounds, len(sh.orders), len(sh.products))
}

// routeCase is a route and the raw lookup it is measured against; each
// takes the request's number.
type routeCase struct {
	name, rawName string
	requests      int // per side and iteration, split across compare's rounds
	route, raw    func(i int) error
}

// compare measures c's route against its raw side in rounds alternating
// rounds (after a warm-up of both), reports both and their ratio, and
// records the line of group; against names the raw side in the metrics
// and the goal, which the ratio must reach.
func (c routeCase) compare(b *testing.B, rounds int, group, against string, goal float64) {
	b.StopTimer()
	// Warm up: connections, statement caches, the catalogue pointer.
	measureRequests(b, 200, c.route)
	measureRequests(b, 200, c.raw)
	var route, raw measured
	for range b.N {
		for range rounds {
			b.StartTimer()
			route.add(measureRequests(b, c.requests/rounds, c.route))
			b.StopTimer()
			raw.add(measureRequests(b, c.requests/rounds, c.raw))
		}
	}
	ratio := route.rate() / raw.rate()
	b.ReportMetric(route.rate(), "req/s")
	b.ReportMetric(millis(route.p(99)), "p99_ms")
	b.ReportMetric(raw.rate(), against+"_req/s")
	b.ReportMetric(millis(raw.p(99)), against+"_p99_ms")
	b.ReportMetric(ratio, "ratio")
	record(line{
		group: group, what: c.name + " at concurrency 32",
		measured: fmt.Sprintf("%s req/s, p50 %.2f ms, p99 %.2f ms", thousands(route.rate()), millis(route.p(50)), millis(route.p(99))),
		raw: fmt.Sprintf("%s: %s req/s, p50 %.2f ms, p99 %.2f ms", c.rawName, thousands(raw.rate()),
			millis(raw.p(50)), millis(raw.p(99))),
		ratio: fmt.Sprintf("%.2f", ratio),
		goal:  fmt.Sprintf("≥ %.1f× %s %s", goal, against, verdict(ratio >= goal)),
	})
}

// measured accumulates the rounds of one side of a case.
type measured struct {
	n    int
	took time.Duration
	lat  []time.Duration
}

func (m *measured) add(o measured) {
	m.n += o.n
	m.took += o.took
	m.lat = append(m.lat, o.lat...)
	slices.Sort(m.lat)
}

func (m *measured) rate() float64             { return float64(m.n) / m.took.Seconds() }
func (m *measured) p(q float64) time.Duration { return percentile(m.lat, q) }

// measureRequests runs n calls of op at concurrency routeConc.
func measureRequests(tb testing.TB, n int, op func(i int) error) measured {
	var (
		mu  sync.Mutex
		lat = make([]time.Duration, 0, n)
		seq int
	)
	took := benchutil.Concurrently(tb, routeConc, n, func(int) error {
		mu.Lock()
		i := seq
		seq++
		mu.Unlock()
		began := time.Now()
		if err := op(i); err != nil {
			return err
		}
		d := time.Since(began)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		return nil
	})
	return measured{n: n, took: took, lat: lat}
}

// routeServer serves the write and read APIs on one router as
// cmd/eventshop does, on a loopback listener, and returns it with the
// token service.
func routeServer(tb testing.TB, e *env, catalog *mongoread.Store) (*httptest.Server, *auth.Service) {
	tb.Helper()
	rdb, prefix := redistest.New(tb)
	tokens, err := auth.New(auth.Config{
		Secret: []byte("bench-routes-secret-0123456789-abcdefghij"), Issuer: "eventshop-bench", Audience: "eventshop-bench",
		KeyPrefix: prefix,
	}, rdb)
	if err != nil {
		tb.Fatal(err)
	}
	h := commands.New(commands.Config{Store: e.store, Payments: payment.NewTestProcessor()})
	authenticate := edge.Authenticate(tokens, h.Users)
	api := writeapi.New(writeapi.Config{
		Authenticate: authenticate, Users: h.Users, Catalog: h.Catalog, Orders: h.Orders, Auth: tokens,
		Logins:      auth.NewLoginLimiter(rdb, prefix, auth.LoginLimits{}),
		Idempotency: idempotency.New(rdb, idempotency.Config{KeyPrefix: prefix}),
	})
	reads := readapi.New(readapi.Config{
		Reads: pgread.New(e.pool), Catalog: catalog, Log: e.store,
		Checkpoint: func(ctx context.Context, name string) (eventstore.Position, error) {
			return projections.Checkpoint(ctx, e.pool, name)
		},
		Orders: h.Orders, Streams: e.store,
	})
	m := metrics.New(metrics.Config{})
	r := chi.NewRouter()
	r.Use(m.Middleware, edge.Middleware(nil))
	api.Routes(r)
	reads.Routes(r, authenticate)
	srv := httptest.NewServer(r)
	tb.Cleanup(srv.Close)
	return srv, tokens
}

// catchUpTo runs r until it has applied the last event of the log that
// filter (its projection's) takes, then stops it.
func catchUpTo(tb testing.TB, e *env, r *projections.Runner, filter eventstore.Filter) {
	tb.Helper()
	x := start(tb, r)
	defer x.stop()
	if err := waitApplied(r, lastMatching(tb, e.store, r.Name(), filter), 10*time.Minute); err != nil {
		tb.Fatal(err)
	}
}

// lastMatching is the position of the last event of the log filter takes.
func lastMatching(tb testing.TB, store *postgres.Store, name string, filter eventstore.Filter) eventstore.Position {
	tb.Helper()
	var last eventstore.Position
	for pos := eventstore.Start; ; {
		page, err := store.ReadAll(context.Background(), pos, eventstore.MaxReadCount)
		if err != nil {
			tb.Fatal(err)
		}
		for i := range page {
			if filter.Match(&page[i]) {
				last = page[i].Position
			}
		}
		if len(page) < eventstore.MaxReadCount {
			if last == eventstore.Start {
				tb.Fatalf("%s: no event of the log to apply", name)
			}
			return last
		}
		pos = page[len(page)-1].Position
	}
}

// liveCatalogue is the live catalogue collection, as the catalog_meta
// pointer document names it.
func liveCatalogue(tb testing.TB, db *mongo.Database) *mongo.Collection {
	tb.Helper()
	var m struct {
		Collection string `bson:"collection"`
	}
	err := db.Collection(mongoread.MetaCollection).FindOne(context.Background(), bson.D{{Key: "_id", Value: mongoread.ProjectionName}}).Decode(&m)
	if err != nil || m.Collection == "" {
		tb.Fatalf("catalogue pointer: %v (%q)", err, m.Collection)
	}
	return db.Collection(m.Collection)
}

// queryOrder reads order id and its items as pgread.Store.Order does,
// scanning into plain variables.
func queryOrder(ctx context.Context, e *env, id uuid.UUID) error {
	var (
		oid, uid, status, payID, last4, reason *string
		total                                  int64
		payAmount                              *int64
		refunded                               bool
		created, updated                       time.Time
		version                                int64
		products, skus, names                  []string
		quantities, prices                     []int64
	)
	return e.pool.QueryRow(ctx, orderByID, id).Scan(&oid, &uid, &status, &total, &payID, &payAmount, &last4, &refunded,
		&reason, &created, &updated, &version, &products, &skus, &names, &quantities, &prices)
}
