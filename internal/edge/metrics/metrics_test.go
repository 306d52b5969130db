package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eventshop/eventshop/internal/edge/metrics"
	"github.com/eventshop/eventshop/internal/platform/kafkalag"
)

// scrape gets m's /metrics as Prometheus does and parses it.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", w.Code, w.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series returns the metrics of family name whose labels are exactly
// labels (name=value pairs).
func series(fams map[string]*dto.MetricFamily, name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range fams[name].GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		ok := true
		for _, l := range m.GetLabel() {
			found := false
			for i := 0; i+1 < len(labels); i += 2 {
				found = found || (labels[i] == l.GetName() && labels[i+1] == l.GetValue())
			}
			ok = ok && found
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// value is the value of the one series of name with labels; the test
// fails when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	s := series(fams, name, labels...)
	if len(s) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(s))
	}
	switch {
	case s[0].Counter != nil:
		return s[0].GetCounter().GetValue()
	case s[0].Gauge != nil:
		return s[0].GetGauge().GetValue()
	case s[0].Histogram != nil:
		return float64(s[0].GetHistogram().GetSampleCount())
	}
	t.Fatalf("%s%v: not a counter, gauge or histogram", name, labels)
	return 0
}

// api is a router shaped like the API, behind m's middleware.
func api(m *metrics.Metrics) http.Handler {
	r := chi.NewRouter()
	r.Use(m.Middleware)
	r.Get("/api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{}`)) // no WriteHeader: 200
	})
	r.Group(func(r chi.Router) {
		r.Use(func(next http.Handler) http.Handler { return next }) // a group, as the APIs use
		r.Post("/api/orders", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
		r.Post("/api/orders/{id}/pay", func(w http.ResponseWriter, r *http.Request) {
			if chi.URLParam(r, "id") == "declined" {
				w.WriteHeader(http.StatusPaymentRequired)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		r.Delete("/api/products/{id}", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		})
	})
	return r
}

// TestHTTPAndCommandMetrics: requests are counted and timed by route
// pattern, never by path; commands by route and outcome.
func TestHTTPAndCommandMetrics(t *testing.T) {
	m := metrics.New(metrics.Config{})
	h := api(m)
	send := func(method, path string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	}
	for _, id := range []string{"0190a3c1-0000-7000-8000-000000000001", "0190a3c1-0000-7000-8000-000000000002", "x"} {
		send(http.MethodGet, "/api/orders/"+id)
	}
	send(http.MethodPost, "/api/orders")
	send(http.MethodPost, "/api/orders/one/pay")
	send(http.MethodPost, "/api/orders/declined/pay")
	send(http.MethodPost, "/api/orders/two/pay")
	send(http.MethodDelete, "/api/products/p1")
	send(http.MethodGet, "/api/nothing/here/123")
	send(http.MethodPost, "/api/nothing/here/456")
	send("BREW", "/api/orders/pot")

	fams := scrape(t, m)
	for _, c := range []struct {
		method, route, status string
		want                  float64
	}{
		{"GET", "/api/orders/{id}", "200", 3},
		{"POST", "/api/orders", "201", 1},
		{"POST", "/api/orders/{id}/pay", "200", 2},
		{"POST", "/api/orders/{id}/pay", "402", 1},
		{"DELETE", "/api/products/{id}", "500", 1},
		{"GET", "unmatched", "404", 1},
		{"POST", "unmatched", "404", 1},
	} {
		if got := value(t, fams, "eventshop_http_requests_total", "method", c.method, "route", c.route, "status", c.status); got != c.want {
			t.Errorf("requests %s %s %s: %v, want %v", c.method, c.route, c.status, got, c.want)
		}
	}
	if got := value(t, fams, "eventshop_http_request_duration_seconds", "method", "GET", "route", "/api/orders/{id}"); got != 3 {
		t.Errorf("duration histogram of GET /api/orders/{id} holds %v requests, want 3", got)
	}
	if got := value(t, fams, "eventshop_http_request_duration_seconds", "method", "POST", "route", "/api/orders/{id}/pay"); got != 3 {
		t.Errorf("duration histogram of POST /api/orders/{id}/pay holds %v requests, want 3", got)
	}
	// A made-up method is "other", whatever chi answered it with.
	var other float64
	for _, s := range fams["eventshop_http_requests_total"].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "method" && l.GetValue() == "other" {
				other += s.GetCounter().GetValue()
			}
		}
	}
	if other != 1 {
		t.Errorf("requests with a made-up method: %v, want 1 labelled other", other)
	}
	// No label anywhere holds a path of a request.
	for _, name := range []string{"eventshop_http_requests_total", "eventshop_http_request_duration_seconds", "eventshop_commands_total"} {
		for _, s := range fams[name].GetMetric() {
			for _, l := range s.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "0190a3c1") || strings.Contains(v, "declined") || strings.Contains(v, "nothing") || v == "BREW" {
					t.Errorf("%s has label %s=%q", name, l.GetName(), v)
				}
			}
		}
	}

	for _, c := range []struct {
		command, outcome string
		want             float64
	}{
		{"POST /api/orders", "ok", 1},
		{"POST /api/orders/{id}/pay", "ok", 2},
		{"POST /api/orders/{id}/pay", "rejected", 1},
		{"DELETE /api/products/{id}", "error", 1},
	} {
		if got := value(t, fams, "eventshop_commands_total", "command", c.command, "outcome", c.outcome); got != c.want {
			t.Errorf("commands %s %s: %v, want %v", c.command, c.outcome, got, c.want)
		}
	}
	if n := len(fams["eventshop_commands_total"].GetMetric()); n != 4 {
		t.Errorf("%d command series, want 4: reads and unmatched routes are no commands", n)
	}
}

// TestOwnRegistry: every Metrics has a registry of its own (two in one
// process do not collide), with the Go runtime and process collectors.
func TestOwnRegistry(t *testing.T) {
	a, b := metrics.New(metrics.Config{}), metrics.New(metrics.Config{})
	for _, m := range []*metrics.Metrics{a, b} {
		fams := scrape(t, m)
		for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
			if fams[name] == nil {
				t.Errorf("no %s", name)
			}
		}
		if fams["eventshop_projection_report_success"] != nil {
			t.Error("projection metrics without a source of reports")
		}
	}
	api(a).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/api/orders", nil))
	if got := value(t, scrape(t, a), "eventshop_commands_total", "command", "POST /api/orders", "outcome", "ok"); got != 1 {
		t.Errorf("a counted %v commands, want 1", got)
	}
	if s := series(scrape(t, b), "eventshop_commands_total", "command", "POST /api/orders", "outcome", "ok"); len(s) != 0 {
		t.Error("b counted a's command")
	}
}

// TestProjectionMetrics: each report becomes the projection's gauges.
func TestProjectionMetrics(t *testing.T) {
	m := metrics.New(metrics.Config{Projections: func(context.Context) ([]metrics.ProjectionReport, error) {
		return []metrics.ProjectionReport{
			{Name: "orders.v1", Position: 4200, Up: true, LagTime: 1500 * time.Millisecond},
			{Name: "users.v1", Position: 900, Failing: true, LagEvents: 12, LagTime: time.Minute},
			{Name: "catalog.v1", Position: 10, Up: true, LagEvents: 5000, Parked: 3},
			{Name: "kafka.v1", Position: 77, Failing: true, LagEvents: 2, Parked: 1},
			{Name: "never.v1", LagEvents: -1},
		}, nil
	}})
	fams := scrape(t, m)
	if got := value(t, fams, "eventshop_projection_report_success"); got != 1 {
		t.Errorf("report_success %v", got)
	}
	for _, c := range []struct {
		name                                      string
		position, lagSeconds, up, failing, parked float64
		lagEvents                                 float64 // -1: no series
	}{
		{"orders.v1", 4200, 1.5, 1, 0, 0, 0},
		{"users.v1", 900, 60, 0, 1, 0, 12},
		{"catalog.v1", 10, 0, 1, 0, 3, 5000},
		{"kafka.v1", 77, 0, 0, 1, 1, 2},
		{"never.v1", 0, 0, 0, 0, 0, -1},
	} {
		for metric, want := range map[string]float64{
			"eventshop_projection_position": c.position, "eventshop_projection_lag_seconds": c.lagSeconds,
			"eventshop_projection_up": c.up, "eventshop_projection_failing": c.failing,
			"eventshop_projection_parked_events": c.parked,
		} {
			if got := value(t, fams, metric, "projection", c.name); got != want {
				t.Errorf("%s{projection=%q} = %v, want %v", metric, c.name, got, want)
			}
		}
		lag := series(fams, "eventshop_projection_lag_events", "projection", c.name)
		switch {
		case c.lagEvents < 0 && len(lag) != 0:
			t.Errorf("%s: lag_events %v although its runner never counted it", c.name, lag[0].GetGauge().GetValue())
		case c.lagEvents >= 0 && (len(lag) != 1 || lag[0].GetGauge().GetValue() != c.lagEvents):
			t.Errorf("%s: lag_events %v, want %v", c.name, lag, c.lagEvents)
		}
	}
}

// TestProjectionMetricsWhenReportsFail: a source that fails or hangs costs
// the projection metrics of that scrape, within the timeout, and nothing
// else.
func TestProjectionMetricsWhenReportsFail(t *testing.T) {
	t.Run("fails", func(t *testing.T) {
		m := metrics.New(metrics.Config{Projections: func(context.Context) ([]metrics.ProjectionReport, error) {
			return nil, errors.New("connection refused")
		}})
		fams := scrape(t, m)
		if got := value(t, fams, "eventshop_projection_report_success"); got != 0 {
			t.Errorf("report_success %v, want 0", got)
		}
		if fams["eventshop_projection_position"] != nil || fams["go_goroutines"] == nil {
			t.Error("want no projection gauges and the other metrics")
		}
	})
	t.Run("hangs", func(t *testing.T) {
		var cause atomic.Value
		m := metrics.New(metrics.Config{ReportTimeout: 50 * time.Millisecond, Projections: func(ctx context.Context) ([]metrics.ProjectionReport, error) {
			<-ctx.Done() // a database that does not answer
			cause.Store(ctx.Err())
			return nil, ctx.Err()
		}})
		start := time.Now()
		fams := scrape(t, m)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the scrape took %s", took)
		}
		if err, _ := cause.Load().(error); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the source's context ended with %v, want its deadline", err)
		}
		if got := value(t, fams, "eventshop_projection_report_success"); got != 0 {
			t.Errorf("report_success %v, want 0", got)
		}
	})
}

// TestConsumerLagMetrics: each partition's lag becomes a gauge of the
// group; a measurement that fails, or outlasts the timeout, costs the
// group's lag of that scrape and nothing else.
func TestConsumerLagMetrics(t *testing.T) {
	m := metrics.New(metrics.Config{ReportTimeout: 50 * time.Millisecond})
	m.WatchConsumerLag("mailer", func(context.Context) ([]kafkalag.Partition, error) {
		return []kafkalag.Partition{{Topic: "orders", Partition: 0, Lag: 7}, {Topic: "orders", Partition: 1}}, nil
	})
	m.WatchConsumerLag("stuck", func(ctx context.Context) ([]kafkalag.Partition, error) {
		<-ctx.Done() // a broker that does not answer
		return nil, ctx.Err()
	})
	fams := scrape(t, m)
	if got := value(t, fams, "eventshop_consumer_lag_success", "group", "mailer"); got != 1 {
		t.Errorf("mailer: success %v, want 1", got)
	}
	for p, want := range map[string]float64{"0": 7, "1": 0} {
		if got := value(t, fams, "eventshop_consumer_lag", "group", "mailer", "topic", "orders", "partition", p); got != want {
			t.Errorf("mailer on orders/%s: lag %v, want %v", p, got, want)
		}
	}
	if got := value(t, fams, "eventshop_consumer_lag_success", "group", "stuck"); got != 0 {
		t.Errorf("stuck: success %v, want 0", got)
	}
	n := 0
	for _, m := range fams["eventshop_consumer_lag"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "group" && l.GetValue() == "stuck" {
				n++
			}
		}
	}
	if n != 0 {
		t.Errorf("stuck: %d lag series, want none", n)
	}
}
