package readapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	"github.com/eventshop/eventshop/internal/testsupport/storetest"
	"github.com/eventshop/eventshop/projections"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// TestCatalogModelsAgree: after each write of a random sequence —
// listings, changes of every field, stock moves, orders reserving,
// releasing and deducting stock, discontinuations — the PostgreSQL
// catalogue the product routes are served from answers every listing
// (each sort, filter and page), the categories and the product exactly
// as the MongoDB product documents do, both asked right after the write
// with its X-Min-Position and both fresh. Searches are left out: q is
// product search on PostgreSQL and a substring on MongoDB.
func TestCatalogModelsAgree(t *testing.T) {
	ctx := context.Background()
	pool, store := storetest.Postgres(t)
	h := commands.New(commands.Config{Store: store, Payments: payment.NewTestProcessor()})
	docs := mongoread.New(mongotest.NewDatabase(t))
	opts := projections.Options{LockPoll: 50 * time.Millisecond, RetryMin: 10 * time.Millisecond, BatchWait: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	for _, r := range []*projections.Runner{
		projections.NewRunner(pool, store, pgread.ProductsProjection{}, opts),
		projections.NewSinkRunner(pool, store, docs.Projection(), opts),
	} {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runner %s: %v", r.Name(), err)
			}
		})
	}
	serve := func(catalog CatalogReader) http.Handler {
		s := New(Config{Reads: nil, Catalog: catalog, Log: store, MaxWait: 10 * time.Second,
			Checkpoint: func(ctx context.Context, name string) (eventstore.Position, error) {
				return projections.Checkpoint(ctx, pool, name)
			}})
		r := chi.NewRouter()
		r.Use(edge.Middleware(nil))
		s.Routes(r, func(next http.Handler) http.Handler { return next })
		return r
	}
	served, documents := serve(pgread.NewCatalog(pool)), serve(docs)

	rng := rand.New(rand.NewPCG(14, 3))
	admin := commands.Actor{ID: uuid.NewString(), Roles: []string{user.RoleAdmin}}
	shopper := commands.Actor{ID: uuid.NewString(), Roles: []string{user.RoleCustomer}}
	vendors := []commands.Actor{{ID: uuid.NewString(), Roles: []string{user.RoleVendor}}, {ID: uuid.NewString(), Roles: []string{user.RoleVendor}}}
	categories := []string{"Tea", "tea", "Café", "garden"}
	names := []string{"Mug", "mug", "Émail pot", "Zebra", "apple", "Kettle", "kettle", "Ångström ruler"}
	var ids []string
	var pending []string // orders placed and neither paid nor cancelled
	paid := []string{}
	// asked lists the paths asked of both after a write.
	asked := func(id string, all bool) []string {
		var listings []string
		for _, sort := range []string{"", "-created_at", "price", "-price", "name"} {
			for _, filter := range []string{"", "category=tea", "category=Caf%C3%A9", "vendor_id=" + vendors[0].ID,
				"vendor_id=" + vendors[1].ID + "&category=Tea", "min_price=3&max_price=7.5", "max_price=4.99&category=garden"} {
				for _, pg := range []string{"limit=3", "limit=3&page=2", "limit=100", "limit=2&page=9"} {
					listings = append(listings, "/api/products?"+strings.Trim(strings.Join([]string{filter, pg, "sort=" + sort}, "&"), "&"))
				}
			}
		}
		if !all {
			rng.Shuffle(len(listings), func(i, j int) { listings[i], listings[j] = listings[j], listings[i] })
			listings = listings[:8]
		}
		paths := append(listings, "/api/products/categories")
		if id != "" {
			paths = append(paths, "/api/products/"+id)
		}
		return paths
	}
	get := func(h http.Handler, path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("X-Min-Position", token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	compare := func(step int, what string, res commands.Result, id string, all bool) {
		t.Helper()
		for _, path := range asked(id, all) {
			for _, token := range []string{res.Position.String(), ""} {
				a, b := get(served, path, token), get(documents, path, token)
				if a.Header().Get("X-Stale") != "" || b.Header().Get("X-Stale") != "" {
					t.Fatalf("step %d (%s): %s answered stale", step, what, path)
				}
				// A problem's body names its request; the pages and the
				// product must be the same to the byte.
				if a.Code != b.Code || a.Code == http.StatusOK && !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
					t.Fatalf("step %d (%s): %s (X-Min-Position %q):\nPostgreSQL %d %s\nMongoDB    %d %s",
						step, what, path, token, a.Code, a.Body, b.Code, b.Body)
				}
				if a.Code != http.StatusOK && !strings.HasPrefix(path, "/api/products/") {
					t.Fatalf("step %d: %s: %d %s", step, path, a.Code, a.Body)
				}
			}
		}
	}

	for step := range 40 {
		var (
			res  commands.Result
			err  error
			id   string
			what string
		)
		pick := func() string { return ids[rng.IntN(len(ids))] }
		switch k := rng.IntN(8); {
		case k <= 1 || len(ids) < 3:
			what = "create"
			var p product.State
			p, res, err = h.Catalog.CreateProduct(ctx, vendors[rng.IntN(2)], commands.CreateProduct{
				SKU: fmt.Sprintf("SKU-%d", step), Name: names[rng.IntN(len(names))], Description: "Step " + fmt.Sprint(step),
				Price: domain.Cents(100 * (1 + rng.IntN(10))), Category: categories[rng.IntN(len(categories))], Quantity: 20,
				Images: []string{"https://img.example.com/" + fmt.Sprint(step) + ".png"}, Metadata: []byte(`{"step": ` + fmt.Sprint(step) + `}`),
			})
			id = p.ID
			ids = append(ids, id)
		case k == 2:
			what, id = "update", pick()
			name, cat, price := names[rng.IntN(len(names))], categories[rng.IntN(len(categories))], domain.Cents(50*(1+rng.IntN(20)))
			_, res, err = h.Catalog.UpdateProduct(ctx, admin, id, commands.NoVersion, product.Update{Name: &name, Category: &cat, Price: &price})
		case k == 3:
			what, id = "restock", pick()
			_, res, err = h.Catalog.AdjustInventory(ctx, admin, id, commands.NoVersion, product.AdjustInventory{Adjustment: int64(1 + rng.IntN(5)), Reason: "count"})
		case k == 4:
			what, id = "order", pick()
			var o order.State
			o, res, err = h.Orders.PlaceOrder(ctx, shopper, []order.Line{{ProductID: id, Quantity: 1}})
			if err == nil {
				pending = append(pending, o.ID)
			}
		case k == 5 && len(pending) > 0:
			what = "cancel"
			o := pending[0]
			pending = pending[1:]
			_, res, err = h.Orders.CancelOrder(ctx, shopper, o, commands.NoVersion, "")
		case k == 6 && len(pending) > 0:
			what = "pay and complete"
			o := pending[0]
			pending = pending[1:]
			card := payment.Card{Number: payment.TestCardSuccess, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: "123"}
			if _, _, err = h.Orders.PayOrder(ctx, shopper, o, commands.NoVersion, card); err == nil {
				_, res, err = h.Orders.CompleteOrder(ctx, admin, o, commands.NoVersion)
				paid = append(paid, o)
			}
		default:
			what, id = "discontinue", pick()
			_, res, err = h.Catalog.DiscontinueProduct(ctx, admin, id, commands.NoVersion)
		}
		var de *domain.Error
		if errors.As(err, &de) {
			continue // a rule of the write side (stock, a product discontinued): nothing written
		}
		if err != nil {
			t.Fatalf("step %d (%s): %v", step, what, err)
		}
		compare(step, what, res, id, step%10 == 9)
	}
	if len(paid) == 0 || len(ids) < 5 {
		t.Errorf("the sequence wrote too little to prove much: %d products, %d orders completed", len(ids), len(paid))
	}
}
