package mongo_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	"github.com/eventshop/eventshop/internal/testsupport/storetest"
	"github.com/eventshop/eventshop/projections/catalogquery"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
)

// testOptions make swaps and their grace quick.
var testOptions = mongoread.Options{PointerTTL: 50 * time.Millisecond, SwapGrace: 200 * time.Millisecond}

// env is a PostgreSQL event store (and checkpoints) with a command handler
// writing to it, and a catalogue in a MongoDB database of its own.
type env struct {
	pool  *pgxpool.Pool
	store eventstore.Store
	h     commands.Handlers
	cat   *mongoread.Store

	vendor, otherVendor, customer, admin commands.Actor
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, s := storetest.Postgres(t)
	e := &env{pool: pool, store: s, cat: mongoread.NewWithOptions(mongotest.NewDatabase(t), testOptions)}
	// A clock that moves a second per reading, so every product has its
	// own created_at.
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	)
	e.h = commands.New(commands.Config{Store: s, Payments: payment.NewTestProcessor(), Log: quiet(), Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}})
	newActor := func(roles ...string) commands.Actor { return commands.Actor{ID: uuid.NewString(), Roles: roles} }
	e.vendor, e.otherVendor = newActor(user.RoleVendor), newActor(user.RoleVendor)
	e.customer, e.admin = newActor(user.RoleCustomer), newActor(user.RoleAdmin)
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// create lists a product as vendor and returns its id.
func (e *env) create(t *testing.T, vendor commands.Actor, c commands.CreateProduct) string {
	t.Helper()
	st, _, err := e.h.Catalog.CreateProduct(ctxT(t), vendor, c)
	if err != nil {
		t.Fatalf("create %s: %v", c.SKU, err)
	}
	return st.ID
}

// order places an order of qty units of productID for the customer.
func (e *env) order(t *testing.T, productID string, qty int64) string {
	t.Helper()
	st, _, err := e.h.Orders.PlaceOrder(ctxT(t), e.customer, []order.Line{{ProductID: productID, Quantity: qty}})
	if err != nil {
		t.Fatalf("place order: %v", err)
	}
	return st.ID
}

// want is the catalogue shape of product id as the write side folds it.
func (e *env) want(t *testing.T, id string) resource.Product {
	t.Helper()
	st, _, err := e.h.Catalog.Product(ctxT(t), id)
	if err != nil {
		t.Fatalf("load product %s: %v", id, err)
	}
	return resource.FromProduct(st)
}

// scenario writes every kind of product event: it lists three products,
// changes every catalogue field of the first, adjusts its stock, and
// reserves, releases and deducts stock through orders; discontinues the
// second; and fences a fourth product id whose creation never finished.
// It returns the ids: the live product, the discontinued one, the
// untouched one and the abandoned one.
func (e *env) scenario(t *testing.T) (live, discontinued, plain, abandoned string) {
	t.Helper()
	ctx := ctxT(t)
	live = e.create(t, e.vendor, commands.CreateProduct{SKU: "LAMP-1", Name: "Desk lamp", Description: "A lamp.",
		Price: 2999, Category: "lighting", Images: []string{"https://img.example/lamp.png"},
		Metadata: json.RawMessage(`{"colour":"red","watts":40}`), Quantity: 10, Warehouse: "north"})
	discontinued = e.create(t, e.vendor, commands.CreateProduct{SKU: "OLD-1", Name: "Old thing", Price: 100, Quantity: 1})
	plain = e.create(t, e.otherVendor, commands.CreateProduct{SKU: "MUG-1", Name: "Mug", Price: 850, Category: "kitchen", Quantity: 3})

	name, desc, price, category := "Desk lamp XL", "A bigger lamp.", domain.Cents(3499), "home"
	images := []string{"https://img.example/lamp-xl.png", "https://img.example/lamp-xl-2.png"}
	if _, _, err := e.h.Catalog.UpdateProduct(ctx, e.vendor, live, commands.NoVersion, product.Update{Name: &name, Description: &desc,
		Price: &price, Category: &category, Images: &images, Metadata: json.RawMessage(`{"colour":"blue","a.b":{"$c":12345678901234567890}}`)}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, _, err := e.h.Catalog.AdjustInventory(ctx, e.vendor, live, commands.NoVersion, product.AdjustInventory{Adjustment: 5, Reason: "restock", Warehouse: "east"}); err != nil {
		t.Fatalf("adjust: %v", err)
	}
	cancelled := e.order(t, live, 2)
	if _, _, err := e.h.Orders.CancelOrder(ctx, e.customer, cancelled, commands.NoVersion, "changed my mind"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	completed := e.order(t, live, 3)
	if _, _, err := e.h.Orders.PayOrder(ctx, e.customer, completed, commands.NoVersion, payment.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, CVC: "123"}); err != nil {
		t.Fatalf("pay: %v", err)
	}
	if _, _, err := e.h.Orders.CompleteOrder(ctx, e.admin, completed, commands.NoVersion); err != nil {
		t.Fatalf("complete: %v", err)
	}
	e.order(t, live, 4) // stays reserved
	if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, e.vendor, discontinued, commands.NoVersion); err != nil {
		t.Fatalf("discontinue: %v", err)
	}
	abandoned = uuid.NewString()
	data, _ := json.Marshal(product.CreationAbandoned{ProductID: abandoned})
	if _, err := e.store.Append(ctx, product.Stream(abandoned), eventstore.NoStream,
		eventstore.EventData{Type: product.CreationAbandoned{}.EventType(), Data: data}); err != nil {
		t.Fatal(err)
	}
	return live, discontinued, plain, abandoned
}

// log is every event the catalogue projection takes, in log order, up to
// the test's last write.
func (e *env) log(t *testing.T) []eventstore.Event {
	t.Helper()
	return eventstoretest.ReadAllMatching(t, e.store, e.cat.Projection().Filter(), 1000)
}

// applyIn applies events to sink in batches of size.
func applyIn(t *testing.T, sink interface {
	Apply(context.Context, []eventstore.Event) error
}, events []eventstore.Event, size int) {
	t.Helper()
	for i := 0; i < len(events); i += size {
		if err := sink.Apply(ctxT(t), events[i:min(i+size, len(events))]); err != nil {
			t.Fatalf("apply events %d to %d: %v", i, min(i+size, len(events)), err)
		}
	}
}

// hash is a content hash of every document of coll, byte for byte, by _id.
func hash(t *testing.T, coll *mongo.Collection) string {
	t.Helper()
	ctx := ctxT(t)
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatalf("read %s: %v", coll.Name(), err)
	}
	defer cur.Close(ctx)
	h, n := sha256.New(), 0
	for cur.Next(ctx) {
		h.Write(cur.Current)
		n++
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("read %s: %v", coll.Name(), err)
	}
	return fmt.Sprintf("%d docs, sha256 %x", n, h.Sum(nil))
}

// liveHash is the hash of the collection the catalogue serves.
func liveHash(t *testing.T, s *mongoread.Store) string {
	t.Helper()
	coll, err := s.LiveCollection(ctxT(t))
	if err != nil || coll == nil {
		t.Fatalf("live collection: %v, %v", coll, err)
	}
	return hash(t, coll)
}

func dump(v any) string { b, _ := json.Marshal(v); return string(b) }

// list is s.Products as items and total.
func list(ctx context.Context, s *mongoread.Store, q catalogquery.ProductQuery) ([]resource.Product, int, error) {
	page, err := s.Products(ctx, q)
	return page.Items, page.Total, err
}
