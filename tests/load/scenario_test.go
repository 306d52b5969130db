package load

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// fakeOrders answers the order flow's three requests as API.md says they
// are answered; the read-back says X-Stale while stale is set.
func fakeOrders(t *testing.T, stale *atomic.Bool) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/orders", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") == "" || r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "no key or token", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Event-Position", "p1")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"id": "o1", "status": "pending"})
	})
	mux.HandleFunc("POST /api/orders/o1/pay", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Event-Position", "p2")
		json.NewEncoder(w).Encode(map[string]string{"id": "o1", "status": "paid"})
	})
	mux.HandleFunc("GET /api/orders/o1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Min-Position") != "p2" {
			http.Error(w, "read back without the payment's position", http.StatusBadRequest)
			return
		}
		status := "paid"
		if stale.Load() {
			w.Header().Set("X-Stale", "true")
			status = "pending"
		}
		json.NewEncoder(w).Encode(map[string]string{"id": "o1", "status": status})
	})
	mux.HandleFunc("GET /api/products", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"items":[],"total":0}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestScenarioCountsFromDue: an arrival's first request counts from its
// due time, however late it was sent (a generator that fell behind cannot
// hide that in the figures); the later requests of a flow count their own
// time, and the flow counts from the due time to the read that shows the
// order paid with the payment's position.
func TestScenarioCountsFromDue(t *testing.T) {
	var stale atomic.Bool
	c := newClient(fakeOrders(t, &stale), 4, 10*time.Second)
	defer c.close()
	play := newScenario(c, &World{Orderable: []string{"p-1", "p-2"}, Products: []string{"p-1"}}, Mixes[MixShoppers], NewTimeline(time.Now()))
	shopper := Shopper{Token: "t"}
	late := 300 * time.Millisecond

	play.get(context.Background(), time.Now().Add(-late), RouteList, "/api/products", "")
	play.flow(context.Background(), time.Now().Add(-late), shopper)
	got := map[string]RouteSummary{}
	for _, r := range play.stats.Summary() {
		got[r.Route] = r
	}
	for _, route := range []string{RouteList, RoutePlace, RouteFlow} {
		if r := got[route]; r.Count != 1 || r.Errors != 0 || r.Max < late {
			t.Errorf("%s: %+v, want one answer counted from its due time (≥ %s)", route, r, late)
		}
	}
	for _, route := range []string{RoutePay, RouteReadBack} {
		if r := got[route]; r.Count != 1 || r.Errors != 0 || r.Max >= late {
			t.Errorf("%s: %+v, want one answer counted from its own start", route, r)
		}
	}

	// A read-back that stays stale fails the read and the flow.
	stale.Store(true)
	play.stats = NewStats()
	play.flow(context.Background(), time.Now(), shopper)
	for _, r := range play.stats.Summary() {
		want := map[string]string{RouteReadBack: "stale", RouteFlow: "read stale"}[r.Route]
		if (want == "" && r.Errors != 0) || (want != "" && r.ByKind[want] != 1) {
			t.Errorf("%s with a stale read-back: errors %v, want %q", r.Route, r.ByKind, want)
		}
	}
}
