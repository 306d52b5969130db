package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The order history's end-to-end tests: GET /api/orders/{id}/history after
// commands sent through the write API, each with an X-Correlation-ID of
// its own.

// historyEntry is one event of GET /api/orders/{id}/history.
type historyEntry struct {
	version                           int64
	eventType, actorID, correlationID string
	timestamp                         time.Time
	data                              map[string]any
}

// history reads GET /api/orders/{id}/history as u, expects 200 and
// checks its members: order_id, and events each with version, event_type,
// timestamp (RFC 3339 UTC), actor_id, correlation_id and a data object.
func (s *server) history(u *account, id string) (*response, []historyEntry) {
	s.t.Helper()
	t := s.t
	r := want(t, s.get("/api/orders/"+id+"/history", u.token), http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("history: Content-Type %q, want application/json", ct)
	}
	if str(r.body, "order_id") != id {
		t.Errorf("history: order_id %q, want %s", str(r.body, "order_id"), id)
	}
	list, ok := r.body["events"].([]any)
	if !ok {
		t.Fatalf("%s: events is not an array", r)
	}
	out := make([]historyEntry, len(list))
	for i, raw := range list {
		e := obj(t, raw, "history event")
		for _, k := range []string{"version", "event_type", "timestamp", "actor_id", "correlation_id", "data"} {
			if _, ok := e[k]; !ok {
				t.Errorf("history event %d: no %q member in %v", i, k, e)
			}
		}
		wantTime(t, "history timestamp", e["timestamp"])
		ts, _ := time.Parse(time.RFC3339Nano, str(e, "timestamp"))
		out[i] = historyEntry{
			version: int64(num(t, e["version"])), eventType: str(e, "event_type"), actorID: str(e, "actor_id"),
			correlationID: str(e, "correlation_id"), timestamp: ts, data: obj(t, e["data"], "history data"),
		}
	}
	return r, out
}

// wantHistory checks the events' types, actors and correlation ids, in
// order; that versions count up from 0 as the stored stream's do; and that
// the timestamps do not go back and lie within [from, now].
func (s *server) wantHistory(id string, got []historyEntry, from time.Time, want ...historyEntry) {
	s.t.Helper()
	t := s.t
	var gotTypes, wantTypes []string
	for _, e := range got {
		gotTypes = append(gotTypes, e.eventType)
	}
	for _, e := range want {
		wantTypes = append(wantTypes, e.eventType)
	}
	if !slices.Equal(gotTypes, wantTypes) {
		t.Fatalf("history of %s: %v, want %v", id, gotTypes, wantTypes)
	}
	stored := s.streamEvents("order-" + id)
	if len(stored) != len(got) {
		t.Fatalf("history of %s lists %d events, the stream holds %d (%v)", id, len(got), len(stored), types(stored))
	}
	now := time.Now()
	for i, e := range got {
		if e.version != int64(i) || e.version != stored[i].Version {
			t.Errorf("history of %s: event %d (%s) has version %d, want %d as stored", id, i, e.eventType, e.version, stored[i].Version)
		}
		if e.actorID != want[i].actorID {
			t.Errorf("history of %s: %s by actor %q, want %q", id, e.eventType, e.actorID, want[i].actorID)
		}
		if e.correlationID != want[i].correlationID || e.correlationID != stored[i].Correlation {
			t.Errorf("history of %s: %s has correlation_id %q, want %q (stored %q)", id, e.eventType, e.correlationID, want[i].correlationID, stored[i].Correlation)
		}
		if e.timestamp.Before(from.Add(-time.Second)) || e.timestamp.After(now.Add(time.Second)) {
			t.Errorf("history of %s: %s at %s, want between %s and %s", id, e.eventType, e.timestamp, from, now)
		}
		if i > 0 && e.timestamp.Before(got[i-1].timestamp) {
			t.Errorf("history of %s: %s at %s, before the %s at %s", id, e.eventType, e.timestamp, got[i-1].eventType, got[i-1].timestamp)
		}
		if str(e.data, "order_id") != id {
			t.Errorf("history of %s: %s data has order_id %q", id, e.eventType, str(e.data, "order_id"))
		}
	}
}

// TestE2EHistory: an order placed, paid and completed, and another paid
// and cancelled, each step with its own correlation id; the history lists
// their events with who did them and why, to exactly those who may see
// the order.
func TestE2EHistory(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	start := time.Now()
	admin := s.admin()
	vendor := s.newUser(admin, "hist-vendor", "vendor")
	otherVendor := s.newUser(admin, "hist-vendor2", "vendor")
	customer := s.newUser(admin, "hist-customer")
	otherCustomer := s.newUser(admin, "hist-customer2")
	lamp := s.createProduct(vendor, map[string]any{"sku": "HIST-LAMP-" + uuid.NewString()[:8], "name": "History Lamp", "price": json.Number("12.50"), "quantity": 10})
	lampID := str(lamp, "id")
	// The other vendor's product is in neither order.
	s.product(otherVendor, 5, "1.00")

	corr := func(step string) string { return "hist-" + step + "-" + uuid.NewString()[:8] }
	placeCorr, payCorr, completeCorr := corr("place"), corr("pay"), corr("complete")
	placed := want(t, s.post("/api/orders", customer.token, orderBody(line{lampID, 2}), "X-Correlation-ID", placeCorr), http.StatusCreated)
	id := str(placed.body, "id")
	paid := want(t, s.post("/api/orders/"+id+"/pay", customer.token, card(goodCard), "X-Correlation-ID", payCorr), http.StatusOK)
	completed := want(t, s.post("/api/orders/"+id+"/complete", admin.token, nil, "X-Correlation-ID", completeCorr), http.StatusOK)

	r, evs := s.history(customer, id)
	s.wantHistory(id, evs, start,
		historyEntry{eventType: "order.created", actorID: customer.id, correlationID: placeCorr},
		historyEntry{eventType: "order.paid", actorID: customer.id, correlationID: payCorr},
		historyEntry{eventType: "order.completed", actorID: admin.id, correlationID: completeCorr},
	)
	// The data of each event.
	created := evs[0].data
	if str(created, "user_id") != customer.id {
		t.Errorf("order.created user_id %q, want %s", str(created, "user_id"), customer.id)
	}
	wantMoney(t, "order.created total", created["total"], "25.00")
	lines, _ := created["items"].([]any)
	if len(lines) != 1 {
		t.Fatalf("order.created items %v, want one line", created["items"])
	}
	item := obj(t, lines[0], "order.created item")
	if str(item, "product_id") != lampID || str(item, "sku") != str(lamp, "sku") || str(item, "name") != "History Lamp" || num(t, item["quantity"]) != 2 {
		t.Errorf("order.created item %v, want the lamp, 2 of them", item)
	}
	wantMoney(t, "order.created item price", item["price"], "12.50")
	payment := obj(t, paid.body["payment"], "payment")
	if str(evs[1].data, "payment_id") != str(payment, "id") || str(evs[1].data, "payment_id") == "" {
		t.Errorf("order.paid payment_id %q, want the payment's %q", str(evs[1].data, "payment_id"), str(payment, "id"))
	}
	wantMoney(t, "order.paid amount", evs[1].data["amount"], "25.00")
	for _, secret := range []string{"card_number", "cvc", "payment_method"} {
		if _, ok := evs[1].data[secret]; ok {
			t.Errorf("order.paid data shows %q: %v", secret, evs[1].data)
		}
	}
	if !reflect.DeepEqual(evs[2].data, map[string]any{"order_id": id}) {
		t.Errorf("order.completed data %v, want {order_id}", evs[2].data)
	}
	// The ETag is the order's version, as the last command said.
	etag := r.header.Get("ETag")
	if etag != strconv.Quote("2") || etag != completed.header.Get("ETag") {
		t.Errorf("history ETag %q, want \"2\", the completion's %q", etag, completed.header.Get("ETag"))
	}
	if nm := s.get("/api/orders/"+id+"/history", customer.token, "If-None-Match", etag); nm.status != http.StatusNotModified || len(nm.raw) != 0 {
		t.Errorf("history If-None-Match %s: %s, want 304 without a body", etag, nm)
	}

	// Who may read it: the owner, the vendor of its items and an admin see
	// the very same history; anyone else gets the 404 of a missing order.
	for _, who := range []struct {
		name string
		u    *account
	}{{"vendor", vendor}, {"admin", admin}} {
		got, _ := s.history(who.u, id)
		if !reflect.DeepEqual(got.body, r.body) {
			t.Errorf("%s's history:\n got %s\nwant %s", who.name, got.raw, r.raw)
		}
	}
	wantProblem(t, s.get("/api/orders/"+id+"/history", otherCustomer.token), http.StatusNotFound)
	wantProblem(t, s.get("/api/orders/"+id+"/history", otherVendor.token), http.StatusNotFound)
	wantProblem(t, s.get("/api/orders/"+id+"/history", ""), http.StatusUnauthorized)
	for _, unknown := range []string{uuid.NewString(), "not-an-order"} {
		wantProblem(t, s.get("/api/orders/"+unknown+"/history", admin.token), http.StatusNotFound)
	}

	// Paid, then cancelled by its owner: the cancellation and the refund
	// it made, both under the cancelling request.
	place2, pay2, cancel2 := corr("place"), corr("pay"), corr("cancel")
	id2 := str(want(t, s.post("/api/orders", customer.token, orderBody(line{lampID, 1}), "X-Correlation-ID", place2), http.StatusCreated).body, "id")
	want(t, s.post("/api/orders/"+id2+"/pay", customer.token, card(goodCard), "X-Correlation-ID", pay2), http.StatusOK)
	cancelled := want(t, s.post("/api/orders/"+id2+"/cancel", customer.token, map[string]any{"reason": "found it cheaper"},
		"X-Correlation-ID", cancel2), http.StatusOK)
	_, evs = s.history(customer, id2)
	s.wantHistory(id2, evs, start,
		historyEntry{eventType: "order.created", actorID: customer.id, correlationID: place2},
		historyEntry{eventType: "order.paid", actorID: customer.id, correlationID: pay2},
		historyEntry{eventType: "order.cancelled", actorID: customer.id, correlationID: cancel2},
		historyEntry{eventType: "order.refunded", actorID: customer.id, correlationID: cancel2},
	)
	if str(evs[2].data, "reason") != "found it cheaper" || evs[2].data["refunded"] != true {
		t.Errorf("order.cancelled data %v, want reason \"found it cheaper\", refunded true", evs[2].data)
	}
	wantMoney(t, "order.refunded amount", evs[3].data["amount"], "12.50")
	if str(evs[3].data, "refund_id") == "" {
		t.Errorf("order.refunded data %v has no refund_id", evs[3].data)
	}
	if got := want(t, s.get("/api/orders/"+id2+"/history", vendor.token), http.StatusOK); got.header.Get("ETag") != cancelled.header.Get("ETag") {
		t.Errorf("history ETag %q, want the cancellation's %q", got.header.Get("ETag"), cancelled.header.Get("ETag"))
	}

	// A pending order cancelled by an admin: two events, the second the
	// admin's.
	place3, cancel3 := corr("place"), corr("cancel")
	id3 := str(want(t, s.post("/api/orders", customer.token, orderBody(line{lampID, 1}), "X-Correlation-ID", place3), http.StatusCreated).body, "id")
	want(t, s.post("/api/orders/"+id3+"/cancel", admin.token, map[string]any{"reason": "out of stock"}, "X-Correlation-ID", cancel3), http.StatusOK)
	_, evs = s.history(vendor, id3)
	s.wantHistory(id3, evs, start,
		historyEntry{eventType: "order.created", actorID: customer.id, correlationID: place3},
		historyEntry{eventType: "order.cancelled", actorID: admin.id, correlationID: cancel3},
	)
	if str(evs[1].data, "reason") != "out of stock" || evs[1].data["refunded"] != false {
		t.Errorf("order.cancelled data %v, want reason \"out of stock\", refunded false", evs[1].data)
	}
	wantProblem(t, s.get("/api/orders/"+id3+"/history", otherCustomer.token), http.StatusNotFound)
}

// TestE2EHistoryExpiry: an order the process manager expires lists that
// cancellation as the system's, under the correlation id of the request
// the order began with.
func TestE2EHistoryExpiry(t *testing.T) {
	t.Parallel()
	s := newE2E(t, "ORDER_PAYMENT_TIMEOUT", "1s", "ORDER_PLACEMENT_GRACE", "1s", "SAGA_TICK", "100ms")
	start := time.Now()
	admin := s.admin()
	vendor := s.newUser(admin, "hist-exp-vendor", "vendor")
	customer := s.newUser(admin, "hist-exp-customer")
	p := s.product(vendor, 5, "3.00")
	placeCorr := "hist-expire-" + uuid.NewString()[:8]
	id := str(want(t, s.post("/api/orders", customer.token, orderBody(line{p, 1}), "X-Correlation-ID", placeCorr), http.StatusCreated).body, "id")

	deadline := time.Now().Add(20 * time.Second)
	var evs []historyEntry
	for {
		_, evs = s.history(customer, id)
		if len(evs) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s not expired after 20s: history %+v", id, evs)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
	s.wantHistory(id, evs, start,
		historyEntry{eventType: "order.created", actorID: customer.id, correlationID: placeCorr},
		historyEntry{eventType: "order.cancelled", actorID: "system", correlationID: placeCorr},
	)
	if str(evs[1].data, "reason") != "payment_timeout" || evs[1].data["refunded"] != false {
		t.Errorf("order.cancelled data %v, want reason payment_timeout, refunded false", evs[1].data)
	}
	if !evs[1].timestamp.After(evs[0].timestamp.Add(900 * time.Millisecond)) {
		t.Errorf("expired at %s, placed at %s: before the 1s payment timeout", evs[1].timestamp, evs[0].timestamp)
	}
}
