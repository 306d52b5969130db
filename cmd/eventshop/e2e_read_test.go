package main

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/published"
)

// The read API's end-to-end tests: commands go through the write API, and
// the GETs answer from the read models the projections build, waiting for
// them with X-Min-Position.

// get sends a GET as token (when set) with header name/value pairs.
func (s *server) get(path, token string, hdr ...string) *response {
	s.t.Helper()
	return s.do(http.MethodGet, path, token, nil, hdr...)
}

// fresh sends a GET that waits for the position r (a command's answer)
// reported, and fails the test when the answer is stale.
func (s *server) fresh(path, token string, after *response, hdr ...string) *response {
	s.t.Helper()
	pos := after.header.Get("X-Event-Position")
	if pos == "" {
		s.t.Fatalf("%s: no X-Event-Position to wait for", after)
	}
	r := s.get(path, token, append([]string{"X-Min-Position", pos}, hdr...)...)
	if r.header.Get("X-Stale") != "" {
		s.t.Fatalf("%s: X-Stale %q waiting for %s", r, r.header.Get("X-Stale"), pos)
	}
	return r
}

// ids lists the ids of a page's items, in order.
func ids(t *testing.T, r *response) []string {
	t.Helper()
	items, ok := r.body["items"].([]any)
	if !ok {
		t.Fatalf("%s: no items array", r)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = str(obj(t, it, "item"), "id")
	}
	return out
}

// wantPage checks the pagination members of a list answer.
func wantPage(t *testing.T, r *response, page, limit, total int) {
	t.Helper()
	want(t, r, http.StatusOK)
	if got := [3]float64{num(t, r.body["page"]), num(t, r.body["limit"]), num(t, r.body["total"])}; got != [3]float64{float64(page), float64(limit), float64(total)} {
		t.Errorf("%s: page, limit, total = %v, want %d, %d, %d", r, got, page, limit, total)
	}
}

// TestE2EReadOrderYourWrites: a GET sent with the X-Event-Position of a
// command sees that command at once, in the very shape the command
// answered with, and its ETag; If-None-Match with that ETag is a 304.
func TestE2EReadOrderYourWrites(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "read-vendor", "vendor")
	customer := s.newUser(admin, "read-customer")
	p1, p2 := s.product(vendor, 5, "12.50"), s.product(vendor, 5, "3.99")

	placed := want(t, s.placeOrder(customer, line{p1, 2}, line{p2, 1}), http.StatusCreated)
	id := str(placed.body, "id")
	got := want(t, s.fresh("/api/orders/"+id, customer.token, placed), http.StatusOK)
	if !reflect.DeepEqual(got.body, placed.body) {
		t.Fatalf("GET after place:\n got %s\nwant %s", got.raw, placed.raw)
	}
	etag := got.header.Get("ETag")
	if etag == "" || etag != placed.header.Get("ETag") {
		t.Errorf("ETag %q, want the command's %q", etag, placed.header.Get("ETag"))
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	notModified := s.get("/api/orders/"+id, customer.token, "If-None-Match", etag)
	if notModified.status != http.StatusNotModified || len(notModified.raw) != 0 {
		t.Errorf("If-None-Match %s: %s, want 304 without a body", etag, notModified)
	}
	if r := s.get("/api/orders/"+id, customer.token, "If-None-Match", `"999"`); r.status != http.StatusOK {
		t.Errorf("If-None-Match of another version: %s, want 200", r)
	}

	paid := want(t, s.pay(customer, id, goodCard), http.StatusOK)
	got = want(t, s.fresh("/api/orders/"+id, customer.token, paid, "If-None-Match", etag), http.StatusOK)
	if !reflect.DeepEqual(got.body, paid.body) {
		t.Fatalf("GET after pay:\n got %s\nwant %s", got.raw, paid.raw)
	}
	if str(got.body, "status") != "paid" || got.header.Get("ETag") == etag {
		t.Errorf("after pay: status %q, ETag %q (was %q)", str(got.body, "status"), got.header.Get("ETag"), etag)
	}

	// A pending order cancelled: nothing follows on its stream (a paid
	// one is refunded afterwards), so the answer is what the GET sees.
	other := s.order(customer, line{p2, 1})
	cancelled := want(t, s.cancel(customer, other, map[string]any{"reason": "changed my mind"}), http.StatusOK)
	got = want(t, s.fresh("/api/orders/"+other, admin.token, cancelled), http.StatusOK)
	if !reflect.DeepEqual(got.body, cancelled.body) {
		t.Fatalf("GET after cancel:\n got %s\nwant %s", got.raw, cancelled.raw)
	}
}

// TestE2EReadOrderVisibility: a customer sees their orders, a vendor the
// orders holding their products, an admin all; anyone else gets the 404
// of an order that does not exist.
func TestE2EReadOrderVisibility(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	v1, v2 := s.newUser(admin, "vis-vendor1", "vendor"), s.newUser(admin, "vis-vendor2", "vendor")
	c1, c2 := s.newUser(admin, "vis-customer1"), s.newUser(admin, "vis-customer2")
	p1, p2 := s.product(v1, 10, "1.00"), s.product(v2, 10, "2.00")

	o1 := s.order(c1, line{p1, 1})
	o2 := s.order(c2, line{p2, 1})
	last := want(t, s.placeOrder(c1, line{p1, 1}, line{p2, 1}), http.StatusCreated)
	o3 := str(last.body, "id")

	for _, c := range []struct {
		who  string
		u    *account
		want []string // newest first
	}{
		{"customer 1", c1, []string{o3, o1}},
		{"customer 2", c2, []string{o2}},
		{"vendor 1", v1, []string{o3, o1}},
		{"vendor 2", v2, []string{o3, o2}},
		{"admin", admin, []string{o3, o2, o1}},
	} {
		r := s.fresh("/api/orders", c.u.token, last)
		wantPage(t, r, 1, 10, len(c.want))
		if got := ids(t, r); !slices.Equal(got, c.want) {
			t.Errorf("%s lists %v, want %v", c.who, got, c.want)
		}
	}

	for _, c := range []struct {
		who    string
		u      *account
		order  string
		status int
	}{
		{"owner", c1, o1, 200}, {"admin", admin, o1, 200}, {"vendor with items", v1, o1, 200},
		{"vendor with some items", v2, o3, 200},
		{"another customer", c2, o1, 404}, {"vendor without items", v2, o1, 404},
	} {
		r := s.fresh("/api/orders/"+c.order, c.u.token, last)
		if c.status == 404 {
			wantProblem(t, r, http.StatusNotFound)
			continue
		}
		if want(t, r, c.status); str(r.body, "id") != c.order {
			t.Errorf("%s: GET %s answered order %s", c.who, c.order, str(r.body, "id"))
		}
	}
	// Not yours reads exactly like does not exist.
	for _, id := range []string{"8d0e1a7c-6e4b-4c8e-9f7a-0b1c2d3e4f50", "not-a-uuid"} {
		wantProblem(t, s.get("/api/orders/"+id, c1.token), http.StatusNotFound)
	}
	wantProblem(t, s.get("/api/orders", ""), http.StatusUnauthorized)
	wantProblem(t, s.get("/api/orders/"+o1, ""), http.StatusUnauthorized)
}

// TestE2EReadOrdersPagination: pages, the status filter, and the 422s of
// bad parameters.
func TestE2EReadOrdersPagination(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "page-vendor", "vendor")
	c := s.newUser(admin, "page-customer")
	p := s.product(vendor, 20, "5.00")
	var placed []string
	for range 3 {
		placed = append(placed, s.order(c, line{p, 1}))
	}
	want(t, s.pay(c, placed[0], goodCard), http.StatusOK)
	last := want(t, s.cancel(c, placed[1], nil), http.StatusOK)

	r := s.fresh("/api/orders?limit=2", c.token, last)
	wantPage(t, r, 1, 2, 3)
	page1 := ids(t, r)
	r = s.fresh("/api/orders?limit=2&page=2", c.token, last)
	wantPage(t, r, 2, 2, 3)
	page2 := ids(t, r)
	if all := append(page1, page2...); !slices.Equal(all, []string{placed[2], placed[1], placed[0]}) {
		t.Errorf("pages list %v, want newest first %v", all, []string{placed[2], placed[1], placed[0]})
	}
	wantPage(t, s.fresh("/api/orders?page=3&limit=2", c.token, last), 3, 2, 3)

	for status, want := range map[string]string{"paid": placed[0], "cancelled": placed[1], "pending": placed[2]} {
		r := s.fresh("/api/orders?status="+status, c.token, last)
		wantPage(t, r, 1, 10, 1)
		if got := ids(t, r); !slices.Equal(got, []string{want}) {
			t.Errorf("status=%s lists %v, want [%s]", status, got, want)
		}
	}
	wantPage(t, s.fresh("/api/orders?status=completed", c.token, last), 1, 10, 0)

	for query, fields := range map[string][]string{
		"limit=101":                   {"limit"},
		"limit=0":                     {"limit"},
		"limit=ten":                   {"limit"},
		"page=0":                      {"page"},
		"page=-1&limit=500":           {"page", "limit"},
		"status=shipped":              {"status"},
		"status=abandoned&limit=1000": {"status", "limit"},
	} {
		wantFieldErrors(t, s.get("/api/orders?"+query, c.token), fields...)
	}
}

// TestE2EReadUsers: the user list is the admins'; a user may read
// themself; anyone else's user is a 404.
func TestE2EReadUsers(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	email := uniqueEmail("read-user")
	registered := want(t, s.post("/api/auth/register", "", map[string]any{"email": email, "password": testPassword, "full_name": "Read User"}), http.StatusCreated)
	u := s.signIn(email, testPassword)
	other := s.newUser(admin, "read-other")

	me := want(t, s.get("/api/auth/me", u.token), http.StatusOK)
	self := want(t, s.fresh("/api/users/"+u.id, u.token, registered), http.StatusOK)
	if !reflect.DeepEqual(self.body, me.body) {
		t.Errorf("GET /api/users/{self}:\n got %s\nwant %s (/api/auth/me)", self.raw, me.raw)
	}
	if etag := self.header.Get("ETag"); etag != me.header.Get("ETag") {
		t.Errorf("ETag %q, want %q", etag, me.header.Get("ETag"))
	} else if r := s.get("/api/users/"+u.id, u.token, "If-None-Match", etag); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %s, want 304", r)
	}
	wantProblem(t, s.get("/api/users/"+other.id, u.token), http.StatusNotFound)
	wantProblem(t, s.get("/api/users", u.token), http.StatusForbidden)
	wantProblem(t, s.get("/api/users", ""), http.StatusUnauthorized)

	granted := s.grant(admin, other.id, "vendor")
	r := want(t, s.fresh("/api/users/"+other.id, admin.token, granted), http.StatusOK)
	if roles, _ := r.body["roles"].([]any); !slices.Equal(roles, []any{"customer", "vendor"}) {
		t.Errorf("roles after the grant: %v", r.body["roles"])
	}
	// The seeded admin, vendor and customer, and the two users here.
	list := s.fresh("/api/users?limit=2", admin.token, granted)
	wantPage(t, list, 1, 2, 5)
	all := s.fresh("/api/users?limit=100", admin.token, granted)
	wantPage(t, all, 1, 100, 5)
	if got := ids(t, all); !slices.Contains(got, u.id) || !slices.Contains(got, other.id) {
		t.Errorf("users %v lack %s or %s", got, u.id, other.id)
	}
	wantFieldErrors(t, s.get("/api/users?limit=101", admin.token), "limit")
}

// TestE2EReadMinPosition: a token the read model cannot reach is served
// after the wait with X-Stale: true; a token of an event the model does
// not consume is no reason to wait; a token that does not parse is a 400.
func TestE2EReadMinPosition(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	c := s.newUser(admin, "stale-customer")

	start := time.Now()
	r := want(t, s.get("/api/orders", c.token, "X-Min-Position", "999999999.0"), http.StatusOK)
	took := time.Since(start)
	if r.header.Get("X-Stale") != "true" {
		t.Errorf("a token far ahead: X-Stale %q, want true", r.header.Get("X-Stale"))
	}
	if took < 1900*time.Millisecond || took > 5*time.Second {
		t.Errorf("a token far ahead was answered after %s, want about 2s", took)
	}

	// A registration is no event of the orders model: its checkpoint
	// never moves to it, yet the model holds everything up to it.
	registered := want(t, s.post("/api/auth/register", "", map[string]any{
		"email": uniqueEmail("stale-other"), "password": testPassword, "full_name": "Other"}), http.StatusCreated)
	start = time.Now()
	wantPage(t, s.fresh("/api/orders", c.token, registered), 1, 10, 0)
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("a token the orders model does not consume took %s", took)
	}

	for _, bad := range []string{"abc", "1", "1.x", "-1.0"} {
		wantProblem(t, s.get("/api/orders", c.token, "X-Min-Position", bad), http.StatusBadRequest)
	}
}

// TestE2ESplitDeployment: the write API, the projector and the read API
// as three processes on one database: a write made through one is read
// through another once the third has projected it.
func TestE2ESplitDeployment(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t)
	// Outside the local run nothing is embedded: the roles connect to a
	// MongoDB- and a Kafka-protocol server of their own.
	mongoSrv, err := ferret.Start(context.Background(), ferret.Options{Addr: "127.0.0.1:0", PostgreSQLURL: env["DATABASE_URL"]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mongoSrv.Close)
	env["MONGO_URL"] = mongoSrv.URI()
	env["KAFKA_BROKERS"] = strings.Join(kafkatest.Start(t).Addrs(), ",")
	write := startServer(t, env, "writeapi")
	startServer(t, env, "projector")
	read := startServer(t, env, "readapi")

	email := uniqueEmail("split")
	registered := want(t, write.post("/api/auth/register", "", map[string]any{"email": email, "password": testPassword, "full_name": "Split"}), http.StatusCreated)
	u := write.signIn(email, testPassword)
	me := want(t, write.get("/api/auth/me", u.token), http.StatusOK)
	got := want(t, read.fresh("/api/users/"+u.id, u.token, registered), http.StatusOK)
	if !reflect.DeepEqual(got.body, me.body) {
		t.Errorf("read API:\n got %s\nwant %s", got.raw, me.raw)
	}
	wantPage(t, read.fresh("/api/orders", u.token, registered), 1, 10, 0)
	// The projector publishes the registration to Kafka.
	brokers := strings.Split(env["KAFKA_BROKERS"], ",")
	deadline := time.Now().Add(20 * time.Second)
	for seen := false; !seen; {
		if time.Now().After(deadline) {
			t.Fatal("the registration never reached ecommerce.user.events")
		}
		for _, rec := range kafkatest.ReadAll(t, brokers, published.TopicUsers) {
			seen = seen || rec.Key == u.id
		}
		time.Sleep(20 * time.Millisecond) // poll the topic
	}
	// Each process serves its own routes only.
	if r := read.post("/api/auth/register", "", map[string]any{}); r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
		t.Errorf("the read API took a command: %s", r)
	}
	if r := write.get("/api/orders", u.token); r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Errorf("the write API served a read: %s", r)
	}
}
