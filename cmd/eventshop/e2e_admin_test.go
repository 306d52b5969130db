package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands/demo"
	"github.com/eventshop/eventshop/eventstore"
)

// The operations routes' end-to-end tests: the admin's projection reports
// and rebuilds, and the Prometheus metrics.

// projectionNames are the projections `eventshop serve` runs, in the order
// the admin route reports them.
var projectionNames = []string{"users.v1", "orders.v1", "products.v1", "catalog.v1", "kafka.v1"}

// projectionReport is one entry of GET /api/admin/projections.
type projectionReport struct {
	Name      string          `json:"name"`
	Position  string          `json:"position"`
	Lag       *int64          `json:"lag"`
	Status    string          `json:"status"`
	LastError *string         `json:"last_error"`
	Rebuild   *string         `json:"rebuild"`
	RebuiltAt *time.Time      `json:"rebuilt_at"`
	raw       json.RawMessage // the entry as sent
}

// projections reads GET /api/admin/projections as the admin: 200 and a
// JSON array holding every projection of the run, in order, each with the
// members of API.md.
func (s *server) projections(admin *account) map[string]projectionReport {
	s.t.Helper()
	t := s.t
	r := want(t, s.get("/api/admin/projections", admin.token), http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("projections: Content-Type %q, want application/json", ct)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(r.raw, &raws); err != nil {
		t.Fatalf("%s: not a JSON array: %v", r, err)
	}
	out := map[string]projectionReport{}
	var names []string
	for _, raw := range raws {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			t.Fatalf("projection report %s: %v", raw, err)
		}
		for _, k := range []string{"name", "position", "lag", "status", "last_error"} {
			if _, ok := members[k]; !ok {
				t.Errorf("projection report %s has no %q", raw, k)
			}
		}
		var p projectionReport
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("projection report %s: %v", raw, err)
		}
		p.raw = raw
		if _, err := eventstore.ParsePosition(p.Position); err != nil {
			t.Errorf("projection %s: position %q is not a position token", p.Name, p.Position)
		}
		if !slices.Contains([]string{"catching_up", "live", "failing", "halted", "stopped"}, p.Status) {
			t.Errorf("projection %s: status %q", p.Name, p.Status)
		}
		if p.Lag != nil && *p.Lag < 0 {
			t.Errorf("projection %s: lag %d", p.Name, *p.Lag)
		}
		names = append(names, p.Name)
		out[p.Name] = p
	}
	if !slices.Equal(names, projectionNames) {
		t.Fatalf("projections %v, want %v", names, projectionNames)
	}
	return out
}

// waitProjections polls the admin's projection reports until ok accepts
// them, or fails after within, showing the last reports.
func (s *server) waitProjections(admin *account, what string, within time.Duration, ok func(map[string]projectionReport) bool) map[string]projectionReport {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		reps := s.projections(admin)
		if ok(reps) {
			return reps
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, n := range projectionNames {
				fmt.Fprintf(&b, "\n  %s", reps[n].raw)
			}
			s.t.Fatalf("projections not %s after %s:%s", what, within, b.String())
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// covers reports whether a projection's position has reached the
// X-Event-Position of r.
func covers(t *testing.T, p projectionReport, r *response) bool {
	t.Helper()
	at, err := eventstore.ParsePosition(p.Position)
	if err != nil {
		return false
	}
	token, err := eventstore.ParsePosition(r.header.Get("X-Event-Position"))
	if err != nil {
		t.Fatalf("%s: X-Event-Position %q: %v", r, r.header.Get("X-Event-Position"), err)
	}
	return !at.Less(token)
}

// TestE2EAdminProjections: the projection reports are the admins'; every
// projection of the run is listed, becomes live with no lag, and its
// position follows the writes it consumes.
func TestE2EAdminProjections(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	customer := s.signIn(demo.CustomerEmail, demo.CustomerPassword)
	vendor := s.signIn(demo.VendorEmail, demo.VendorPassword)

	wantProblem(t, s.get("/api/admin/projections", ""), http.StatusUnauthorized)
	wantProblem(t, s.get("/api/admin/projections", "not-a-token"), http.StatusUnauthorized)
	wantProblem(t, s.post("/api/admin/projections/catalog.v1/rebuild", "", nil), http.StatusUnauthorized)
	for _, u := range []*account{customer, vendor} {
		wantProblem(t, s.get("/api/admin/projections", u.token), http.StatusForbidden)
		wantProblem(t, s.post("/api/admin/projections/catalog.v1/rebuild", u.token, nil), http.StatusForbidden)
		wantProblem(t, s.post("/api/admin/projections/nope.v1/rebuild", u.token, nil), http.StatusForbidden)
	}

	// Writes each projection consumes: a registration (users.v1,
	// kafka.v1) and an order (orders.v1, kafka.v1; catalog.v1 takes its
	// reservation).
	registered := s.afterSeed()
	product := s.createProduct(vendor, nil)
	productID := str(product, "id")
	placed := want(t, s.placeOrder(customer, line{productID, 1}), http.StatusCreated)

	reps := s.waitProjections(admin, "live and caught up", 30*time.Second, func(reps map[string]projectionReport) bool {
		for _, p := range reps {
			if p.Status != "live" || p.Lag == nil || *p.Lag != 0 {
				return false
			}
		}
		return covers(t, reps["users.v1"], registered) && covers(t, reps["orders.v1"], placed) &&
			covers(t, reps["kafka.v1"], placed) && covers(t, reps["catalog.v1"], registered) &&
			covers(t, reps["products.v1"], registered)
	})
	for _, n := range projectionNames {
		p := reps[n]
		if p.LastError != nil || p.Rebuild != nil {
			t.Errorf("projection %s: last_error %v, rebuild %v; want both null", n, p.LastError, p.Rebuild)
		}
		// The catalogue starts from nothing as a rebuild (in bulk); the
		// others batch by batch.
		if bulk := n == "catalog.v1"; (p.RebuiltAt != nil) != bulk {
			t.Errorf("projection %s: rebuilt_at %v, want set: %v", n, p.RebuiltAt, bulk)
		}
	}
	// An unknown projection cannot be rebuilt.
	wantProblem(t, s.post("/api/admin/projections/nope.v1/rebuild", admin.token, nil), http.StatusNotFound)
	wantProblem(t, s.post("/api/admin/projections/users.v2/rebuild", admin.token, nil), http.StatusNotFound)
}

// rebuild asks for a rebuild of projection name as the admin, checks the
// 202, and waits until the report shows it swapped in: a rebuilt_at after
// the request, nothing pending, and live again.
func (s *server) rebuild(admin *account, name string) {
	s.t.Helper()
	t := s.t
	before := s.projections(admin)[name]
	asked := time.Now()
	r := s.post("/api/admin/projections/"+name+"/rebuild", admin.token, nil)
	want(t, r, http.StatusAccepted)
	var rep projectionReport
	if err := json.Unmarshal(r.raw, &rep); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	if rep.Name != name || rep.Rebuild == nil || (*rep.Rebuild != "requested" && *rep.Rebuild != "running") {
		t.Errorf("%s: want the report of %s with its rebuild requested or running", r, name)
	}
	s.waitProjections(admin, name+" rebuilt", 60*time.Second, func(reps map[string]projectionReport) bool {
		p := reps[name]
		return p.RebuiltAt != nil && (before.RebuiltAt == nil || p.RebuiltAt.After(*before.RebuiltAt)) &&
			!p.RebuiltAt.Before(asked.Add(-time.Second)) && p.Rebuild == nil && p.Status == "live"
	})
}

// TestE2EAdminRebuild: rebuilding the catalogue and the orders read model
// from the log changes nothing a client reads, and writes made afterwards
// still show up.
func TestE2EAdminRebuild(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "rebuild-vendor", "vendor")
	customer := s.newUser(admin, "rebuild-customer")

	// A catalogue with some history: a product patched, restocked and
	// ordered, and one discontinued.
	kept := s.createProduct(vendor, map[string]any{"name": "Kept", "category": "rebuild", "metadata": map[string]any{"k": []any{1, "two"}}})
	keptID := str(kept, "id")
	want(t, s.do(http.MethodPatch, "/api/products/"+keptID, vendor.token, map[string]any{"price": json.Number("7.25"), "images": []string{"https://img.example/k.png"}}), http.StatusOK)
	want(t, s.post("/api/products/"+keptID+"/inventory", vendor.token, map[string]any{"adjustment": 3, "reason": "delivery", "warehouse": "eu-3"}), http.StatusOK)
	dropped := s.product(vendor, 5, "2.00")
	want(t, s.do(http.MethodDelete, "/api/products/"+dropped, vendor.token, nil), http.StatusNoContent)
	o1 := s.order(customer, line{keptID, 2})
	o2 := s.order(customer, line{keptID, 1})
	want(t, s.pay(customer, o2, goodCard), http.StatusOK)
	o3 := s.order(customer, line{keptID, 1})
	last := want(t, s.cancel(customer, o3, map[string]any{"reason": "mistake"}), http.StatusOK)
	s.waitCatalog(vendor, keptID, stock{13, 3, 10}, 10*time.Second)

	catalogue := func(after *response) [][]byte {
		return [][]byte{
			want(t, s.fresh("/api/products?limit=100", "", after), http.StatusOK).raw,
			want(t, s.fresh("/api/products?limit=100&sort=name", "", after), http.StatusOK).raw,
			want(t, s.fresh("/api/products/categories", "", after), http.StatusOK).raw,
			want(t, s.fresh("/api/products/"+keptID, "", after), http.StatusOK).raw,
		}
	}
	before := catalogue(last)
	wantProblem(t, s.get("/api/products/"+dropped, ""), http.StatusNotFound)
	// The routes read products.v1; catalog.v1, the product documents, is
	// rebuilt beside it.
	s.rebuild(admin, "products.v1")
	s.rebuild(admin, "catalog.v1")
	after := catalogue(last)
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Errorf("the catalogue changed with its rebuild:\nbefore %s\n after %s", before[i], after[i])
		}
	}
	wantProblem(t, s.get("/api/products/"+dropped, ""), http.StatusNotFound)
	// A product listed after the rebuild shows up at once.
	created := want(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": "REBUILT-" + strings.ToUpper(uuid.NewString()[:8]), "name": "After the rebuild", "price": json.Number("3.00"),
		"category": "rebuild", "quantity": 1,
	}), http.StatusCreated)
	if got := want(t, s.fresh("/api/products/"+str(created.body, "id"), "", created), http.StatusOK); str(got.body, "name") != "After the rebuild" {
		t.Errorf("the product created after the rebuild reads %s", got.raw)
	}
	r := s.fresh("/api/products?category=rebuild", "", created)
	wantPage(t, r, 1, 10, 2)
	if got := ids(t, r); !slices.Equal(got, []string{str(created.body, "id"), keptID}) {
		t.Errorf("category rebuild lists %v, want the new product and the kept one", got)
	}

	// The orders read model, likewise.
	orders := func(after *response) [][]byte {
		out := [][]byte{
			want(t, s.fresh("/api/orders?limit=100", admin.token, after), http.StatusOK).raw,
			want(t, s.fresh("/api/orders?status=paid", customer.token, after), http.StatusOK).raw,
			want(t, s.fresh("/api/orders?limit=100", vendor.token, after), http.StatusOK).raw,
		}
		for _, id := range []string{o1, o2, o3} {
			out = append(out, want(t, s.fresh("/api/orders/"+id, customer.token, after), http.StatusOK).raw)
		}
		return out
	}
	beforeOrders := orders(last)
	wantPage(t, s.fresh("/api/orders", admin.token, last), 1, 10, 3)
	s.rebuild(admin, "orders.v1")
	afterOrders := orders(last)
	for i := range beforeOrders {
		if !bytes.Equal(beforeOrders[i], afterOrders[i]) {
			t.Errorf("the orders changed with their rebuild:\nbefore %s\n after %s", beforeOrders[i], afterOrders[i])
		}
	}
	placed := want(t, s.placeOrder(customer, line{keptID, 1}), http.StatusCreated)
	if got := want(t, s.fresh("/api/orders/"+str(placed.body, "id"), customer.token, placed), http.StatusOK); str(got.body, "status") != "pending" {
		t.Errorf("the order placed after the rebuild reads %s", got.raw)
	}
	wantPage(t, s.fresh("/api/orders", admin.token, placed), 1, 10, 4)
}

// sample is one sample of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	samplePattern = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPattern  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape reads GET /metrics and parses its samples.
func (s *server) scrape() (*response, []sample) {
	s.t.Helper()
	t := s.t
	r := want(t, s.get("/metrics", ""), http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics: Content-Type %q, want the Prometheus text format", ct)
	}
	return r, parseSamples(t, r.raw)
}

// parseSamples parses the samples of a /metrics answer.
func parseSamples(t *testing.T, raw []byte) []sample {
	t.Helper()
	var out []sample
	for _, ln := range strings.Split(string(raw), "\n") {
		if ln == "" || strings.HasPrefix(ln, "#") {
			continue
		}
		m := samplePattern.FindStringSubmatch(ln)
		if m == nil {
			t.Fatalf("/metrics: line %q is not a sample", ln)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("/metrics: line %q: value: %v", ln, err)
		}
		sm := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range labelPattern.FindAllStringSubmatch(m[2], -1) {
			sm.labels[l[1]] = l[2]
		}
		out = append(out, sm)
	}
	return out
}

// find returns the value of the sample name with exactly labels
// (name/value pairs), and whether there is one.
func find(samples []sample, name string, labels ...string) (float64, bool) {
	for _, sm := range samples {
		if sm.name != name || len(sm.labels) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && sm.labels[labels[i]] == labels[i+1]
		}
		if match {
			return sm.value, true
		}
	}
	return 0, false
}

// TestE2EMetrics: /metrics counts requests by chi route pattern, never by
// path, counts commands, and reports every projection's position and
// health.
func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "metrics-vendor", "vendor")
	customer := s.newUser(admin, "metrics-customer")
	p1, p2 := s.product(vendor, 5, "1.00"), s.product(vendor, 5, "2.00")
	placed := want(t, s.placeOrder(customer, line{p1, 1}), http.StatusCreated)
	orderID := str(placed.body, "id")
	wantProblem(t, s.placeOrder(customer, line{p2, 99}), http.StatusConflict)

	// Three product reads that find one, one that finds none.
	want(t, s.fresh("/api/products/"+p1, "", placed), http.StatusOK)
	want(t, s.get("/api/products/"+p2, ""), http.StatusOK)
	want(t, s.get("/api/products/"+p2, ""), http.StatusOK)
	unknownProduct := uuid.NewString()
	wantProblem(t, s.get("/api/products/"+unknownProduct, ""), http.StatusNotFound)
	want(t, s.fresh("/api/orders/"+orderID, customer.token, placed), http.StatusOK)
	unknownPath := "/no/such/" + uuid.NewString()
	wantProblem(t, s.get(unknownPath, ""), http.StatusNotFound)

	// The projections are all reported up once their runners report.
	deadline := time.Now().Add(30 * time.Second)
	var (
		r       *response
		samples []sample
	)
	for {
		r, samples = s.scrape()
		up := 0
		for _, n := range projectionNames {
			if v, ok := find(samples, "eventshop_projection_up", "projection", n); ok && v == 1 {
				up++
			}
		}
		if up == len(projectionNames) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every projection up after 30s:\n%s", grepLines(r.raw, "eventshop_projection_"))
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}

	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"method", "GET", "route", "/api/products/{id}", "status", "200"}, 3},
		{[]string{"method", "GET", "route", "/api/products/{id}", "status", "404"}, 1},
		{[]string{"method", "GET", "route", "/api/orders/{id}", "status", "200"}, 1},
		{[]string{"method", "POST", "route", "/api/orders", "status", "201"}, 1},
		{[]string{"method", "POST", "route", "/api/orders", "status", "409"}, 1},
		{[]string{"method", "POST", "route", "/api/products", "status", "201"}, 2},
		{[]string{"method", "GET", "route", "unmatched", "status", "404"}, 1},
	} {
		if got, ok := find(samples, "eventshop_http_requests_total", c.labels...); !ok || got != c.want {
			t.Errorf("eventshop_http_requests_total%v = %v (present: %v), want %v", c.labels, got, ok, c.want)
		}
	}
	if got, ok := find(samples, "eventshop_commands_total", "command", "POST /api/orders", "outcome", "ok"); !ok || got != 1 {
		t.Errorf(`eventshop_commands_total{command="POST /api/orders",outcome="ok"} = %v (present: %v), want 1`, got, ok)
	}
	if got, ok := find(samples, "eventshop_commands_total", "command", "POST /api/orders", "outcome", "rejected"); !ok || got != 1 {
		t.Errorf(`eventshop_commands_total{command="POST /api/orders",outcome="rejected"} = %v (present: %v), want 1`, got, ok)
	}
	// Routes are chi patterns: no label holds an id or a raw path.
	for _, sm := range samples {
		if !strings.HasPrefix(sm.name, "eventshop_http_") {
			continue
		}
		route, routed := sm.labels["route"]
		if !routed {
			continue // by admission class, not route: in flight, queued, refused
		}
		if route != "unmatched" && !strings.HasPrefix(route, "/") {
			t.Errorf("%s: route %q is not a pattern", sm.name, route)
		}
		for _, id := range []string{p1, p2, unknownProduct, orderID, customer.id, unknownPath} {
			if strings.Contains(route, id) {
				t.Errorf("%s%v: the route label holds the raw path", sm.name, sm.labels)
			}
		}
	}
	if bytes.Contains(r.raw, []byte(p1)) || bytes.Contains(r.raw, []byte(orderID)) || bytes.Contains(r.raw, []byte(unknownProduct)) {
		t.Error("/metrics shows a product or order id")
	}

	// Projection positions: orders.v1 has projected the order, at the
	// position the admin route reports.
	pos, ok := find(samples, "eventshop_projection_position", "projection", "orders.v1")
	if !ok || pos <= 0 {
		t.Errorf(`eventshop_projection_position{projection="orders.v1"} = %v (present: %v), want > 0`, pos, ok)
	}
	token, _ := eventstore.ParsePosition(placed.header.Get("X-Event-Position"))
	if uint64(pos) < token.Commit {
		t.Errorf(`eventshop_projection_position{projection="orders.v1"} = %v, behind the order it has projected, at %s`, pos, token)
	}
	for _, n := range projectionNames {
		if _, ok := find(samples, "eventshop_projection_position", "projection", n); !ok {
			t.Errorf("no eventshop_projection_position for %s", n)
		}
		if v, ok := find(samples, "eventshop_projection_lag_seconds", "projection", n); !ok || v < 0 {
			t.Errorf("eventshop_projection_lag_seconds{projection=%q} = %v (present: %v), want ≥ 0", n, v, ok)
		}
		if v, ok := find(samples, "eventshop_projection_failing", "projection", n); !ok || v != 0 {
			t.Errorf("eventshop_projection_failing{projection=%q} = %v (present: %v), want 0", n, v, ok)
		}
	}
	if v, ok := find(samples, "eventshop_projection_report_success"); !ok || v != 1 {
		t.Errorf("eventshop_projection_report_success = %v (present: %v), want 1", v, ok)
	}
}

// grepLines returns the lines of raw that contain substr.
func grepLines(raw []byte, substr string) string {
	var out []string
	for _, ln := range strings.Split(string(raw), "\n") {
		if strings.Contains(ln, substr) {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}
