package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
)

// The write side's bounds, end to end: what the server accepts is what
// every reader of its events can read back (issue 12).

// productState reads a product's version and inventory as its vendor, by
// a PATCH that changes nothing (the write API answers with the product).
func (s *server) productState(u *account, productID string) (version int64, st stock) {
	s.t.Helper()
	r := want(s.t, s.do(http.MethodPatch, "/api/products/"+productID, u.token, map[string]any{}), http.StatusOK)
	return int64(num(s.t, r.body["version"])), s.stockOf(u, productID)
}

// TestE2EOrderOverTheMoneyBound: a vendor lists a product at the largest
// price with 10,000 units; a customer ordering all of them is refused with
// 422 naming the line, and nothing is written: no reservation, no order,
// the product's stock and version unchanged. Before the bound the order
// was accepted with a total of 10,000,000,000,000.00, which no reader
// could decode again. One unit still sells.
func TestE2EOrderOverTheMoneyBound(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	_, vendor, customer := s.cast("bound")
	gold := s.product(vendor, 10_000, "1000000000.00")
	pen := s.product(vendor, 10, "1.00")
	version, before := s.productState(vendor, gold)

	// The over line is the second as sent: the field names it so, whatever
	// order the server reserves in.
	r := s.placeOrder(customer, line{pen, 1}, line{gold, 10_000})
	wantFieldErrors(t, r, "items[1].quantity")
	if list := r.body["errors"].([]any); len(list) != 1 {
		t.Errorf("%s: want the one line named", r)
	}
	if v, st := s.productState(vendor, gold); v != version || st != before {
		t.Errorf("the refused order touched the product: version %d stock %+v, was %d %+v", v, st, version, before)
	}
	if _, st := s.productState(vendor, pen); st != (stock{10, 0, 10}) {
		t.Errorf("the refused order touched the other product: %+v", st)
	}
	for _, e := range s.events() {
		if e.Type == "order.created" || e.Type == "inventory.reserved" || e.Type == "order.placement_abandoned" {
			t.Errorf("the refused order wrote %s to %s: %s", e.Type, e.Stream, e.Data)
		}
	}

	// One unit at the largest price is an order of the largest total.
	ok := want(t, s.placeOrder(customer, line{gold, 1}), http.StatusCreated)
	wantMoney(t, "total", ok.body["total"], "1000000000.00")
	if _, st := s.productState(vendor, gold); st != (stock{10_000, 1, 9_999}) {
		t.Errorf("stock after one unit: %+v", st)
	}
	// The customer's orders are that one alone: the refused order never
	// reached the read model.
	list := want(t, s.fresh("/api/orders", customer.token, ok), http.StatusOK)
	items, _ := list.body["items"].([]any)
	if len(items) != 1 || str(obj(t, items[0], "order"), "id") != str(ok.body, "id") {
		t.Errorf("%s: want only order %s", list, str(ok.body, "id"))
	}
}

// TestE2ETextBounds: text a reader's store refuses (NUL: PostgreSQL text
// and FerretDB's jsonb) is refused at the write: a cancellation reason, a
// description, a category; line breaks stay allowed where text is
// multi-line.
func TestE2ETextBounds(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	_, vendor, customer := s.cast("text")
	p := s.product(vendor, 10, "5.00")

	o := s.order(customer, line{p, 1})
	wantFieldErrors(t, s.cancel(customer, o, map[string]any{"reason": "changed\u0000my mind"}), "reason")
	wantFieldErrors(t, s.cancel(customer, o, map[string]any{"reason": "changed \u0085 my mind"}), "reason")
	r := want(t, s.cancel(customer, o, map[string]any{"reason": "changed my mind:\nfound it cheaper"}), http.StatusOK)
	if str(r.body, "cancel_reason") != "changed my mind:\nfound it cheaper" {
		t.Errorf("cancel reason %q", str(r.body, "cancel_reason"))
	}

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"description": "a\u0000b"}, "description"},
		{map[string]any{"category": "home\u0000"}, "category"},
		{map[string]any{"name": "Mug\tLarge"}, "name"},
		{map[string]any{"warehouse": "W\u0000"}, "warehouse"},
		{map[string]any{"inventory": map[string]any{"quantity": 1, "warehouse": "W\u0000"}}, "inventory.warehouse"},
		{map[string]any{"metadata": map[string]any{"note": "a\u0000b"}}, "metadata"},
		{map[string]any{"metadata": json.RawMessage(strings.Repeat(`{"k":`, 33) + "{}" + strings.Repeat("}", 33))}, "metadata"},
	} {
		body := map[string]any{"sku": "TXT-" + uuid.NewString()[:8], "name": "Mug", "price": json.Number("1.00")}
		for k, v := range tc.body {
			body[k] = v
		}
		wantFieldErrors(t, s.post("/api/products", vendor.token, body), tc.field)
	}
	wantFieldErrors(t, s.do(http.MethodPatch, "/api/products/"+p, vendor.token, map[string]any{"description": "a\u0000b"}), "description")
	wantFieldErrors(t, s.post("/api/products/"+p+"/inventory", vendor.token, map[string]any{"adjustment": 1, "reason": "a\u0000b"}), "reason")
	r = want(t, s.do(http.MethodPatch, "/api/products/"+p, vendor.token, map[string]any{"description": "Holds tea.\r\n\tDishwasher safe."}), http.StatusOK)
	if str(r.body, "description") != "Holds tea.\r\n\tDishwasher safe." {
		t.Errorf("description %q", str(r.body, "description"))
	}
}

// TestE2ECreateProductInventoryShape: the create body takes the stock as
// the product document holds it; the flat form still works; a member sent
// both ways is a 422 naming it; what the server owns stays refused.
func TestE2ECreateProductInventoryShape(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "shape-vendor", "vendor")
	sku := func() string { return "SHAPE-" + uuid.NewString()[:8] }

	r := want(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": sku(), "name": "Seeded", "price": json.Number("3.00"), "inventory": map[string]any{"quantity": 10, "warehouse": "WH-001"},
	}), http.StatusCreated)
	inv := obj(t, r.body["inventory"], "inventory")
	if num(t, inv["quantity"]) != 10 || num(t, inv["available"]) != 10 || str(inv, "warehouse") != "WH-001" {
		t.Errorf("inventory %v, want 10 units in WH-001", inv)
	}
	// A mix of the forms, each member once.
	r = want(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": sku(), "name": "Mixed", "price": 1, "quantity": 4, "inventory": map[string]any{"warehouse": "WH-002"},
	}), http.StatusCreated)
	inv = obj(t, r.body["inventory"], "inventory")
	if num(t, inv["quantity"]) != 4 || str(inv, "warehouse") != "WH-002" {
		t.Errorf("inventory %v, want 4 units in WH-002", inv)
	}
	r = want(t, s.post("/api/products", vendor.token, map[string]any{"sku": sku(), "name": "Flat", "price": 1, "quantity": 2, "warehouse": "north"}), http.StatusCreated)
	if inv := obj(t, r.body["inventory"], "inventory"); num(t, inv["quantity"]) != 2 || str(inv, "warehouse") != "north" {
		t.Errorf("inventory %v, want 2 units in north", inv)
	}

	wantFieldErrors(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": sku(), "name": "Both", "price": 1, "quantity": 1, "inventory": map[string]any{"quantity": 2},
	}), "inventory.quantity")
	wantFieldErrors(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": sku(), "name": "Both", "price": 1, "warehouse": "a", "inventory": map[string]any{"warehouse": "b"},
	}), "inventory.warehouse")
	// Bad stock sent inside inventory is named as sent.
	wantFieldErrors(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": sku(), "name": "Negative", "price": 1, "inventory": map[string]any{"quantity": -1},
	}), "inventory.quantity")
	for _, owned := range []string{"reserved", "available", "id", "version"} {
		wantProblem(t, s.post("/api/products", vendor.token, map[string]any{
			"sku": sku(), "name": "Owned", "price": 1, "inventory": map[string]any{"quantity": 1, owned: 0},
		}), http.StatusBadRequest)
	}
	for _, owned := range []string{"id", "version", "created_at", "updated_at"} {
		wantProblem(t, s.post("/api/products", vendor.token, map[string]any{"sku": sku(), "name": "Owned", "price": 1, owned: "x"}), http.StatusBadRequest)
	}
}

// TestE2EStreamUnreadable: an order stream holding an event the program
// cannot decode (appended straight to the event store, as a foreign or
// broken writer would) answers 409 stream_unreadable, naming the stream
// and the event, on its history and its commands; never a 500. The other
// orders keep working.
func TestE2EStreamUnreadable(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin, vendor, customer := s.cast("unread")
	p := s.product(vendor, 10, "2.00")
	broken := s.order(customer, line{p, 1})
	other := want(t, s.placeOrder(customer, line{p, 2}), http.StatusCreated)
	otherID := str(other.body, "id")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := postgres.Open(ctx, s.env["DATABASE_URL"], postgres.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open the event store: %v", err)
	}
	defer store.Close()
	bad := uuid.Must(uuid.NewV7())
	if _, err := store.Append(ctx, "order-"+broken, eventstore.Exact(0), eventstore.EventData{
		ID: bad, Type: "order.paid", SchemaVersion: 1, Data: json.RawMessage(`{"order_id": 5}`),
		Metadata: eventstore.Metadata{CorrelationID: "test", CausationID: "test", ActorID: "test", Timestamp: time.Now().UTC()},
	}); err != nil {
		t.Fatalf("append the malformed event: %v", err)
	}

	for _, r := range []*response{
		s.get("/api/orders/"+broken+"/history", customer.token),
		s.cancel(customer, broken, map[string]any{"reason": "stuck"}),
		s.pay(customer, broken, goodCard),
		s.complete(admin, broken),
	} {
		wantProblem(t, r, http.StatusConflict)
		if str(r.body, "code") != "stream_unreadable" || str(r.body, "stream") != "order-"+broken || str(r.body, "event_id") != bad.String() {
			t.Errorf("%s: want code stream_unreadable naming order-%s and event %s", r, broken, bad)
		}
		if d := str(r.body, "detail"); !strings.Contains(d, "order-"+broken) || !strings.Contains(d, bad.String()) || !strings.Contains(d, "order.paid") {
			t.Errorf("%s: the detail does not name the stream, the event and its type", r)
		}
	}

	// The other order is served, read and changed.
	want(t, s.get("/api/orders/"+otherID, customer.token, "X-Min-Position", other.header.Get("X-Event-Position")), http.StatusOK)
	_, hist := s.history(customer, otherID)
	if len(hist) != 1 || hist[0].eventType != "order.created" {
		t.Errorf("history of the other order: %+v", hist)
	}
	r := want(t, s.cancel(customer, otherID, map[string]any{"reason": "changed my mind"}), http.StatusOK)
	if str(r.body, "status") != "cancelled" {
		t.Errorf("%s: want cancelled", r)
	}
	want(t, s.placeOrder(customer, line{p, 1}), http.StatusCreated)
}
