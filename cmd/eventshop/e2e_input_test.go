package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestE2EMassAssignment: a client cannot set through the body what it
// does not control (owner, roles, status, stock).
func TestE2EMassAssignment(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "mass-vendor", "vendor")
	customer := s.newUser(admin, "mass-customer")
	p := s.product(vendor, 10, "6.00")

	// A vendor naming an owner: refused, not silently honoured.
	wantFieldErrors(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": "MASS-1", "name": "Hijack", "price": 1, "quantity": 1, "vendor_id": admin.id,
	}), "vendor_id")
	// An admin may list for a named vendor.
	r := want(t, s.post("/api/products", admin.token, map[string]any{
		"sku": "MASS-ADMIN-1", "name": "Listed by admin", "price": json.Number("2.50"), "quantity": 4, "vendor_id": vendor.id,
	}), http.StatusCreated)
	if str(r.body, "vendor_id") != vendor.id {
		t.Errorf("admin listing for vendor %s: vendor_id %q", vendor.id, str(r.body, "vendor_id"))
	}
	adminListed := str(r.body, "id")
	// ... and that vendor owns it.
	want(t, s.do(http.MethodPatch, "/api/products/"+adminListed, vendor.token, map[string]any{"name": "Mine"}), http.StatusOK)
	// The vendor an admin names must be a user: ids are UUIDs, and a
	// product owned by nobody could never be managed by its vendor.
	for _, id := range []string{"not-a-user", uuid.NewString()} {
		r := s.post("/api/products", admin.token, map[string]any{"sku": "ORPHAN-" + id[:8], "name": "Orphan", "price": 1, "quantity": 1, "vendor_id": id})
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("admin listing for vendor_id %q, which names no user: %s, want 422 naming vendor_id", id, r)
		}
	}
	// Without vendor_id, an admin lists as themself.
	r = want(t, s.post("/api/products", admin.token, map[string]any{"sku": "MASS-ADMIN-2", "name": "Own", "price": 1, "quantity": 1}), http.StatusCreated)
	if str(r.body, "vendor_id") != admin.id {
		t.Errorf("admin listing without vendor_id: vendor_id %q, want the admin %s", str(r.body, "vendor_id"), admin.id)
	}

	// Fields nobody may send are unknown fields: 400.
	email := uniqueEmail("mass")
	for _, tc := range []struct {
		name, method, path, token string
		body                      map[string]any
	}{
		{"roles on register", "POST", "/api/auth/register", "", map[string]any{"email": email, "password": testPassword, "full_name": "Mass", "roles": []string{"admin"}}},
		{"id on register", "POST", "/api/auth/register", "", map[string]any{"email": email, "password": testPassword, "full_name": "Mass", "id": uuid.NewString()}},
		{"stock on product", "POST", "/api/products", vendor.token, map[string]any{"sku": "MASS-2", "name": "X", "price": 1, "quantity": 1, "stock": 99}},
		{"reserved on product", "POST", "/api/products", vendor.token, map[string]any{"sku": "MASS-3", "name": "X", "price": 1, "quantity": 1, "reserved": -5}},
		{"inventory on product", "POST", "/api/products", vendor.token, map[string]any{"sku": "MASS-4", "name": "X", "price": 1, "quantity": 1, "inventory": map[string]any{"reserved": 0}}},
		{"status on product", "POST", "/api/products", vendor.token, map[string]any{"sku": "MASS-5", "name": "X", "price": 1, "quantity": 1, "status": "active"}},
		{"vendor_id on patch", "PATCH", "/api/products/" + p, vendor.token, map[string]any{"vendor_id": admin.id}},
		{"quantity on patch", "PATCH", "/api/products/" + p, vendor.token, map[string]any{"quantity": 1000}},
		{"reserved on patch", "PATCH", "/api/products/" + p, vendor.token, map[string]any{"reserved": 0}},
		{"sku on patch", "PATCH", "/api/products/" + p, vendor.token, map[string]any{"sku": "OTHER"}},
		{"reserved on inventory", "POST", "/api/products/" + p + "/inventory", vendor.token, map[string]any{"adjustment": 1, "reason": "r", "reserved": 0}},
		{"status on order", "POST", "/api/orders", customer.token, map[string]any{"items": []any{map[string]any{"product_id": p, "quantity": 1}}, "status": "paid"}},
		{"user_id on order", "POST", "/api/orders", customer.token, map[string]any{"items": []any{map[string]any{"product_id": p, "quantity": 1}}, "user_id": admin.id}},
		{"total on order", "POST", "/api/orders", customer.token, map[string]any{"items": []any{map[string]any{"product_id": p, "quantity": 1}}, "total": 0.01}},
		{"price on an order line", "POST", "/api/orders", customer.token, map[string]any{"items": []any{map[string]any{"product_id": p, "quantity": 1, "price": 0.01}}}},
		{"status on cancel", "POST", "/api/orders/" + uuid.NewString() + "/cancel", customer.token, map[string]any{"status": "completed"}},
		{"roles on grant", "POST", "/api/users/" + customer.id + "/roles", admin.token, map[string]any{"role": "vendor", "roles": []string{"admin"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, s.do(tc.method, tc.path, tc.token, tc.body), http.StatusBadRequest)
		})
	}

	// None of it took: the email is free, the stock untouched, no order made.
	s.register(email, testPassword, "Mass")
	if u := s.signIn(email, testPassword); u.id == "" {
		t.Error("registering after the refused attempts failed")
	}
	if got := s.stockOf(vendor, p); got != (stock{10, 0, 10}) {
		t.Errorf("stock after refused bodies: %+v", got)
	}
	if n := countType(s.events(), "order.created"); n != 0 {
		t.Errorf("%d orders created by refused bodies", n)
	}
	me := want(t, s.do(http.MethodGet, "/api/auth/me", customer.token, nil), http.StatusOK)
	if roles, _ := me.body["roles"].([]any); len(roles) != 1 || roles[0] != "customer" {
		t.Errorf("customer roles after refused bodies: %v", me.body["roles"])
	}
}

// TestE2EInputErrors: malformed, oversized, mistyped and invalid requests,
// and conflicts with the current state.
func TestE2EInputErrors(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "input-vendor", "vendor")
	customer := s.newUser(admin, "input-customer")
	p := s.product(vendor, 10, "8.00")

	t.Run("malformed JSON", func(t *testing.T) {
		wantProblem(t, s.post("/api/auth/register", "", rawBody(`{"email": "a@b.co", "password":`)), http.StatusBadRequest)
		wantProblem(t, s.post("/api/auth/login", "", rawBody(`not json`)), http.StatusBadRequest)
		wantProblem(t, s.post("/api/products", vendor.token, rawBody(`{"sku": "X"} {"sku": "Y"}`)), http.StatusBadRequest)
		wantProblem(t, s.post("/api/auth/register", "", rawBody(``)), http.StatusBadRequest)
	})
	t.Run("wrong JSON types", func(t *testing.T) {
		// A value of the wrong type is named by its field, in the API's
		// words: no Go types in what the client reads.
		noGo := func(r *response) {
			t.Helper()
			for _, leak := range []string{"struct", "int64", "json.Number", "[]", "json:"} {
				if strings.Contains(string(r.raw), leak) {
					t.Errorf("%s: the problem shows Go internals (%q)", r, leak)
					return
				}
			}
		}
		r := s.post("/api/auth/register", "", map[string]any{"email": "x@y.co", "password": 12345678, "full_name": "X"})
		wantFieldErrors(t, r, "password")
		noGo(r)
		r = s.post("/api/products", vendor.token, map[string]any{"sku": "TYPE-1", "name": "X", "price": true, "quantity": 1})
		wantFieldErrors(t, r, "price")
		noGo(r)
		r = s.post("/api/products", vendor.token, map[string]any{"sku": "TYPE-2", "name": "X", "price": 1, "quantity": 1.5})
		wantFieldErrors(t, r, "quantity")
		noGo(r)
		r = s.post("/api/orders", customer.token, rawBody(`{"items": [{"product_id": "`+p+`", "quantity": "2"}]}`))
		wantProblem(t, r, http.StatusUnprocessableEntity)
		noGo(r)
		r = s.post("/api/orders", customer.token, rawBody(`{"items": {"product_id": "`+p+`"}}`))
		wantProblem(t, r, http.StatusUnprocessableEntity)
		noGo(r)
		// Money is a JSON number, not a string.
		r = s.post("/api/products", vendor.token, map[string]any{"sku": "TYPE-3", "name": "X", "price": "19.99", "quantity": 1})
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: want 422 for a price sent as a string", r)
		}
		// A body that is JSON but not an object is not a request at all.
		for _, body := range []string{`[1,2,3]`, `"items"`, `42`, `null`} {
			r = s.post("/api/orders", customer.token, rawBody(body))
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: want 400 for a body that is not a JSON object", r)
			}
			noGo(r)
		}
	})
	t.Run("body over 1 MiB", func(t *testing.T) {
		big := rawBody(`{"email": "big@example.org", "password": "` + strings.Repeat("x", 1<<20) + `", "full_name": "Big"}`)
		wantProblem(t, s.post("/api/auth/register", "", big), http.StatusRequestEntityTooLarge)
		bigOrder := rawBody(`{"items": [{"product_id": "` + strings.Repeat("x", 1<<20) + `", "quantity": 1}]}`)
		wantProblem(t, s.post("/api/orders", customer.token, bigOrder), http.StatusRequestEntityTooLarge)
		wantProblem(t, s.post("/api/orders", customer.token, bigOrder, "Idempotency-Key", "big-1"), http.StatusRequestEntityTooLarge)
	})
	t.Run("wrong content type", func(t *testing.T) {
		body := map[string]any{"email": uniqueEmail("ct"), "password": testPassword, "full_name": "CT"}
		wantProblem(t, s.post("/api/auth/register", "", body, "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
		wantProblem(t, s.post("/api/auth/register", "", body, "Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType)
		wantProblem(t, s.post("/api/orders", customer.token, orderBody(line{p, 1}), "Content-Type", "text/xml"), http.StatusUnsupportedMediaType)
		want(t, s.post("/api/auth/register", "", body, "Content-Type", "application/json; charset=utf-8"), http.StatusCreated)
	})
	t.Run("register", func(t *testing.T) {
		wantFieldErrors(t, s.post("/api/auth/register", "", map[string]any{"email": "not-an-email", "password": testPassword, "full_name": "X"}), "email")
		wantFieldErrors(t, s.post("/api/auth/register", "", map[string]any{"email": uniqueEmail("short"), "password": "1234567", "full_name": "X"}), "password")
		wantFieldErrors(t, s.post("/api/auth/register", "", map[string]any{"email": "", "password": "", "full_name": ""}), "email", "password", "full_name")
		wantFieldErrors(t, s.post("/api/auth/register", "", map[string]any{"email": "x@y.co", "password": 12345678, "full_name": "X"}), "password")
		wantFieldErrors(t, s.post("/api/auth/register", "", map[string]any{"email": "Bob <bob@example.org>", "password": testPassword, "full_name": "X"}), "email")
		wantFieldErrors(t, s.post("/api/auth/register", "", map[string]any{"email": uniqueEmail("ctl"), "password": testPassword, "full_name": "Bad\u0000Name"}), "full_name")
		// Case-insensitive uniqueness.
		local := "dup-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
		s.register("User."+local+"@X.com", testPassword, "First")
		wantProblem(t, s.post("/api/auth/register", "", map[string]any{"email": "user." + local + "@x.com", "password": testPassword, "full_name": "Second"}), http.StatusConflict)
		wantProblem(t, s.post("/api/auth/register", "", map[string]any{"email": "  USER." + strings.ToUpper(local) + "@X.COM ", "password": testPassword, "full_name": "Third"}), http.StatusConflict)
		// The first owner keeps the account.
		s.signIn("user."+local+"@x.com", testPassword)
	})
	t.Run("product", func(t *testing.T) {
		base := func(kv ...any) map[string]any {
			b := map[string]any{"sku": "IN-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8], "name": "Input", "price": 1, "quantity": 1}
			for i := 0; i+1 < len(kv); i += 2 {
				b[kv[i].(string)] = kv[i+1]
			}
			return b
		}
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("price", 0)), "price")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("price", -5)), "price")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("price", json.Number("1.999"))), "price")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("quantity", -1)), "quantity")
		noSKU := base()
		delete(noSKU, "sku")
		wantFieldErrors(t, s.post("/api/products", vendor.token, noSKU), "sku")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("name", "  ")), "name")
		noPrice := base()
		delete(noPrice, "price")
		wantFieldErrors(t, s.post("/api/products", vendor.token, noPrice), "price")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("sku", "", "name", "", "price", 0, "quantity", -1)), "sku", "name", "price", "quantity")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("images", []string{"javascript:alert(1)"})), "images")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("metadata", []int{1})), "metadata")
		wantFieldErrors(t, s.post("/api/products", vendor.token, base("sku", "has spaces/and slashes")), "sku")
		// Duplicate SKU, in any case.
		s.createProduct(vendor, map[string]any{"sku": "DUP-SKU-1"})
		wantProblem(t, s.post("/api/products", vendor.token, base("sku", "DUP-SKU-1")), http.StatusConflict)
		wantProblem(t, s.post("/api/products", admin.token, base("sku", "dup-sku-1")), http.StatusConflict)
		// Price changes are checked too.
		wantFieldErrors(t, s.do(http.MethodPatch, "/api/products/"+p, vendor.token, map[string]any{"price": 0}), "price")
		wantProblem(t, s.do(http.MethodPatch, "/api/products/"+uuid.NewString(), admin.token, map[string]any{"name": "Ghost"}), http.StatusNotFound)
	})
	t.Run("order", func(t *testing.T) {
		wantFieldErrors(t, s.post("/api/orders", customer.token, map[string]any{"items": []any{}}), "items")
		wantFieldErrors(t, s.post("/api/orders", customer.token, map[string]any{}), "items")
		wantFieldErrors(t, s.placeOrder(customer, line{p, 0}), "items[0].quantity")
		wantFieldErrors(t, s.placeOrder(customer, line{p, -2}), "items[0].quantity")
		wantFieldErrors(t, s.placeOrder(customer, line{p, 1}, line{p, 1}), "items[1].product_id")
		r := s.placeOrder(customer, line{p, 1}, line{uuid.NewString(), 1})
		wantFieldErrors(t, r, "items[1].product_id")
		wantFieldErrors(t, s.placeOrder(customer, line{"not-a-uuid", 1}), "items[0].product_id")
		gone := s.product(vendor, 5, "1.00")
		r = s.do(http.MethodDelete, "/api/products/"+gone, vendor.token, nil)
		want(t, r, http.StatusNoContent)
		wantPosition(t, r)
		wantFieldErrors(t, s.placeOrder(customer, line{gone, 1}), "items[0].product_id")
		// None of it held stock.
		if got := s.stockOf(vendor, p); got != (stock{10, 0, 10}) {
			t.Errorf("stock after refused orders: %+v", got)
		}
	})
	t.Run("roles", func(t *testing.T) {
		wantFieldErrors(t, s.post("/api/users/"+customer.id+"/roles", admin.token, map[string]any{"role": "superuser"}), "role")
		wantFieldErrors(t, s.post("/api/users/"+customer.id+"/roles", admin.token, map[string]any{}), "role")
		wantFieldErrors(t, s.do(http.MethodDelete, "/api/users/"+customer.id+"/roles/superuser", admin.token, nil), "role")
		wantProblem(t, s.post("/api/users/"+uuid.NewString()+"/roles", admin.token, map[string]any{"role": "vendor"}), http.StatusNotFound)
		// The last admin keeps the role; with a second admin it can go.
		wantProblem(t, s.do(http.MethodDelete, "/api/users/"+admin.id+"/roles/admin", admin.token, nil), http.StatusConflict)
		second := s.newUser(admin, "second-admin", "admin")
		r := want(t, s.do(http.MethodDelete, "/api/users/"+admin.id+"/roles/admin", second.token, nil), http.StatusOK)
		wantPosition(t, r)
		if roles, _ := r.body["roles"].([]any); containsAny(roles, "admin") {
			t.Errorf("roles after revoking admin: %v", r.body["roles"])
		}
		wantProblem(t, s.do(http.MethodDelete, "/api/users/"+second.id+"/roles/admin", second.token, nil), http.StatusConflict)
		want(t, s.post("/api/users/"+admin.id+"/roles", second.token, map[string]any{"role": "admin"}), http.StatusOK)
	})
	t.Run("If-Match", func(t *testing.T) {
		created := want(t, s.post("/api/products", vendor.token, map[string]any{"sku": "ETAG-1", "name": "Versioned", "price": 3, "quantity": 5}), http.StatusCreated)
		id, etag := str(created.body, "id"), created.header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag on a created product")
		}
		r := want(t, s.do(http.MethodPatch, "/api/products/"+id, vendor.token, map[string]any{"name": "Versioned v2"}, "If-Match", etag), http.StatusOK)
		next := r.header.Get("ETag")
		if next == "" || next == etag {
			t.Fatalf("ETag after a change: %q (was %q)", next, etag)
		}
		wantProblem(t, s.do(http.MethodPatch, "/api/products/"+id, vendor.token, map[string]any{"name": "Lost update"}, "If-Match", etag), http.StatusPreconditionFailed)
		wantProblem(t, s.post("/api/products/"+id+"/inventory", vendor.token, map[string]any{"adjustment": 1, "reason": "count"}, "If-Match", etag), http.StatusPreconditionFailed)
		wantProblem(t, s.do(http.MethodDelete, "/api/products/"+id, vendor.token, nil, "If-Match", etag), http.StatusPreconditionFailed)
		r = want(t, s.do(http.MethodPatch, "/api/products/"+id, vendor.token, map[string]any{"name": "Versioned v3"}, "If-Match", next), http.StatusOK)
		if str(r.body, "name") != "Versioned v3" {
			t.Errorf("name %q", str(r.body, "name"))
		}
		wantProblem(t, s.do(http.MethodPatch, "/api/products/"+id, vendor.token, map[string]any{"name": "Junk"}, "If-Match", "banana"), http.StatusBadRequest)

		// Orders too.
		placed := want(t, s.placeOrder(customer, line{id, 1}), http.StatusCreated)
		o, placedTag := str(placed.body, "id"), placed.header.Get("ETag")
		wantProblem(t, s.post("/api/orders/"+o+"/pay", customer.token, card(goodCard), "If-Match", `"7"`), http.StatusPreconditionFailed)
		paid := want(t, s.post("/api/orders/"+o+"/pay", customer.token, card(goodCard), "If-Match", placedTag), http.StatusOK)
		wantProblem(t, s.post("/api/orders/"+o+"/cancel", customer.token, nil, "If-Match", placedTag), http.StatusPreconditionFailed)
		want(t, s.post("/api/orders/"+o+"/cancel", customer.token, nil, "If-Match", paid.header.Get("ETag")), http.StatusOK)
	})
	t.Run("inventory", func(t *testing.T) {
		q := s.product(vendor, 5, "2.00")
		s.order(customer, line{q, 4})
		r := wantProblem(t, s.post("/api/products/"+q+"/inventory", vendor.token, map[string]any{"adjustment": -2, "reason": "breakage"}), http.StatusConflict)
		if r.header.Get("X-Event-Position") != "" {
			t.Error("a refused adjustment answered with X-Event-Position")
		}
		r = want(t, s.post("/api/products/"+q+"/inventory", vendor.token, map[string]any{"adjustment": -1, "reason": "breakage", "warehouse": "eu-2"}), http.StatusOK)
		wantPosition(t, r)
		inv := obj(t, r.body["inventory"], "inventory")
		if num(t, inv["quantity"]) != 4 || num(t, inv["reserved"]) != 4 || num(t, inv["available"]) != 0 || str(inv, "warehouse") != "eu-2" {
			t.Errorf("inventory after -1: %v", inv)
		}
		wantFieldErrors(t, s.post("/api/products/"+q+"/inventory", vendor.token, map[string]any{"adjustment": 0, "reason": ""}), "adjustment", "reason")
		wantProblem(t, s.placeOrder(customer, line{q, 1}), http.StatusConflict)
	})
}

func containsAny(list []any, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestE2EProtocol: what every route shares: health, correlation ids,
// problem+json for routes and methods that do not exist, header limits.
func TestE2EProtocol(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	customer := s.signIn("customer@example.com", "Customer123!")

	for _, svc := range []string{"auth", "products", "orders", "notifications"} {
		r := want(t, s.do(http.MethodGet, "/api/"+svc+"/health", "", nil), http.StatusOK)
		if str(r.body, "status") != "ok" {
			t.Errorf("/api/%s/health: %s", svc, r.raw)
		}
	}

	// Correlation ids: echoed on errors too; junk is replaced.
	r := s.do(http.MethodGet, "/api/auth/me", "", nil, "X-Correlation-ID", "corr-401")
	wantProblem(t, r, http.StatusUnauthorized)
	if got := r.header.Get("X-Correlation-ID"); got != "corr-401" {
		t.Errorf("401: X-Correlation-ID %q, want corr-401", got)
	}
	r = s.post("/api/auth/login", "", map[string]any{"email": "customer@example.com", "password": "Customer123!"}, "X-Correlation-ID", "bad id\twith <junk>")
	if got := r.header.Get("X-Correlation-ID"); got == "" || strings.ContainsAny(got, " \t<>") {
		t.Errorf("a junk X-Correlation-ID came back as %q, want a fresh one", got)
	}

	// Routes and methods that do not exist still answer problem+json.
	t.Run("unknown route", func(t *testing.T) {
		wantProblem(t, s.do(http.MethodGet, "/api/nowhere", "", nil), http.StatusNotFound)
	})
	t.Run("method not allowed", func(t *testing.T) {
		wantProblem(t, s.do(http.MethodPut, "/api/auth/login", "", map[string]any{}), http.StatusMethodNotAllowed)
	})

	// Idempotency-Key limits.
	wantProblem(t, s.post("/api/orders", customer.token, orderBody(line{uuid.NewString(), 1}), "Idempotency-Key", strings.Repeat("k", 256)), http.StatusBadRequest)
	wantProblem(t, s.post("/api/orders", customer.token, orderBody(line{uuid.NewString(), 1}), "Idempotency-Key", "tab\there"), http.StatusBadRequest)

	// Bounded text fields.
	wantFieldErrors(t, s.post("/api/auth/register", "", map[string]any{"email": uniqueEmail("long"), "password": strings.Repeat("p", 129), "full_name": "Long"}), "password")
	admin := s.admin()
	o := s.order(customer, line{s.product(admin, 1, "1.00"), 1})
	wantFieldErrors(t, s.post("/api/orders/"+o+"/cancel", customer.token, map[string]any{"reason": strings.Repeat("r", 501)}), "reason")
	want(t, s.cancel(customer, o, map[string]any{"reason": strings.Repeat("é", 500)}), http.StatusOK)
}
