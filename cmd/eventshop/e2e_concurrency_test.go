package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestE2EConcurrentOrders: N concurrent orders against stock S give exactly
// min(N, S) orders over HTTP, and the rest a 409 naming the product.
func TestE2EConcurrentOrders(t *testing.T) {
	t.Parallel()
	const stockUnits, customers = 5, 20
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "race-vendor", "vendor")
	p := s.product(vendor, stockUnits, "1.00")

	// Register the customers a few at a time (argon2id is memory-hard and
	// slow under -race) and give each a token signed with the run's
	// JWT_SECRET, as a login would: sign-in is tested elsewhere.
	buyers := make([]*account, customers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range buyers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			email := uniqueEmail("race-customer")
			r := s.post("/api/auth/register", "", map[string]any{"email": email, "password": testPassword, "full_name": "Racer"})
			if r.status != http.StatusCreated {
				t.Errorf("register: %s", r)
				return
			}
			id := str(r.body, "id")
			buyers[i] = &account{id: id, email: email, token: forge(t, jwt.SigningMethodHS256, []byte(e2eSecret), "at+jwt", accessClaims(id, nil))}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// All at once.
	start := make(chan struct{})
	results := make([]*response, customers)
	for i, b := range buyers {
		wg.Go(func() {
			<-start
			results[i] = s.post("/api/orders", b.token, orderBody(line{p, 1}))
		})
	}
	close(start)
	wg.Wait()

	created, conflicts := 0, 0
	for _, r := range results {
		switch r.status {
		case http.StatusCreated:
			created++
			if str(r.body, "status") != "pending" {
				t.Errorf("created order: %s", r)
			}
		case http.StatusConflict:
			conflicts++
			wantProblem(t, r, http.StatusConflict)
			if str(r.body, "product_id") != p || num(t, r.body["available"]) != 0 {
				t.Errorf("409 should name the product and 0 available: %s", r.raw)
			}
		default:
			t.Errorf("unexpected answer: %s", r)
		}
	}
	if created != stockUnits || conflicts != customers-stockUnits {
		t.Errorf("%d created and %d conflicts, want %d and %d", created, conflicts, stockUnits, customers-stockUnits)
	}
	if got := s.stockOf(vendor, p); got != (stock{stockUnits, stockUnits, 0}) {
		t.Errorf("stock after the rush: %+v, want {%d %d 0}", got, stockUnits, stockUnits)
	}
	evs := s.events()
	if n := countType(evs, "order.created"); n != stockUnits {
		t.Errorf("%d order.created events, want %d", n, stockUnits)
	}
	if n, rel := countType(evs, "inventory.reserved"), countType(evs, "inventory.released"); n-rel != stockUnits {
		t.Errorf("%d reservations and %d releases, want %d net", n, rel, stockUnits)
	}
}

// TestE2EConcurrentPayments: a customer double-clicking "pay" (the same
// card, concurrently, no Idempotency-Key) pays once, and the payment the
// order records is real money: cancelling the order refunds it.
func TestE2EConcurrentPayments(t *testing.T) {
	t.Parallel()
	const clicks = 10
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "paying-vendor", "vendor")
	customer := s.newUser(admin, "paying-customer")
	p := s.product(vendor, 100, "10.00")

	for round := range 6 {
		o := s.order(customer, line{p, 1})
		start := make(chan struct{})
		results := make([]*response, clicks)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				<-start
				results[i] = s.pay(customer, o, goodCard)
			})
		}
		close(start)
		wg.Wait()
		paid := 0
		for _, r := range results {
			switch r.status {
			case http.StatusOK:
				paid++
			case http.StatusConflict:
			default:
				t.Errorf("round %d: %s", round, r)
			}
		}
		if n := countType(s.streamEvents("order-"+o), "order.paid"); paid != 1 || n != 1 {
			t.Errorf("round %d: %d payments answered 200 and %d order.paid recorded, want 1 and 1", round, paid, n)
		}
		// The order's payment was not refunded behind its back: the
		// cancellation refunds it, once.
		r := s.cancel(customer, o, nil)
		if r.status != http.StatusOK {
			t.Errorf("round %d: cancelling the paid order: %s, want 200 with the payment refunded", round, r)
			continue
		}
		if pay := obj(t, r.body["payment"], "payment"); pay["refunded"] != true {
			t.Errorf("round %d: payment after cancelling %v, want refunded", round, pay)
		}
	}
}

// TestE2EConcurrentUniqueness: one email and one SKU, claimed by several
// requests at once, go to exactly one of them.
func TestE2EConcurrentUniqueness(t *testing.T) {
	t.Parallel()
	const racers = 5
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "unique-vendor", "vendor")

	race := func(what string, send func(i int) *response) {
		t.Helper()
		start := make(chan struct{})
		results := make([]*response, racers)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				<-start
				results[i] = send(i)
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for _, r := range results {
			switch r.status {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				wantProblem(t, r, http.StatusConflict)
			default:
				t.Errorf("%s: %s", what, r)
			}
		}
		if created != 1 {
			t.Errorf("%s: %d of %d concurrent requests created it, want exactly 1", what, created, racers)
		}
	}
	email := uniqueEmail("same")
	race("register one email", func(i int) *response {
		e := email
		if i%2 == 1 {
			e = strings.ToUpper(email)
		}
		return s.post("/api/auth/register", "", map[string]any{"email": e, "password": testPassword, "full_name": "Racer"})
	})
	race("list one SKU", func(i int) *response {
		return s.post("/api/products", vendor.token, map[string]any{"sku": "RACE-SKU", "name": "Racer", "price": 1, "quantity": 1})
	})

	// Two admins revoking each other at once: one admin is left.
	second := s.newUser(admin, "unique-admin", "admin")
	var wg sync.WaitGroup
	var a, b *response
	wg.Go(func() { a = s.do(http.MethodDelete, "/api/users/"+second.id+"/roles/admin", admin.token, nil) })
	wg.Go(func() { b = s.do(http.MethodDelete, "/api/users/"+admin.id+"/roles/admin", second.token, nil) })
	wg.Wait()
	admins := 0
	for _, u := range []*account{admin, second} {
		me := want(t, s.do(http.MethodGet, "/api/auth/me", u.token, nil), http.StatusOK)
		if roles, _ := me.body["roles"].([]any); containsAny(roles, "admin") {
			admins++
		}
	}
	if admins != 1 {
		t.Errorf("after two admins revoked each other (%d, %d): %d admins left, want 1", a.status, b.status, admins)
	}
}

// TestE2EConcurrentIdempotentOrders: retries of one Idempotency-Key sent
// at once place one order.
func TestE2EConcurrentIdempotentOrders(t *testing.T) {
	t.Parallel()
	const retries = 6
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "idem-race-vendor", "vendor")
	customer := s.newUser(admin, "idem-race-customer")
	p := s.product(vendor, 50, "1.00")

	start := make(chan struct{})
	results := make([]*response, retries)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			<-start
			results[i] = s.post("/api/orders", customer.token, orderBody(line{p, 3}), "Idempotency-Key", "same-click")
		})
	}
	close(start)
	wg.Wait()
	orderID := ""
	for _, r := range results {
		switch r.status {
		case http.StatusCreated:
			if orderID == "" {
				orderID = str(r.body, "id")
			} else if str(r.body, "id") != orderID {
				t.Errorf("two orders for one key: %s and %s", orderID, str(r.body, "id"))
			}
		case http.StatusConflict: // still in flight: retry later
			wantProblem(t, r, http.StatusConflict)
			if r.header.Get("Retry-After") == "" {
				t.Errorf("in-flight 409 without Retry-After: %s", r)
			}
		default:
			t.Errorf("unexpected: %s", r)
		}
	}
	// A retry now gets the order.
	r := want(t, s.post("/api/orders", customer.token, orderBody(line{p, 3}), "Idempotency-Key", "same-click"), http.StatusCreated)
	if orderID != "" && str(r.body, "id") != orderID {
		t.Errorf("retry got order %s, the first got %s", str(r.body, "id"), orderID)
	}
	if got := s.stockOf(vendor, p); got != (stock{50, 3, 47}) {
		t.Errorf("stock after %d concurrent retries: %+v, want one reservation of 3", retries, got)
	}
	if n := countType(s.events(), "order.created"); n != 1 {
		t.Errorf("%d orders recorded, want 1", n)
	}
}

// TestE2EConcurrentOrderTransitions: an admin completing while the
// customer cancels, and a customer paying while cancelling: exactly one
// outcome wins, the stock follows it, and money is refunded only when the
// order ends cancelled after a payment.
func TestE2EConcurrentOrderTransitions(t *testing.T) {
	t.Parallel()
	const rounds = 6
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "transit-vendor", "vendor")
	customer := s.newUser(admin, "transit-customer")
	p := s.product(vendor, 1000, "3.00")

	both := func(a, b func() *response) (*response, *response) {
		start := make(chan struct{})
		var ra, rb *response
		var wg sync.WaitGroup
		wg.Go(func() { <-start; ra = a() })
		wg.Go(func() { <-start; rb = b() })
		close(start)
		wg.Wait()
		return ra, rb
	}
	sold := int64(0)
	for round := range rounds {
		// Complete vs cancel on a paid order.
		o := s.order(customer, line{p, 2})
		want(t, s.pay(customer, o, goodCard), http.StatusOK)
		done, cancelled := both(func() *response { return s.complete(admin, o) }, func() *response { return s.cancel(customer, o, nil) })
		evs := s.streamEvents("order-" + o)
		switch {
		case done.status == http.StatusOK && cancelled.status == http.StatusConflict:
			sold += 2
			if countType(evs, "order.cancelled")+countType(evs, "order.refunded") != 0 {
				t.Errorf("round %d: completed, yet %v", round, types(evs))
			}
		case done.status == http.StatusConflict && cancelled.status == http.StatusOK:
			if pay := obj(t, cancelled.body["payment"], "payment"); pay["refunded"] != true {
				t.Errorf("round %d: cancelled paid order not refunded: %s", round, cancelled.raw)
			}
			if countType(evs, "order.completed") != 0 || !cancellation(t, s, o).Refunded {
				t.Errorf("round %d: cancelled, yet %v", round, types(evs))
			}
		default:
			t.Errorf("round %d: complete %s; cancel %s; want one 200 and one 409", round, done, cancelled)
		}

		// Pay vs cancel on a pending order.
		o = s.order(customer, line{p, 1})
		paid, cancelled := both(func() *response { return s.pay(customer, o, goodCard) }, func() *response { return s.cancel(customer, o, nil) })
		if cancelled.status != http.StatusOK {
			t.Errorf("round %d: cancel racing pay: %s", round, cancelled)
			continue
		}
		c := cancellation(t, s, o)
		evs = s.streamEvents("order-" + o)
		switch paid.status {
		case http.StatusOK: // paid first, then cancelled: refunded
			if !c.Refunded || countType(evs, "order.paid") != 1 {
				t.Errorf("round %d: paid then cancelled: %v, cancellation %+v", round, types(evs), c)
			}
		case http.StatusConflict: // cancelled first: nothing to refund
			if c.Refunded || countType(evs, "order.paid") != 0 {
				t.Errorf("round %d: cancelled before paying: %v, cancellation %+v", round, types(evs), c)
			}
		default:
			t.Errorf("round %d: pay racing cancel: %s", round, paid)
		}
	}
	s.waitStock(vendor, p, stock{1000 - sold, 0, 1000 - sold}, 10*time.Second)
}
