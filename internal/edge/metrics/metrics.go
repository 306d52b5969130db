// Package metrics exposes eventshop's Prometheus metrics: the Go runtime
// and the process, HTTP requests, commands, admission control (requests
// in flight, queued and refused), and the projections' position and lag. Everything lives on a registry of its own, never on the client
// library's global default, so a process (or a test) may build several.
//
// Wiring: install Middleware first on the chi router serving the API, so
// that it sees every answer (panics included, as the 500 the write API's
// middleware makes of them), and mount Handler on GET /metrics.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config holds what New needs; the zero value is usable.
type Config struct {
	// Projections returns what to show of each projection, at each
	// scrape: in a process with the read models' pool, the reports the
	// projections' runners stored there, read with the configured names.
	// Nil: no projection metrics (a write-API-only process).
	Projections func(ctx context.Context) ([]ProjectionReport, error)
	// ReportTimeout bounds one call of Projections, or of a consumer
	// group's lag (WatchConsumerLag), so that a slow database or broker
	// cannot hold a scrape; default 2 s.
	ReportTimeout time.Duration
	// Logger receives the failures of scrapes; default discards.
	Logger *slog.Logger
}

// maxScrapes bounds concurrent scrapes: each may query the database for
// the projections' reports. Beyond it a scrape gets 503.
const maxScrapes = 4

// Metrics is a registry with eventshop's collectors. It is safe for
// concurrent use.
type Metrics struct {
	registry      *prometheus.Registry
	log           *slog.Logger
	reportTimeout time.Duration // of a collector that asks a database or a broker
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	commands      *prometheus.CounterVec
	notified      *prometheus.CounterVec
	overload      *prometheus.CounterVec
}

// New builds Metrics on a registry of its own, with the Go runtime and
// process collectors, the HTTP and command metrics fed by Middleware and,
// when cfg.Projections is set, the projection metrics.
func New(cfg Config) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		log:      cfg.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_http_requests_total",
			Help: "HTTP requests answered, by method, chi route pattern and status code.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventshop_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method and chi route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_commands_total",
			Help: `Commands (write API requests: POST, PUT, PATCH and DELETE on a route), by command ("METHOD route") and outcome: ok (2xx, 3xx), rejected (4xx), error (5xx).`,
		}, []string{"command", "outcome"}),
		notified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_notifications_total",
			Help: `Mails the notifier of this process handled, by template and outcome: sent, retrying (an attempt failed, another follows), dead_lettered, duplicate (already sent or failed: a redelivery, skipped).`,
		}, []string{"template", "outcome"}),
		overload: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_http_overload_total",
			Help: `Requests the gateway's admission control answered 503 before any handler ran, by class (read, write, ops) and outcome: overloaded (no free slot while the class is overloaded), queue_full (no slot and the queue full), queue_wait (no slot within MAX_QUEUE_WAIT); and timeout: requests still served at REQUEST_TIMEOUT (answered 503 by their handler).`,
		}, []string{"class", "outcome"}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	// The collectors are distinct and the registry is new: registering
	// cannot fail.
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.commands, m.notified, m.overload,
	)
	m.reportTimeout = cfg.ReportTimeout
	if m.reportTimeout <= 0 {
		m.reportTimeout = 2 * time.Second
	}
	if cfg.Projections != nil {
		m.registry.MustRegister(newProjectionCollector(cfg.Projections, m.reportTimeout, m.log))
	}
	return m
}

// Notified counts one outcome of the notifier for a mail of template
// (notifier.Config.Observe).
func (m *Metrics) Notified(template, outcome string) {
	m.notified.WithLabelValues(template, outcome).Inc()
}

// Handler serves the metrics in the Prometheus exposition formats, for
// GET /metrics. A collector that fails leaves its metrics out of the
// answer (and is logged) rather than failing the scrape; at most
// maxScrapes scrapes run at once, the others get 503.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.registry,
		MaxRequestsInFlight: maxScrapes,
	})
}
