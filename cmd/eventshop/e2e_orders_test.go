package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/commands/demo"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

// TestE2EHappyFlow walks the whole write side once: register, sign in, an
// admin makes a vendor, the vendor lists products, a customer orders and
// pays, an admin completes, and the stock is deducted.
func TestE2EHappyFlow(t *testing.T) {
	t.Parallel()
	s := newE2E(t)

	// Register, with a correlation id that must be echoed.
	email := uniqueEmail("Flow.Customer")
	r := s.post("/api/auth/register", "", map[string]any{"email": email, "password": testPassword, "full_name": "Flow Customer"},
		"X-Correlation-ID", "e2e-flow-42")
	want(t, r, http.StatusCreated)
	wantPosition(t, r)
	if got := r.header.Get("X-Correlation-ID"); got != "e2e-flow-42" {
		t.Errorf("X-Correlation-ID %q, want the one sent, e2e-flow-42", got)
	}
	customerID := str(r.body, "id")
	wantUUID(t, "user id", customerID)
	if loc := r.header.Get("Location"); loc != "/api/users/"+customerID {
		t.Errorf("Location %q, want /api/users/%s", loc, customerID)
	}
	if got := str(r.body, "email"); got != strings.ToLower(email) {
		t.Errorf("email %q, want %q (normalised)", got, strings.ToLower(email))
	}
	if got := str(r.body, "full_name"); got != "Flow Customer" {
		t.Errorf("full_name %q", got)
	}
	if roles, _ := r.body["roles"].([]any); !slices.Equal(roles, []any{"customer"}) {
		t.Errorf("roles %v, want [customer]", r.body["roles"])
	}
	wantTime(t, "created_at", r.body["created_at"])
	for _, secret := range []string{"password", "password_hash"} {
		if _, ok := r.body[secret]; ok {
			t.Errorf("the user shape carries %q", secret)
		}
	}

	// Without a correlation id, one is made.
	vendorEmail := uniqueEmail("flow-vendor")
	r = want(t, s.post("/api/auth/register", "", map[string]any{"email": vendorEmail, "password": testPassword, "full_name": "Flow Vendor"}), http.StatusCreated)
	if got := r.header.Get("X-Correlation-ID"); got == "" {
		t.Error("no X-Correlation-ID made for a request without one")
	}
	vendorID := str(r.body, "id")

	// Sign in: the tokens shape.
	tok := s.login(email, testPassword)
	for _, k := range []string{"access_token", "refresh_token"} {
		if str(tok, k) == "" {
			t.Errorf("tokens: no %s in %v", k, tok)
		}
	}
	if str(tok, "token_type") != "Bearer" || num(t, tok["expires_in"]) != 900 || num(t, tok["refresh_expires_in"]) != 604800 {
		t.Errorf("tokens: %v, want token_type Bearer, expires_in 900, refresh_expires_in 604800", tok)
	}
	customer := &account{id: customerID, email: email, token: str(tok, "access_token")}
	me := want(t, s.do(http.MethodGet, "/api/auth/me", customer.token, nil), http.StatusOK)
	if str(me.body, "id") != customerID || str(me.body, "email") != strings.ToLower(email) {
		t.Errorf("/api/auth/me: %v", me.body)
	}

	// The seeded admin makes the second user a vendor.
	admin := s.admin()
	r = s.grant(admin, vendorID, "vendor")
	wantPosition(t, r)
	if roles, _ := r.body["roles"].([]any); !slices.Contains(roles, any("vendor")) || !slices.Contains(roles, any("customer")) {
		t.Errorf("after granting vendor: roles %v, want customer and vendor", r.body["roles"])
	}
	vendor := s.signIn(vendorEmail, testPassword)

	// The vendor lists two products.
	r = want(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": "FLOW-MUG-1", "name": "Flow Mug", "description": "A mug for flows", "price": json.Number("19.9"),
		"category": "home", "images": []string{"https://img.example/mug.png"}, "metadata": map[string]any{"color": "blue"},
		"quantity": 10, "warehouse": "eu-1",
	}), http.StatusCreated)
	wantPosition(t, r)
	mug := r.body
	mugID := str(mug, "id")
	wantUUID(t, "product id", mugID)
	if loc := r.header.Get("Location"); loc != "/api/products/"+mugID {
		t.Errorf("Location %q, want /api/products/%s", loc, mugID)
	}
	if r.header.Get("ETag") == "" {
		t.Error("product: no ETag")
	}
	if str(mug, "vendor_id") != vendor.id {
		t.Errorf("vendor_id %q, want the vendor %s", str(mug, "vendor_id"), vendor.id)
	}
	if str(mug, "sku") != "FLOW-MUG-1" || str(mug, "name") != "Flow Mug" || str(mug, "description") != "A mug for flows" || str(mug, "category") != "home" {
		t.Errorf("product fields: %v", mug)
	}
	wantMoney(t, "product price", mug["price"], "19.90")
	if imgs, _ := mug["images"].([]any); !slices.Equal(imgs, []any{"https://img.example/mug.png"}) {
		t.Errorf("images %v", mug["images"])
	}
	if meta := obj(t, mug["metadata"], "metadata"); str(meta, "color") != "blue" {
		t.Errorf("metadata %v", meta)
	}
	inv := obj(t, mug["inventory"], "inventory")
	if num(t, inv["quantity"]) != 10 || num(t, inv["reserved"]) != 0 || num(t, inv["available"]) != 10 || str(inv, "warehouse") != "eu-1" {
		t.Errorf("inventory %v, want quantity 10, reserved 0, available 10, warehouse eu-1", inv)
	}
	wantTime(t, "created_at", mug["created_at"])
	wantTime(t, "updated_at", mug["updated_at"])
	num(t, mug["version"])
	pen := s.createProduct(vendor, map[string]any{"sku": "FLOW-PEN-1", "name": "Flow Pen", "price": json.Number("5"), "quantity": 3})
	penID := str(pen, "id")
	if inv := obj(t, pen["inventory"], "inventory"); str(inv, "warehouse") == "" {
		t.Errorf("default warehouse is empty: %v", inv)
	}

	// The customer orders two mugs and a pen.
	r = want(t, s.placeOrder(customer, line{mugID, 2}, line{penID, 1}), http.StatusCreated)
	wantPosition(t, r)
	o := r.body
	orderID := str(o, "id")
	wantUUID(t, "order id", orderID)
	if loc := r.header.Get("Location"); loc != "/api/orders/"+orderID {
		t.Errorf("Location %q, want /api/orders/%s", loc, orderID)
	}
	if str(o, "status") != "pending" || str(o, "user_id") != customerID {
		t.Errorf("order: status %q user_id %q, want pending and %s", str(o, "status"), str(o, "user_id"), customerID)
	}
	if o["payment"] != nil || o["cancel_reason"] != nil {
		t.Errorf("a new order has payment %v and cancel_reason %v, want null", o["payment"], o["cancel_reason"])
	}
	if _, ok := o["payment"]; !ok {
		t.Error("order has no payment member (want null)")
	}
	wantMoney(t, "order total", o["total"], "44.80")
	wantTime(t, "created_at", o["created_at"])
	wantTime(t, "updated_at", o["updated_at"])
	num(t, o["version"])
	items, _ := o["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("items %v, want 2", o["items"])
	}
	wantItems := map[string]struct {
		sku, name, price string
		quantity         float64
	}{mugID: {"FLOW-MUG-1", "Flow Mug", "19.90", 2}, penID: {"FLOW-PEN-1", "Flow Pen", "5.00", 1}}
	for _, it := range items {
		it := obj(t, it, "item")
		w, ok := wantItems[str(it, "product_id")]
		if !ok {
			t.Errorf("item for unknown product: %v", it)
			continue
		}
		if str(it, "sku") != w.sku || str(it, "name") != w.name || num(t, it["quantity"]) != w.quantity {
			t.Errorf("item %v, want sku %s name %s quantity %v", it, w.sku, w.name, w.quantity)
		}
		wantMoney(t, "item price", it["price"], w.price)
	}
	if got := s.stockOf(vendor, mugID); got != (stock{10, 2, 8}) {
		t.Errorf("mug stock after ordering 2: %+v, want {10 2 8}", got)
	}

	// The price is captured: changing it now does not change the order.
	r = want(t, s.do(http.MethodPatch, "/api/products/"+mugID, vendor.token, map[string]any{"price": json.Number("25.00")}), http.StatusOK)
	wantMoney(t, "new price", r.body["price"], "25.00")

	// Pay.
	r = want(t, s.pay(customer, orderID, goodCard), http.StatusOK)
	wantPosition(t, r)
	if str(r.body, "status") != "paid" {
		t.Errorf("after paying: status %q", str(r.body, "status"))
	}
	wantMoney(t, "total after paying", r.body["total"], "44.80")
	pay := obj(t, r.body["payment"], "payment")
	if str(pay, "id") == "" || str(pay, "last4") != "4242" || pay["refunded"] != false {
		t.Errorf("payment %v, want an id, last4 4242, refunded false", pay)
	}
	wantMoney(t, "payment amount", pay["amount"], "44.80")
	if _, ok := pay["card_number"]; ok {
		t.Error("the payment shows the card number")
	}

	// An admin completes; the held stock leaves the shelf.
	r = want(t, s.complete(admin, orderID), http.StatusOK)
	wantPosition(t, r)
	if str(r.body, "status") != "completed" {
		t.Errorf("after completing: status %q", str(r.body, "status"))
	}
	s.waitStock(vendor, mugID, stock{8, 0, 8}, 10*time.Second)
	s.waitStock(admin, penID, stock{2, 0, 2}, 10*time.Second)

	// The events carry the request's correlation id.
	for _, e := range s.streamEvents("user-" + customerID) {
		if e.Correlation != "e2e-flow-42" {
			t.Errorf("event %s of the registration has correlation id %q, want e2e-flow-42", e.Type, e.Correlation)
		}
	}
}

// TestE2ECancel: cancelling releases stock and refunds a paid order; the
// status machine refuses what it must.
func TestE2ECancel(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "cancel-vendor", "vendor")
	customer := s.newUser(admin, "cancel-customer")
	p := s.product(vendor, 10, "12.50")

	// A pending order cancelled by its owner: stock released.
	o1 := s.order(customer, line{p, 3})
	if got := s.stockOf(vendor, p); got != (stock{10, 3, 7}) {
		t.Fatalf("stock with a pending order of 3: %+v", got)
	}
	r := want(t, s.cancel(customer, o1, map[string]any{"reason": "changed my mind"}), http.StatusOK)
	wantPosition(t, r)
	if str(r.body, "status") != "cancelled" || str(r.body, "cancel_reason") != "changed my mind" || r.body["payment"] != nil {
		t.Errorf("cancelled pending order: %v", r.body)
	}
	s.waitStock(vendor, p, stock{10, 0, 10}, 10*time.Second)
	wantProblem(t, s.cancel(customer, o1, nil), http.StatusConflict)
	wantProblem(t, s.pay(customer, o1, goodCard), http.StatusConflict)
	wantProblem(t, s.complete(admin, o1), http.StatusConflict)

	// Completing a pending order is refused.
	o2 := s.order(customer, line{p, 2})
	wantProblem(t, s.complete(admin, o2), http.StatusConflict)

	// A paid order cancelled: refunded, with a reason, stock released.
	want(t, s.pay(customer, o2, goodCard), http.StatusOK)
	r = want(t, s.cancel(customer, o2, nil), http.StatusOK)
	if str(r.body, "status") != "cancelled" || str(r.body, "cancel_reason") == "" {
		t.Errorf("cancelled paid order: status %q cancel_reason %v", str(r.body, "status"), r.body["cancel_reason"])
	}
	if pay := obj(t, r.body["payment"], "payment"); pay["refunded"] != true || str(pay, "last4") != "4242" {
		t.Errorf("payment of the cancelled paid order: %v, want refunded true", pay)
	}
	s.waitStock(vendor, p, stock{10, 0, 10}, 10*time.Second)
	wantProblem(t, s.cancel(customer, o2, nil), http.StatusConflict)
	wantProblem(t, s.cancel(admin, o2, nil), http.StatusConflict)
	wantProblem(t, s.complete(admin, o2), http.StatusConflict)
	wantProblem(t, s.pay(customer, o2, goodCard), http.StatusConflict)

	// A completed order cannot be cancelled, and keeps its stock deducted.
	o3 := s.order(customer, line{p, 1})
	want(t, s.pay(customer, o3, goodCard), http.StatusOK)
	want(t, s.complete(admin, o3), http.StatusOK)
	wantProblem(t, s.cancel(customer, o3, nil), http.StatusConflict)
	wantProblem(t, s.cancel(admin, o3, nil), http.StatusConflict)
	s.waitStock(vendor, p, stock{9, 0, 9}, 10*time.Second)

	// An admin may cancel a customer's order.
	o4 := s.order(customer, line{p, 4})
	r = want(t, s.cancel(admin, o4, map[string]any{"reason": "fraud check"}), http.StatusOK)
	if str(r.body, "cancel_reason") != "fraud check" {
		t.Errorf("admin cancel: %v", r.body)
	}
	s.waitStock(vendor, p, stock{9, 0, 9}, 10*time.Second)

	// The paid order's cancellation says it was refunded.
	c := cancellation(t, s, o2)
	if !c.Refunded {
		t.Errorf("order.cancelled of the paid order: %+v, want refunded", c)
	}
	if c := cancellation(t, s, o1); c.Refunded || c.Reason != "changed my mind" {
		t.Errorf("order.cancelled of the pending order: %+v, want reason \"changed my mind\", not refunded", c)
	}
}

// cancelled is the data of an order.cancelled event.
type cancelled struct {
	Reason   string `json:"reason"`
	Refunded bool   `json:"refunded"`
}

// cancellation returns the data of order id's one order.cancelled event.
func cancellation(t *testing.T, s *server, id string) cancelled {
	t.Helper()
	evs := s.streamEvents("order-" + id)
	var c cancelled
	n := 0
	for _, e := range evs {
		if e.Type == "order.cancelled" {
			n++
			if err := json.Unmarshal(e.Data, &c); err != nil {
				t.Fatalf("order.cancelled data %s: %v", e.Data, err)
			}
		}
	}
	if n != 1 {
		t.Fatalf("order %s has %d order.cancelled events (stream: %v), want 1", id, n, types(evs))
	}
	return c
}

// TestE2EOrderExpiry: an order left unpaid past ORDER_PAYMENT_TIMEOUT is
// cancelled with reason payment_timeout and its stock released; a paid one
// is left alone.
func TestE2EOrderExpiry(t *testing.T) {
	t.Parallel()
	s := newE2E(t, "ORDER_PAYMENT_TIMEOUT", "2s", "ORDER_PLACEMENT_GRACE", "1s", "SAGA_TICK", "100ms")
	admin := s.admin()
	vendor := s.newUser(admin, "expiry-vendor", "vendor")
	customer := s.newUser(admin, "expiry-customer")
	p := s.product(vendor, 10, "3.00")

	unpaid := s.order(customer, line{p, 3})
	paid := s.order(customer, line{p, 2})
	want(t, s.pay(customer, paid, goodCard), http.StatusOK)
	if got := s.stockOf(vendor, p); got != (stock{10, 5, 5}) {
		t.Fatalf("stock with two orders: %+v, want {10 5 5}", got)
	}

	// Only the unpaid order's 3 units come back.
	s.waitStock(vendor, p, stock{10, 2, 8}, 20*time.Second)
	wantProblem(t, s.pay(customer, unpaid, goodCard), http.StatusConflict)
	wantProblem(t, s.cancel(customer, unpaid, nil), http.StatusConflict)

	if c := cancellation(t, s, unpaid); c.Reason != "payment_timeout" || c.Refunded {
		t.Errorf("the unpaid order's cancellation: %+v, want reason payment_timeout, not refunded", c)
	}

	// The paid order was not expired: it completes, deducting its 2 units.
	want(t, s.complete(admin, paid), http.StatusOK)
	s.waitStock(vendor, p, stock{8, 0, 8}, 10*time.Second)
}

// TestE2EPaymentDecline: a declined card is a 402 and leaves the order
// pending; an invalid card is a 422 naming the fields.
func TestE2EPaymentDecline(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "decline-vendor", "vendor")
	customer := s.newUser(admin, "decline-customer")
	p := s.product(vendor, 5, "7.25")
	o := s.order(customer, line{p, 2})

	r := wantProblem(t, s.pay(customer, o, declinedCard), http.StatusPaymentRequired)
	if r.header.Get("X-Event-Position") != "" {
		t.Error("a declined payment answered with X-Event-Position")
	}
	wantProblem(t, s.pay(customer, o, "4000000000009995"), http.StatusPaymentRequired)

	// Invalid cards are refused before any charge.
	wantFieldErrors(t, s.pay(customer, o, "4242424242424241"), "payment_method.card_number")
	wantFieldErrors(t, s.post("/api/orders/"+o+"/pay", customer.token, map[string]any{"payment_method": map[string]any{
		"card_number": goodCard, "exp_month": 13, "exp_year": 2001, "cvc": "1",
	}}), "payment_method.exp_month", "payment_method.exp_year", "payment_method.cvc")
	wantFieldErrors(t, s.post("/api/orders/"+o+"/pay", customer.token, map[string]any{}), "payment_method")

	// Still pending, still holding its stock: a good card pays it.
	if got := s.stockOf(vendor, p); got != (stock{5, 2, 3}) {
		t.Errorf("stock after declines: %+v, want {5 2 3}", got)
	}
	r = want(t, s.pay(customer, o, goodCard), http.StatusOK)
	if str(r.body, "status") != "paid" {
		t.Errorf("after a decline then a good card: %v", r.body)
	}
	wantMoney(t, "amount", obj(t, r.body["payment"], "payment")["amount"], "14.50")
}

// TestE2EIdempotency: Idempotency-Key on placing and paying an order.
func TestE2EIdempotency(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "idem-vendor", "vendor")
	alice := s.newUser(admin, "idem-alice")
	bob := s.newUser(admin, "idem-bob")
	p := s.product(vendor, 10, "4.00")

	first := want(t, s.post("/api/orders", alice.token, orderBody(line{p, 2}), "Idempotency-Key", "order-key-1"), http.StatusCreated)
	again := want(t, s.post("/api/orders", alice.token, orderBody(line{p, 2}), "Idempotency-Key", "order-key-1"), http.StatusCreated)
	if string(first.raw) != string(again.raw) {
		t.Errorf("replay differs:\n first %s\n again %s", first.raw, again.raw)
	}
	if again.header.Get("Location") != first.header.Get("Location") || again.header.Get("X-Event-Position") != first.header.Get("X-Event-Position") {
		t.Errorf("replayed headers differ: Location %q vs %q", again.header.Get("Location"), first.header.Get("Location"))
	}
	orderID := str(first.body, "id")
	if got := s.stockOf(vendor, p); got != (stock{10, 2, 8}) {
		t.Errorf("stock after a replayed order: %+v, want one reservation of 2", got)
	}

	// Same key, another body: refused, nothing done.
	wantProblem(t, s.post("/api/orders", alice.token, orderBody(line{p, 3}), "Idempotency-Key", "order-key-1"), http.StatusUnprocessableEntity)
	if got := s.stockOf(vendor, p); got != (stock{10, 2, 8}) {
		t.Errorf("stock after a reused key with another body: %+v", got)
	}
	if n := countType(s.events(), "order.created"); n != 1 {
		t.Errorf("%d orders recorded, want 1", n)
	}

	// The stored answer is lost (the process died after the order was
	// written and before the answer was kept, or Redis lost the key): the
	// retry is answered with the same order, and nothing is done twice.
	s.forgetIdempotencyKeys()
	lost := want(t, s.post("/api/orders", alice.token, orderBody(line{p, 2}), "Idempotency-Key", "order-key-1"), http.StatusCreated)
	if str(lost.body, "id") != orderID || lost.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("retry after the stored answer was lost: order %s, want %s", str(lost.body, "id"), orderID)
	}
	s.forgetIdempotencyKeys()
	wantProblem(t, s.post("/api/orders", alice.token, orderBody(line{p, 3}), "Idempotency-Key", "order-key-1"), http.StatusUnprocessableEntity)
	if got := s.stockOf(vendor, p); got != (stock{10, 2, 8}) {
		t.Errorf("stock after retries whose stored answer was lost: %+v", got)
	}
	if n := countType(s.events(), "order.created"); n != 1 {
		t.Errorf("%d orders recorded after retries whose stored answer was lost, want 1", n)
	}

	// A key belongs to its caller: bob's same key is a new order.
	r := want(t, s.post("/api/orders", bob.token, orderBody(line{p, 2}), "Idempotency-Key", "order-key-1"), http.StatusCreated)
	if str(r.body, "id") == orderID {
		t.Error("another user's request with the same key got the first user's order")
	}
	if got := s.stockOf(vendor, p); got != (stock{10, 4, 6}) {
		t.Errorf("stock after bob's order: %+v", got)
	}

	// Paying.
	path := "/api/orders/" + orderID + "/pay"
	paid := want(t, s.post(path, alice.token, card(goodCard), "Idempotency-Key", "pay-key-1"), http.StatusOK)
	replay := want(t, s.post(path, alice.token, card(goodCard), "Idempotency-Key", "pay-key-1"), http.StatusOK)
	if string(paid.raw) != string(replay.raw) {
		t.Errorf("replayed payment differs:\n first %s\n again %s", paid.raw, replay.raw)
	}
	other := card(goodCard)
	other["payment_method"].(map[string]any)["cvc"] = "999"
	wantProblem(t, s.post(path, alice.token, other, "Idempotency-Key", "pay-key-1"), http.StatusUnprocessableEntity)
	s.forgetIdempotencyKeys()
	lostPay := want(t, s.post(path, alice.token, card(goodCard), "Idempotency-Key", "pay-key-1"), http.StatusOK)
	if str(lostPay.body, "status") != "paid" || str(obj(t, lostPay.body["payment"], "payment"), "id") != str(obj(t, paid.body["payment"], "payment"), "id") {
		t.Errorf("payment retried after the stored answer was lost: %s", lostPay.raw)
	}
	if n := countType(s.streamEvents("order-"+orderID), "order.paid"); n != 1 {
		t.Errorf("%d order.paid events, want 1", n)
	}
}

// forgetIdempotencyKeys deletes the run's stored idempotent answers, as a
// crash between a command's write and the storing of its answer would.
func (s *server) forgetIdempotencyKeys() {
	s.t.Helper()
	rdb, _ := redistest.New(s.t)
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, s.env["REDIS_KEY_PREFIX"]+"idem:*").Result()
	if err == nil && len(keys) > 0 {
		err = rdb.Del(ctx, keys...).Err()
	}
	if err != nil || len(keys) == 0 {
		s.t.Fatalf("forget idempotency keys: %d keys, %v", len(keys), err)
	}
}

// TestE2EInsufficientStock: an order for more than is available is a 409
// naming the product and what is available, and holds nothing.
func TestE2EInsufficientStock(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "stock-vendor", "vendor")
	customer := s.newUser(admin, "stock-customer")
	plenty := s.product(vendor, 10, "1.00")
	scarce := s.product(vendor, 1, "2.00")

	r := wantProblem(t, s.placeOrder(customer, line{plenty, 3}, line{scarce, 2}), http.StatusConflict)
	if str(r.body, "product_id") != scarce {
		t.Errorf("409 names product %q, want the scarce one %s: %s", str(r.body, "product_id"), scarce, r.raw)
	}
	if v, ok := r.body["available"]; !ok || num(t, v) != 1 {
		t.Errorf("409 says available %v, want 1: %s", r.body["available"], r.raw)
	}
	// The first line's reservation was given back; nothing was recorded.
	s.waitStock(vendor, plenty, stock{10, 0, 10}, 10*time.Second)
	s.waitStock(vendor, scarce, stock{1, 0, 1}, 10*time.Second)

	r = wantProblem(t, s.placeOrder(customer, line{plenty, 11}), http.StatusConflict)
	if str(r.body, "product_id") != plenty || num(t, r.body["available"]) != 10 {
		t.Errorf("409 for 11 of 10: %s", r.raw)
	}
	if n := countType(s.events(), "order.created"); n != 0 {
		t.Errorf("%d orders recorded after refused placements, want 0", n)
	}

	// Everything is still there to order.
	want(t, s.placeOrder(customer, line{plenty, 10}, line{scarce, 1}), http.StatusCreated)
	if got := s.stockOf(vendor, scarce); got != (stock{1, 1, 0}) {
		t.Errorf("scarce stock: %+v", got)
	}
}

// TestE2ERestart: a local run started again on the same data keeps its
// JWT secret (sessions survive), seeds nothing twice, and its process
// manager picks up orders placed before the restart.
func TestE2ERestart(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t)
	delete(env, "JWT_SECRET") // the local run makes one and keeps it in DATA_DIR
	s := startServer(t, env)
	admin := s.admin()
	vendor := s.newUser(admin, "restart-vendor", "vendor")
	customer := s.newUser(admin, "restart-customer")
	p := s.product(vendor, 5, "2.00")
	o := s.order(customer, line{p, 2})
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	info, err := os.Stat(filepath.Join(env["DATA_DIR"], "jwt-secret"))
	if err != nil {
		t.Fatalf("the local run kept no JWT secret: %v", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		t.Errorf("jwt-secret has mode %v, want it private to its owner", info.Mode().Perm())
	}

	env["ORDER_PAYMENT_TIMEOUT"], env["SAGA_TICK"] = "1s", "100ms"
	s = startServer(t, env)
	want(t, s.do(http.MethodGet, "/api/auth/me", admin.token, nil), http.StatusOK)
	want(t, s.do(http.MethodGet, "/api/auth/me", customer.token, nil), http.StatusOK)
	s.waitStock(vendor, p, stock{5, 0, 5}, 20*time.Second)
	wantProblem(t, s.pay(customer, o, goodCard), http.StatusConflict)

	evs := s.events()
	if n := countType(evs, "product.created"); n != len(demo.Catalogue)+1 {
		t.Errorf("%d products after a restart, want the %d seeded once and 1 listed", n, len(demo.Catalogue))
	}
	if n := countType(evs, "user.registered"); n != 5 {
		t.Errorf("%d users after a restart, want 3 seeded once and 2 registered", n)
	}
}

// TestE2EDiscontinuedWithOrders: discontinuing a product stops new orders
// but not the ones already placed.
func TestE2EDiscontinuedWithOrders(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "disc-vendor", "vendor")
	customer := s.newUser(admin, "disc-customer")
	p := s.product(vendor, 10, "5.00")
	kept := s.order(customer, line{p, 2})
	dropped := s.order(customer, line{p, 3})

	want(t, s.do(http.MethodDelete, "/api/products/"+p, vendor.token, nil), http.StatusNoContent)
	want(t, s.do(http.MethodDelete, "/api/products/"+p, vendor.token, nil), http.StatusNoContent) // again: no change
	wantFieldErrors(t, s.placeOrder(customer, line{p, 1}), "items[0].product_id")
	wantProblem(t, s.do(http.MethodPatch, "/api/products/"+p, vendor.token, map[string]any{"name": "Back?"}), http.StatusConflict)
	wantProblem(t, s.post("/api/products/"+p+"/inventory", vendor.token, map[string]any{"adjustment": 5, "reason": "restock"}), http.StatusConflict)

	want(t, s.pay(customer, kept, goodCard), http.StatusOK)
	want(t, s.complete(admin, kept), http.StatusOK)
	want(t, s.cancel(customer, dropped, nil), http.StatusOK)

	evs := s.streamEvents("product-" + p)
	if countType(evs, "inventory.deducted") != 1 || countType(evs, "inventory.released") != 1 {
		t.Errorf("product events %v, want one deduction and one release", types(evs))
	}
}

func types(evs []loggedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// TestE2EUnpaidOrdersAreBounded: one customer cannot hold a product's
// stock with unpaid orders beyond MAX_UNPAID_ORDERS orders and
// MAX_UNPAID_UNITS units; a refusal reserves nothing, and paying or
// cancelling an order makes room at once. Admins are not bounded.
func TestE2EUnpaidOrdersAreBounded(t *testing.T) {
	t.Parallel()
	s := newE2E(t, "MAX_UNPAID_ORDERS", "3", "MAX_UNPAID_UNITS", "10")
	admin := s.admin()
	vendor := s.newUser(admin, "hoard-vendor", "vendor")
	hoarder := s.newUser(admin, "hoard-customer")
	p := s.product(vendor, 50, "1.00")

	var ids []string
	for range 3 {
		ids = append(ids, s.order(hoarder, line{p, 2}))
	}
	r := wantProblem(t, s.placeOrder(hoarder, line{p, 1}), http.StatusConflict)
	if code := str(r.body, "code"); code != "too_many_unpaid_orders" || num(t, r.body["limit"]) != 3 {
		t.Errorf("a fourth unpaid order: %s, want too_many_unpaid_orders with limit 3", r.raw)
	}
	if got := s.stockOf(vendor, p); got != (stock{50, 6, 44}) {
		t.Errorf("stock after a refused order: %+v, want 6 reserved", got)
	}

	want(t, s.pay(hoarder, ids[0], goodCard), http.StatusOK)
	ids = append(ids, s.order(hoarder, line{p, 2}))
	want(t, s.cancel(hoarder, ids[1], nil), http.StatusOK)
	r = wantProblem(t, s.placeOrder(hoarder, line{p, 7}), http.StatusConflict)
	if code := str(r.body, "code"); code != "too_many_unpaid_units" || num(t, r.body["limit"]) != 10 {
		t.Errorf("4 units unpaid and 7 more: %s, want too_many_unpaid_units with limit 10", r.raw)
	}
	s.order(hoarder, line{p, 6})

	for range 4 {
		s.order(admin, line{p, 5})
	}
}
