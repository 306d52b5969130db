package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/edge/metrics"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

// TestAdmissionMetrics: /metrics shows the gateway's requests in flight
// and queued per class, and counts the ones it refused.
func TestAdmissionMetrics(t *testing.T) {
	m := metrics.New(metrics.Config{})
	g, err := gateway.New(gateway.Config{MaxInFlight: 1, MaxQueue: 0, Observe: m.Overload}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.WatchAdmission([]string{gateway.ClassRead, gateway.ClassWrite, gateway.ClassOps}, g.Occupancy)

	inside, release := make(chan struct{}), make(chan struct{})
	h := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			close(inside)
			<-release
		}
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/block", nil))
	}()
	<-inside
	for range 2 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/products", nil))
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("a read beyond the budget: %d", w.Code)
		}
	}

	fams := scrape(t, m)
	if v := value(t, fams, "eventshop_http_overload_total", "class", "read", "outcome", "queue_full"); v != 2 {
		t.Errorf("overload_total{read,queue_full} = %v, want 2", v)
	}
	if v := value(t, fams, "eventshop_http_in_flight", "class", "read"); v != 1 {
		t.Errorf("in_flight{read} = %v, want 1", v)
	}
	if v := value(t, fams, "eventshop_http_in_flight", "class", "write"); v != 0 {
		t.Errorf("in_flight{write} = %v, want 0", v)
	}
	close(release)
	<-done
	testwait.Until(t, 5*time.Second, func() string {
		if v := value(t, scrape(t, m), "eventshop_http_in_flight", "class", "read"); v != 0 {
			return "the read still counts as in flight"
		}
		return ""
	})
}
