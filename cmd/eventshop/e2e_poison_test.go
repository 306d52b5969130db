package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	pgstore "github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

// The end-to-end tests of poison events: an event a projection cannot
// apply, appended straight to the event store as no build of the write
// side would, is parked with its stream (or halts its projection), and an
// admin retries or skips it from another process.

// appendRaw appends events to stream in the run's event store (its
// DATABASE_URL), after version, as they are given: nothing checks them.
func (s *server) appendRaw(stream string, after int64, events ...eventstore.EventData) {
	s.t.Helper()
	st, err := pgstore.Open(context.Background(), s.env["DATABASE_URL"], pgstore.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Append(context.Background(), stream, eventstore.Exact(after), events...); err != nil {
		s.t.Fatalf("append to %s: %v", stream, err)
	}
}

// parkedEntry is one entry of GET /api/admin/projections/{name}/parked.
type parkedEntry struct {
	EventID    string  `json:"event_id"`
	Stream     string  `json:"stream"`
	Version    int64   `json:"version"`
	Type       string  `json:"type"`
	Status     string  `json:"status"`
	Error      *string `json:"error"`
	Attempts   int     `json:"attempts"`
	SkippedBy  *string `json:"skipped_by"`
	SkipReason *string `json:"skip_reason"`
}

// parked reads a projection's parked list as the admin.
func (s *server) parked(admin *account, name, query string) []parkedEntry {
	s.t.Helper()
	r := want(s.t, s.get("/api/admin/projections/"+name+"/parked"+query, admin.token), http.StatusOK)
	var pg struct {
		Items []parkedEntry `json:"items"`
		Total int           `json:"total"`
	}
	if err := json.Unmarshal(r.raw, &pg); err != nil {
		s.t.Fatalf("%s: %v", r, err)
	}
	return pg.Items
}

// waitParked polls a projection's parked list until ok accepts it.
func (s *server) waitParked(admin *account, name, query, what string, ok func([]parkedEntry) bool) []parkedEntry {
	s.t.Helper()
	var list []parkedEntry
	testwait.Until(s.t, 30*time.Second, func() string {
		if list = s.parked(admin, name, query); ok(list) {
			return ""
		}
		return fmt.Sprintf("parked list of %s not %s: %+v", name, what, list)
	})
	return list
}

// badPaid is an order.paid no writer of eventshop stores: its order_id is
// a number, so no reader decodes it.
func badPaid() eventstore.EventData {
	return eventstore.EventData{Type: order.Paid{}.EventType(), Data: json.RawMessage(`{"order_id":5,"amount":1.00}`)}
}

// TestE2EPoisonPark: under the default policy an event orders.v1 cannot
// apply is parked with the later events of its order, while every other
// order keeps flowing and the projection stays live; the order process
// manager lists that order as failing and expires the others; a retry
// from another process leaves it parked, a skip from there applies the
// rest, and a rebuild completes, skipping the event again.
func TestE2EPoisonPark(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t, "ORDER_PAYMENT_TIMEOUT", "2s", "SAGA_TICK", "100ms")
	// A MongoDB-protocol server of the test's own, which the read API
	// started below (outside the local run) connects to as well.
	mongoSrv, err := ferret.Start(context.Background(), ferret.Options{Addr: "127.0.0.1:0", PostgreSQLURL: env["DATABASE_URL"]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mongoSrv.Close)
	env["MONGO_URL"] = mongoSrv.URI()
	s := startServer(t, env)
	admin := s.admin()
	vendor := s.newUser(admin, "poison-vendor", "vendor")
	customer := s.newUser(admin, "poison-customer")
	p := s.product(vendor, 100, "4.00")

	poisoned := s.order(customer, line{p, 1})
	s.appendRaw(order.Stream(poisoned), 0, badPaid())
	// The process manager cannot read it either: the order is listed
	// as failing, by itself.
	s.waitFailures(admin, "the poisoned order listed", func(items []map[string]any) bool {
		return len(items) == 1 && str(items[0], "order_id") == poisoned && str(items[0], "stream") == order.Stream(poisoned) &&
			strings.Contains(str(items[0], "error"), "decode order.paid")
	})
	// A later event of the order waits behind it.
	s.appendRaw(order.Stream(poisoned), 1, eventstore.EventData{Type: order.Cancelled{}.EventType(),
		Data: json.RawMessage(`{"order_id":"` + poisoned + `","reason":"by hand","refunded":false}`)})
	list := s.waitParked(admin, "orders.v1", "", "holding the order's two events", func(l []parkedEntry) bool {
		return len(l) == 2 && l[0].Error != nil
	})
	if l := list[0]; l.Stream != order.Stream(poisoned) || l.Version != 1 || l.Type != "order.paid" || l.Status != "parked" ||
		!strings.Contains(*l.Error, "decode order.paid") || l.Attempts < 5 {
		t.Fatalf("the poison entry: %+v", l)
	}
	if l := list[1]; l.Version != 2 || l.Type != "order.cancelled" || l.Error != nil || l.Status != "parked" {
		t.Fatalf("the entry waiting behind it: %+v", l)
	}

	// Every other order flows, and the projection is live with 2 parked.
	healthy := want(t, s.placeOrder(customer, line{p, 2}), http.StatusCreated)
	if got := want(t, s.fresh("/api/orders/"+str(healthy.body, "id"), customer.token, healthy), http.StatusOK); str(got.body, "status") != "pending" {
		t.Fatalf("an order placed after the poison reads %s", got.raw)
	}
	reps := s.waitProjections(admin, "live with 2 parked", 30*time.Second, func(reps map[string]projectionReport) bool {
		var r struct {
			Parked int    `json:"parked"`
			Policy string `json:"policy"`
		}
		_ = json.Unmarshal(reps["orders.v1"].raw, &r)
		return reps["orders.v1"].Status == "live" && r.Parked == 2 && r.Policy == "park" && reps["orders.v1"].LastError == nil
	})
	_, samples := s.scrape()
	if v, ok := find(samples, "eventshop_projection_parked_events", "projection", "orders.v1"); !ok || v != 2 {
		t.Errorf("eventshop_projection_parked_events{projection=orders.v1} = %v (%v), want 2: %s", v, ok, reps["orders.v1"].raw)
	}
	// The read model shows the order as it was before the parked events.
	if got := want(t, s.get("/api/orders/"+poisoned, customer.token), http.StatusOK); str(got.body, "status") != "pending" {
		t.Errorf("the poisoned order reads %s, want it pending as before its parked events", got.raw)
	}

	// The process manager expires the healthy order.
	s.waitHistory(customer, str(healthy.body, "id"), "order.cancelled")

	// Another process (a read API of its own) files a retry: the event
	// still fails, so the entry stays, with one more attempt.
	other := startServer(t, env, "readapi")
	attempts := list[0].Attempts
	want(t, other.post("/api/admin/projections/orders.v1/parked/"+list[1].EventID+"/retry", admin.token, nil), http.StatusAccepted)
	s.waitParked(admin, "orders.v1", "", "retried in vain", func(l []parkedEntry) bool {
		return len(l) == 2 && l[0].Attempts > attempts
	})
	// Only the first can be skipped; skipping it applies the rest.
	conflict := wantProblem(t, other.post("/api/admin/projections/orders.v1/parked/"+list[1].EventID+"/skip", admin.token,
		map[string]any{"reason": "x"}), http.StatusConflict)
	if str(conflict.body, "code") != "not_first_in_stream" || str(conflict.body, "first_event_id") != list[0].EventID {
		t.Errorf("skip of the second entry: %s", conflict.raw)
	}
	want(t, other.post("/api/admin/projections/orders.v1/parked/"+list[0].EventID+"/skip", admin.token,
		map[string]any{"reason": "written by hand, never valid"}), http.StatusAccepted)
	s.waitParked(admin, "orders.v1", "?status=parked", "empty", func(l []parkedEntry) bool { return len(l) == 0 })
	skipped := s.parked(admin, "orders.v1", "?status=skipped")
	if len(skipped) != 1 || skipped[0].EventID != list[0].EventID || skipped[0].SkippedBy == nil || *skipped[0].SkippedBy != admin.id ||
		skipped[0].SkipReason == nil || *skipped[0].SkipReason != "written by hand, never valid" {
		t.Fatalf("skipped entries %+v", skipped)
	}
	s.waitOrderStatus(customer, poisoned, "cancelled")

	// A rebuild completes and skips the event again.
	s.rebuild(admin, "orders.v1")
	if l := s.parked(admin, "orders.v1", ""); len(l) != 1 || l[0].Status != "skipped" || l[0].EventID != list[0].EventID {
		t.Fatalf("after the rebuild: %+v", l)
	}
	if got := want(t, s.get("/api/orders/"+poisoned, customer.token), http.StatusOK); str(got.body, "status") != "cancelled" {
		t.Errorf("after the rebuild the order reads %s", got.raw)
	}
}

// TestE2EPoisonHalt: under policy halt an event orders.v1 cannot apply
// stops it, named; the other projections and the process manager keep
// working; a skip gets it going again.
func TestE2EPoisonHalt(t *testing.T) {
	t.Parallel()
	s := startServer(t, e2eEnv(t, "PROJECTION_POLICIES", "orders.v1=halt", "ORDER_PAYMENT_TIMEOUT", "2s", "SAGA_TICK", "100ms"))
	admin := s.admin()
	vendor := s.newUser(admin, "halt-vendor", "vendor")
	customer := s.newUser(admin, "halt-customer")
	p := s.product(vendor, 100, "4.00")
	poisoned := s.order(customer, line{p, 1})
	s.appendRaw(order.Stream(poisoned), 0, badPaid())
	var eventID string
	s.waitProjections(admin, "orders.v1 halted", 30*time.Second, func(reps map[string]projectionReport) bool {
		r := reps["orders.v1"]
		if r.Status != "halted" || r.LastError == nil {
			return false
		}
		l := s.parked(admin, "orders.v1", "")
		if len(l) != 1 || l[0].Status != "halted" {
			return false
		}
		eventID = l[0].EventID
		return strings.Contains(*r.LastError, eventID) && strings.Contains(*r.LastError, order.Stream(poisoned))
	})

	// Everything else keeps working: the users model, the catalogue, and
	// the process manager (an order expires, seen in its history).
	signup := want(t, s.post("/api/auth/register", "", map[string]any{"email": uniqueEmail("halt-late"), "password": testPassword,
		"full_name": "Late"}), http.StatusCreated)
	want(t, s.fresh("/api/users/"+str(signup.body, "id"), admin.token, signup), http.StatusOK)
	listed := want(t, s.post("/api/products", vendor.token, map[string]any{"sku": "HALT-1", "name": "After the halt",
		"price": json.Number("1.00"), "quantity": 1}), http.StatusCreated)
	want(t, s.fresh("/api/products/"+str(listed.body, "id"), "", listed), http.StatusOK)
	expiring := want(t, s.placeOrder(customer, line{p, 1}), http.StatusCreated)
	s.waitHistory(customer, str(expiring.body, "id"), "order.cancelled")

	want(t, s.post("/api/admin/projections/orders.v1/parked/"+eventID+"/skip", admin.token,
		map[string]any{"reason": "known bad"}), http.StatusAccepted)
	s.waitProjections(admin, "orders.v1 live again", 30*time.Second, func(reps map[string]projectionReport) bool {
		return reps["orders.v1"].Status == "live" && reps["orders.v1"].LastError == nil
	})
	s.waitOrderStatus(customer, str(expiring.body, "id"), "cancelled")
}

// waitFailures polls GET /api/admin/process-manager/failures until ok
// accepts its items.
func (s *server) waitFailures(admin *account, what string, ok func([]map[string]any) bool) {
	s.t.Helper()
	testwait.Until(s.t, 30*time.Second, func() string {
		r := want(s.t, s.get("/api/admin/process-manager/failures", admin.token), http.StatusOK)
		var pg struct {
			Items []map[string]any `json:"items"`
		}
		if err := json.Unmarshal(r.raw, &pg); err != nil {
			s.t.Fatal(err)
		}
		if ok(pg.Items) {
			return ""
		}
		return fmt.Sprintf("process manager failures not %s: %s", what, r.raw)
	})
}

// waitHistory polls an order's history (read from its stream, not a read
// model) until it holds an event of type typ.
func (s *server) waitHistory(u *account, orderID, typ string) {
	s.t.Helper()
	testwait.Until(s.t, 30*time.Second, func() string {
		r := want(s.t, s.get("/api/orders/"+orderID+"/history", u.token), http.StatusOK)
		if strings.Contains(string(r.raw), `"event_type":"`+typ+`"`) {
			return ""
		}
		return fmt.Sprintf("order %s has no %s: %s", orderID, typ, r.raw)
	})
}

// waitOrderStatus polls the orders read model until the order has status.
func (s *server) waitOrderStatus(u *account, orderID, status string) {
	s.t.Helper()
	testwait.Until(s.t, 30*time.Second, func() string {
		if r := want(s.t, s.get("/api/orders/"+orderID, u.token), http.StatusOK); str(r.body, "status") != status {
			return fmt.Sprintf("order %s is not %s: %s", orderID, status, r.raw)
		}
		return ""
	})
}
