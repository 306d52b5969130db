package benchmarks_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/edge/metrics"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
	"github.com/eventshop/eventshop/projections"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/readapi"
	"github.com/eventshop/eventshop/writeapi"
)

const (
	authEvents = 30_000 // the simulated log behind the orders read model and the user streams
	// authRounds alternates the two sides often, so that the load of a
	// shared machine falls on both alike.
	authRounds   = 20
	authRequests = 8_000 // per side and route
	// authGoal is the least share of the unauthenticated rate an
	// authenticated route should reach: authentication costs at most 30%.
	authGoal = 0.7
)

// BenchmarkAuthenticatedReads measures what authentication costs a
// signed-in read: GET /api/orders/{id}, GET /api/orders and GET
// /api/auth/me served through the HTTP stack cmd/eventshop serves (chi,
// the metrics middleware, edge.Middleware, the write and read APIs) with
// edge.Authenticate over real tokens in Redis and the users' streams in
// the PostgreSQL event store, and beside each, in alternating rounds on
// the same store, read models and command handlers, the same stack with
// authentication bypassed: a middleware that puts the caller in the
// context straight from the request, with no token to verify and no
// revocation or roles to look up. Concurrency 32, keep-alive over
// loopback, as BenchmarkReadRoutes.
func BenchmarkAuthenticatedReads(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b, false)
	sh := newShop(5, authEvents)
	writeLog(b, e.store.Pool(), sh.events)
	ordersModel := pgread.OrdersProjection{}
	catchUpTo(b, e, projections.NewRunner(e.pool, e.store, ordersModel, runnerOptions()), ordersModel.Filter())

	rdb, prefix := redistest.New(b)
	tokens, err := auth.New(auth.Config{
		Secret: []byte("bench-auth-secret-0123456789-abcdefghijkl"), Issuer: "eventshop-bench", Audience: "eventshop-bench",
		KeyPrefix: prefix,
	}, rdb)
	if err != nil {
		b.Fatal(err)
	}
	h := commands.New(commands.Config{Store: e.store, Payments: payment.NewTestProcessor()})
	stack := func(authenticate func(http.Handler) http.Handler) *httptest.Server {
		api := writeapi.New(writeapi.Config{
			Authenticate: authenticate, Users: h.Users, Catalog: h.Catalog, Orders: h.Orders, Auth: tokens,
			Logins:      auth.NewLoginLimiter(rdb, prefix, auth.LoginLimits{}),
			Idempotency: idempotency.New(rdb, idempotency.Config{KeyPrefix: prefix}),
		})
		reads := readapi.New(readapi.Config{
			Reads: pgread.New(e.pool), Log: e.store,
			Checkpoint: func(ctx context.Context, name string) (eventstore.Position, error) {
				return projections.Checkpoint(ctx, e.pool, name)
			},
			Orders: h.Orders, Streams: e.store,
		})
		r := chi.NewRouter()
		r.Use(metrics.New(metrics.Config{}).Middleware, edge.Middleware(quietLogger()))
		api.Routes(r)
		reads.Routes(r, authenticate)
		srv := httptest.NewServer(r)
		b.Cleanup(srv.Close)
		return srv
	}
	authed := stack(edge.Authenticate(tokens, h.Users))
	// Bypassed: the "token" is the caller's user id, taken as it is.
	bypassed := stack(edge.Authenticate(injectedCaller{}, h.Users))
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * routeConc, MaxIdleConnsPerHost: 2 * routeConc}}
	b.Cleanup(client.CloseIdleConnections)

	// The callers: customers of a sample of orders, each with an access
	// token of its own, asking for that order, their orders and themselves.
	rng := rand.New(rand.NewPCG(7, 8))
	type caller struct{ userID, orderID, token string }
	var all []*shopOrder
	for _, o := range sh.orders {
		all = append(all, o)
	}
	callers := make([]caller, routeSample)
	for i := range callers {
		o := all[rng.IntN(len(all))].state
		tok, err := tokens.Issue(ctx, o.UserID, []string{user.RoleCustomer})
		if err != nil {
			b.Fatal(err)
		}
		callers[i] = caller{userID: o.UserID, orderID: o.ID, token: tok.AccessToken}
	}
	get := func(srv *httptest.Server, path, token string) error {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
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
	routes := []struct {
		name, short string
		path        func(c caller) string
	}{
		{"GET /api/orders/{id}", "order", func(c caller) string { return "/api/orders/" + c.orderID }},
		{"GET /api/orders", "orders", func(caller) string { return "/api/orders" }},
		{"GET /api/auth/me", "me", func(caller) string { return "/api/auth/me" }},
	}
	for _, rt := range routes {
		c := routeCase{
			name: rt.name, rawName: "authentication bypassed", requests: authRequests,
			route: func(i int) error {
				c := callers[i%routeSample]
				return get(authed, rt.path(c), c.token)
			},
			raw: func(i int) error {
				c := callers[i%routeSample]
				return get(bypassed, rt.path(c), c.userID)
			},
		}
		b.Run(rt.short, func(b *testing.B) { c.compare(b, authRounds, "auth", "bypassed", authGoal) })
	}
	note("auth: the same routes on the same stores with edge.Authenticate (JWT, token state and roles) and with a middleware "+
		"that injects the caller; %d customers with their own access tokens, each side in %d alternating rounds", routeSample, authRounds)
}

// injectedCaller is authentication bypassed: the bearer "token" is taken
// as the caller's user id, a customer, with nothing verified or looked up.
type injectedCaller struct{}

func (injectedCaller) VerifyAccess(_ context.Context, token string, _ auth.RoleSource) (auth.Claims, []string, error) {
	return auth.Claims{UserID: token, Type: auth.TypeAccess}, []string{user.RoleCustomer}, nil
}
