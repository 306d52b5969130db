package postgres_test

import (
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/internal/testsupport/testwait"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/projections/catalogquery"
	"github.com/eventshop/eventshop/projections/postgres"
)

// history is what the command layer wrote.
type history struct {
	users     []string
	orders    []string // every placed order
	abandoned string   // an order id fenced before it was placed
	products  []string // every product listed, the last one discontinued
	// abandonedProduct is a product id fenced before it was listed.
	abandonedProduct string
	vendors          []commands.Actor
	customers        []commands.Actor
	vendorOf         map[string]string // product id → vendor id
}

var card = payment.Card{Number: payment.TestCardSuccess, ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"}

// writeHistory drives a realistic history through the command layer:
// four registered users (two made vendors, one of them also a customer,
// one role revoked), products of two vendors, and orders pending, paid,
// completed, cancelled while pending and cancelled after payment
// (refunded), one with a voided and refunded charge, plus an abandoned
// placement.
func writeHistory(t *testing.T, e *env) history {
	t.Helper()
	ctx := context.Background()
	admin := commands.Actor{ID: uuid.NewString(), Roles: []string{"admin"}}
	var h history
	h.vendorOf = map[string]string{}
	for i := range 4 {
		u, _, err := e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: fmt.Sprintf("User%d@Example.com", i),
			Password: "correct horse battery", FullName: fmt.Sprintf("User %d", i)})
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		h.users = append(h.users, u.ID)
	}
	// users 0 and 1 are vendors; user 1 stays a customer too, user 0 not.
	for _, id := range h.users[:2] {
		if _, _, err := e.h.Users.GrantRole(ctx, admin, id, "vendor"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.h.Users.RevokeRole(ctx, admin, h.users[0], "customer"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Users.GrantRole(ctx, admin, h.users[3], "admin"); err != nil {
		t.Fatal(err)
	}
	h.vendors = []commands.Actor{{ID: h.users[0], Roles: []string{"vendor"}}, {ID: h.users[1], Roles: []string{"vendor", "customer"}}}
	h.customers = []commands.Actor{h.vendors[1], {ID: h.users[2], Roles: []string{"customer"}}, {ID: h.users[3], Roles: []string{"customer", "admin"}}}

	var products []string
	for i := range 4 {
		v := h.vendors[i%2]
		p, _, err := e.h.Catalog.CreateProduct(ctx, v, commands.CreateProduct{SKU: fmt.Sprintf("SKU-%d", i),
			Name: fmt.Sprintf("Product %d", i), Price: domain.Cents(1099 + 250*i), Category: "things", Quantity: 1000})
		if err != nil {
			t.Fatalf("create product: %v", err)
		}
		products = append(products, p.ID)
		h.vendorOf[p.ID] = v.ID
	}

	place := func(c commands.Actor, ps ...int) order.State {
		t.Helper()
		var lines []order.Line
		for i, p := range ps {
			lines = append(lines, order.Line{ProductID: products[p], Quantity: int64(i + 1)})
		}
		o, _, err := e.h.Orders.PlaceOrder(ctx, c, lines)
		if err != nil {
			t.Fatalf("place order: %v", err)
		}
		h.orders = append(h.orders, o.ID)
		return o
	}
	pay := func(c commands.Actor, id string) {
		t.Helper()
		if _, _, err := e.h.Orders.PayOrder(ctx, c, id, commands.NoVersion, card); err != nil {
			t.Fatalf("pay: %v", err)
		}
	}
	for i := range 12 {
		c := h.customers[i%3]
		var o order.State
		switch i % 4 {
		case 0:
			o = place(c, 0)
		case 1:
			o = place(c, 1)
		case 2:
			o = place(c, 2, 3)
		default:
			o = place(c, 0, 1, 3)
		}
		switch i % 6 {
		case 0: // pending
		case 1:
			pay(c, o.ID)
		case 2:
			pay(c, o.ID)
			if _, _, err := e.h.Orders.CompleteOrder(ctx, admin, o.ID, commands.NoVersion); err != nil {
				t.Fatal(err)
			}
		case 3:
			pay(c, o.ID)
			if _, _, err := e.h.Orders.CancelOrder(ctx, c, o.ID, commands.NoVersion, "changed my mind"); err != nil {
				t.Fatal(err)
			}
		case 4:
			if _, _, err := e.h.Orders.CancelOrder(ctx, admin, o.ID, commands.NoVersion, ""); err != nil {
				t.Fatal(err)
			}
		case 5:
			// A charge that never became the payment, voided and refunded,
			// then a real payment: the refund must not mark the payment.
			voidCharge(t, e, o)
			pay(c, o.ID)
		}
	}
	h.abandoned = uuid.NewString()
	if exists, err := e.h.Orders.AbandonPlacement(ctx, h.abandoned, nil); err != nil || exists {
		t.Fatalf("abandon placement: exists %v, %v", exists, err)
	}

	// The catalogue moves on: a product changes its category, another is
	// listed, changed every way, restocked and discontinued, and a listing
	// is abandoned.
	moved, lamp := "gadgets", "Café lamp"
	if _, _, err := e.h.Catalog.UpdateProduct(ctx, h.vendors[1], products[3], commands.NoVersion, product.Update{Category: &moved}); err != nil {
		t.Fatal(err)
	}
	p, _, err := e.h.Catalog.CreateProduct(ctx, h.vendors[0], commands.CreateProduct{SKU: "SKU-LAMP", Name: "Lamp",
		Price: 1500, Category: "things", Quantity: 3, Images: []string{"https://img.example.com/lamp.png"},
		Metadata: json.RawMessage(`{"watts": 40, "colour": "brass"}`)})
	if err != nil {
		t.Fatal(err)
	}
	products = append(products, p.ID)
	h.vendorOf[p.ID] = h.vendors[0].ID
	price, desc, images := domain.Cents(1799), "Warm light.", []string{}
	if _, _, err := e.h.Catalog.UpdateProduct(ctx, h.vendors[0], p.ID, commands.NoVersion, product.Update{Name: &lamp,
		Description: &desc, Price: &price, Images: &images, Metadata: json.RawMessage(`{"watts": 60}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Catalog.AdjustInventory(ctx, h.vendors[0], p.ID, commands.NoVersion,
		product.AdjustInventory{Adjustment: 7, Reason: "restock", Warehouse: "north"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, h.vendors[0], p.ID, commands.NoVersion); err != nil {
		t.Fatal(err)
	}
	h.products = products
	h.abandonedProduct = uuid.NewString()
	data, err := json.Marshal(product.CreationAbandoned{ProductID: h.abandonedProduct})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Append(ctx, product.Stream(h.abandonedProduct), eventstore.NoStream,
		eventstore.EventData{Type: product.CreationAbandoned{}.EventType(), Data: data}); err != nil {
		t.Fatal(err)
	}
	return h
}

// voidCharge appends order.payment_voided and its order.refunded to o's
// stream, as the write side records a charge it could not keep.
func voidCharge(t *testing.T, e *env, o order.State) {
	t.Helper()
	var evs []eventstore.EventData
	for _, ev := range []domain.Event{
		order.PaymentVoided{OrderID: o.ID, ChargeID: "ch_void_" + o.ID, Amount: o.Total},
		order.Refunded{OrderID: o.ID, ChargeID: "ch_void_" + o.ID, RefundID: "re_void", Amount: o.Total},
	} {
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, eventstore.EventData{Type: ev.EventType(), Data: data})
	}
	if _, err := e.store.Append(context.Background(), order.Stream(o.ID), eventstore.Exact(o.Version), evs...); err != nil {
		t.Fatal(err)
	}
}

// truth is the API shape of every order, user and listed product per the
// command layer.
type truth struct {
	orders   map[string]resource.Order
	users    map[string]resource.User
	products map[string]resource.Product // discontinued ones too
}

func readTruth(t *testing.T, e *env, h history) truth {
	t.Helper()
	ctx := context.Background()
	hd := e.handler() // an empty cache: what the store holds
	admin := commands.Actor{ID: uuid.NewString(), Roles: []string{"admin"}}
	tr := truth{orders: map[string]resource.Order{}, users: map[string]resource.User{}, products: map[string]resource.Product{}}
	for _, id := range h.orders {
		s, _, err := hd.Orders.Order(ctx, admin, id)
		if err != nil {
			t.Fatalf("order %s: %v", id, err)
		}
		tr.orders[id] = resource.FromOrder(s)
	}
	for _, id := range h.users {
		s, _, err := hd.Users.User(ctx, id)
		if err != nil {
			t.Fatalf("user %s: %v", id, err)
		}
		tr.users[id] = resource.FromUser(s)
	}
	for _, id := range h.products {
		s, _, err := hd.Catalog.Product(ctx, id)
		if err != nil {
			t.Fatalf("product %s: %v", id, err)
		}
		tr.products[id] = resource.FromProduct(s)
	}
	return tr
}

// caughtUp returns "" once the read model holds every order, user and
// product exactly as tr has them (a discontinued product is not found).
func caughtUp(e *env, tr truth) string {
	ctx := context.Background()
	cat := postgres.NewCatalog(e.pool)
	for id, want := range tr.products {
		got, err := cat.Product(ctx, uuid.MustParse(id))
		if want.Discontinued {
			if !errors.Is(err, catalogquery.ErrNotFound) {
				return fmt.Sprintf("discontinued product %s: %v, want not found", id, err)
			}
			continue
		}
		if err != nil {
			return fmt.Sprintf("product %s: %v", id, err)
		}
		if d := sameProduct(got, want); d != "" {
			return d
		}
	}
	for id, want := range tr.orders {
		got, err := e.rm.Order(ctx, id)
		if err != nil {
			return fmt.Sprintf("order %s: %v", id, err)
		}
		if d := sameOrder(got, want); d != "" {
			return d
		}
		if owner, err := e.rm.OrderOwner(ctx, id); err != nil || owner != want.UserID {
			return fmt.Sprintf("owner of order %s: %q, %v; want %s", id, owner, err, want.UserID)
		}
	}
	for id, want := range tr.users {
		got, err := e.rm.User(ctx, id)
		if err != nil {
			return fmt.Sprintf("user %s: %v", id, err)
		}
		if d := sameUser(got, want); d != "" {
			return d
		}
	}
	return ""
}

func TestReadModels(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	h := writeHistory(t, e)
	tr := readTruth(t, e, h)
	stop := e.runProjections(t)
	testwait.Until(t, 20*time.Second, func() string { return caughtUp(e, tr) })

	t.Run("shapes", func(t *testing.T) {
		// caughtUp compared every field; check the history covered what it should.
		seen := map[string]bool{}
		for _, o := range tr.orders {
			seen[o.Status] = true
			if o.Payment != nil && o.Payment.Refunded {
				seen["refunded"] = true
			}
			if o.Payment != nil && !o.Payment.Refunded && o.Status == "paid" {
				seen["paid, not refunded"] = true
			}
			if o.CancelReason == nil && o.Status == "cancelled" {
				t.Errorf("cancelled order %s without a reason", o.ID)
			}
		}
		for _, want := range []string{"pending", "paid", "completed", "cancelled", "refunded", "paid, not refunded"} {
			if !seen[want] {
				t.Errorf("history has no %s order", want)
			}
		}
		if _, err := e.rm.Order(ctx, h.abandoned); !errors.Is(err, postgres.ErrNotFound) {
			t.Errorf("abandoned order: %v, want ErrNotFound", err)
		}
		for _, id := range []string{h.abandoned, uuid.NewString(), "not-a-uuid"} {
			if _, err := e.rm.OrderOwner(ctx, id); !errors.Is(err, postgres.ErrNotFound) {
				t.Errorf("owner of order %q: %v, want ErrNotFound", id, err)
			}
		}
		if _, err := e.rm.Order(ctx, uuid.NewString()); !errors.Is(err, postgres.ErrNotFound) {
			t.Errorf("unknown order: %v, want ErrNotFound", err)
		}
		if _, err := e.rm.User(ctx, "not-a-uuid"); !errors.Is(err, postgres.ErrNotFound) {
			t.Errorf("bad user id: %v, want ErrNotFound", err)
		}
	})

	all := make([]resource.Order, 0, len(tr.orders))
	for _, o := range tr.orders {
		all = append(all, o)
	}
	list := func(t *testing.T, q postgres.OrderQuery) ([]string, int) {
		t.Helper()
		got, total, err := e.rm.Orders(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range got {
			if d := sameOrder(o, tr.orders[o.ID]); d != "" {
				t.Errorf("listed %s", d)
			}
		}
		return orderIDs(got), total
	}
	expect := func(t *testing.T, q postgres.OrderQuery, keep func(resource.Order) bool) {
		t.Helper()
		want := newestFirst(slices.DeleteFunc(slices.Clone(all), func(o resource.Order) bool { return !keep(o) }))
		q.Limit = 100
		got, total := list(t, q)
		if !slices.Equal(got, want) || total != len(want) {
			t.Errorf("%+v: got %d orders %v (total %d), want %d %v", q, len(got), got, total, len(want), want)
		}
		if len(want) == 0 {
			t.Errorf("%+v: the history should give this query something to find", q)
		}
	}
	holds := func(o resource.Order, vendor string) bool {
		return slices.ContainsFunc(o.Items, func(it resource.OrderItem) bool { return h.vendorOf[it.ProductID] == vendor })
	}

	t.Run("lists", func(t *testing.T) {
		expect(t, postgres.OrderQuery{}, func(resource.Order) bool { return true })
		for _, c := range h.customers {
			expect(t, postgres.OrderQuery{UserID: c.ID}, func(o resource.Order) bool { return o.UserID == c.ID })
		}
		for _, v := range h.vendors {
			expect(t, postgres.OrderQuery{VendorID: v.ID}, func(o resource.Order) bool { return holds(o, v.ID) })
			for _, o := range all {
				ok, err := e.rm.OrderVisible(ctx, o.ID, v.ID)
				if err != nil || ok != holds(o, v.ID) {
					t.Errorf("OrderVisible(%s, %s) = %v, %v; want %v", o.ID, v.ID, ok, err, holds(o, v.ID))
				}
			}
		}
		// Vendor 0 holds no customer role: only orders with its products.
		both := h.vendors[1]
		expect(t, postgres.OrderQuery{UserID: both.ID, VendorID: both.ID},
			func(o resource.Order) bool { return o.UserID == both.ID || holds(o, both.ID) })
		for _, st := range []string{"pending", "paid", "completed", "cancelled"} {
			expect(t, postgres.OrderQuery{Status: st}, func(o resource.Order) bool { return o.Status == st })
		}
		c := h.customers[1]
		expect(t, postgres.OrderQuery{UserID: c.ID, Status: "cancelled"},
			func(o resource.Order) bool { return o.UserID == c.ID && o.Status == "cancelled" })
		if got, total := list(t, postgres.OrderQuery{UserID: "nope"}); len(got) != 0 || total != 0 {
			t.Errorf("bad user id listed %v, total %d", got, total)
		}
		if got, total := list(t, postgres.OrderQuery{Status: "abandoned", Limit: 100}); len(got) != 0 || total != 0 {
			t.Errorf("abandoned orders listed: %v, total %d", got, total)
		}
		if ok, err := e.rm.OrderVisible(ctx, h.abandoned, h.vendors[0].ID); ok || err != nil {
			t.Errorf("abandoned order visible: %v, %v", ok, err)
		}
	})

	t.Run("pagination", func(t *testing.T) {
		want := newestFirst(all)
		var got []string
		for page := 1; ; page++ {
			ids, total := list(t, postgres.OrderQuery{Page: page, Limit: 5})
			if total != len(want) {
				t.Fatalf("page %d: total %d, want %d", page, total, len(want))
			}
			if len(ids) == 0 {
				break
			}
			got = append(got, ids...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages give %v, want %v", got, want)
		}
		users, total, err := e.rm.Users(ctx, 1, 3)
		if err != nil || total != len(h.users) || len(users) != 3 {
			t.Fatalf("users page 1: %d users, total %d, %v", len(users), total, err)
		}
		rest, total2, err := e.rm.Users(ctx, 2, 3)
		if err != nil || total2 != len(h.users) || len(rest) != len(h.users)-3 {
			t.Fatalf("users page 2: %d users, total %d, %v", len(rest), total2, err)
		}
		for _, u := range append(users, rest...) {
			if d := sameUser(u, tr.users[u.ID]); d != "" {
				t.Error(d)
			}
		}
		if got := append(users, rest...); !slices.IsSortedFunc(got, func(a, b resource.User) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		}) {
			t.Errorf("users not in created_at, id order")
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		for _, table := range []string{"users", "orders", "order_items", "product_vendors"} {
			var n int
			if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM readmodel.`+table+` r WHERE r::text LIKE '%$argon2id%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("readmodel.%s: %d rows hold a password hash", table, n)
			}
		}
		var cols []string
		rows, err := e.pool.Query(ctx, `SELECT table_name || '.' || column_name FROM information_schema.columns
			WHERE table_schema = 'readmodel' AND (column_name LIKE '%pass%' OR column_name LIKE '%hash%' OR column_name LIKE '%cred%')`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c string
			_ = rows.Scan(&c)
			cols = append(cols, c)
		}
		if rows.Err() != nil || len(cols) > 0 {
			t.Errorf("credential-like columns: %v (%v)", cols, rows.Err())
		}
		// The log does hold hashes, so the check above means something.
		found := false
		for _, ev := range readLog(t, e, eventstore.Filter{EventTypePrefixes: []string{"user.credentials_set"}}) {
			found = found || strings.Contains(string(ev.Data), "$argon2id")
		}
		if !found {
			t.Errorf("the log holds no password hash; the test proves nothing")
		}
	})

	live := tableHash(t, ctx, e.pool)

	t.Run("replay", func(t *testing.T) {
		for _, p := range e.rm.Projections() {
			batch := readLog(t, e, p.Filter())
			tx := beginIn(t, e, postgres.Schema)
			for range 2 {
				if err := p.Apply(ctx, tx, batch); err != nil {
					t.Fatalf("%s: apply: %v", p.Name(), err)
				}
			}
			// And from empty: the whole log twice in a row.
			if _, err := tx.Exec(ctx, "TRUNCATE readmodel.users, readmodel.orders, readmodel.order_items, readmodel.product_vendors, readmodel.products, readmodel.product_counts"); err != nil {
				t.Fatal(err)
			}
			for _, q := range e.rm.Projections() {
				all := readLog(t, e, q.Filter())
				for range 2 {
					if err := q.Apply(ctx, tx, all); err != nil {
						t.Fatalf("%s: apply: %v", q.Name(), err)
					}
				}
			}
			if got := tableHash(t, ctx, tx); got != live {
				t.Errorf("%s: after applying the log twice: %s, want %s", p.Name(), got, live)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Every event is now at or behind its row: applied newest first,
		// each one alone, they change nothing.
		for _, p := range e.rm.Projections() {
			batch := readLog(t, e, p.Filter())
			tx := beginIn(t, e, postgres.Schema)
			for i := len(batch) - 1; i >= 0; i-- {
				if err := p.Apply(ctx, tx, batch[i:i+1]); err != nil {
					t.Fatal(err)
				}
			}
			if got := tableHash(t, ctx, tx); got != live {
				t.Errorf("%s: after applying the log backwards: %s, want %s", p.Name(), got, live)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Applied twice and committed: nothing changes.
		for _, p := range e.rm.Projections() {
			batch := readLog(t, e, p.Filter())
			tx := beginIn(t, e, postgres.Schema)
			for range 2 {
				if err := p.Apply(ctx, tx, batch[len(batch)/2:]); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := tableHash(t, ctx, e.pool); got != live {
			t.Errorf("after replays: %s, want %s", got, live)
		}
	})

	t.Run("rebuild", func(t *testing.T) {
		stop()
		for _, p := range e.rm.Projections() {
			if err := projections.Reset(ctx, e.pool, p.Name()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.pool.Exec(ctx, "TRUNCATE readmodel.users, readmodel.orders, readmodel.order_items, readmodel.product_vendors, readmodel.products, readmodel.product_counts"); err != nil {
			t.Fatal(err)
		}
		if got := tableHash(t, ctx, e.pool); got == live {
			t.Fatal("truncating changed nothing")
		}
		e.runProjections(t)
		testwait.Until(t, 20*time.Second, func() string {
			if got := tableHash(t, ctx, e.pool); got != live {
				return "rebuilt " + got + ", live " + live
			}
			return ""
		})
		if d := caughtUp(e, tr); d != "" {
			t.Error(d)
		}
	})
}

// readLog reads the whole log and keeps what filter matches.
func readLog(t *testing.T, e *env, filter eventstore.Filter) []eventstore.Event {
	t.Helper()
	return eventstoretest.ReadAllMatching(t, e.store, filter, 1000)
}

// beginIn begins a transaction working on schema, as the runner's do, and
// rolls it back when t ends unless it was committed.
func beginIn(t *testing.T, e *env, schema string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", schema); err != nil {
		t.Fatal(err)
	}
	return tx
}
