package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ProjectionReport is what the metrics show of one projection, as its
// active runner last reported it.
type ProjectionReport struct {
	Name string
	// Position is the commit part of the projection's checkpoint: its
	// position in the global log.
	Position uint64
	// LagEvents is how many events the projection is behind; negative
	// while its runner has not measured it (the gauge is left out then).
	LagEvents int64
	// LagTime is how old the last event it applied was at the report.
	LagTime time.Duration
	// Up is set when its active runner reported lately that it is live or
	// catching up.
	Up bool
	// Failing is set when it is stuck on an event that fails to apply
	// (failing, or halted on it).
	Failing bool
	// Parked counts the entries of its parked list, skipped ones not.
	Parked int64
}

// projectionCollector exports the projections' reports, read at each
// scrape, so the numbers are as current as the runners' last report and
// hold in any process.
type projectionCollector struct {
	reports func(ctx context.Context) ([]ProjectionReport, error)
	timeout time.Duration
	log     *slog.Logger

	success, position, lagEvents, lagSeconds, up, failing, parked *prometheus.Desc
}

func newProjectionCollector(reports func(ctx context.Context) ([]ProjectionReport, error), timeout time.Duration, log *slog.Logger) *projectionCollector {
	label := []string{"projection"}
	return &projectionCollector{
		reports: reports, timeout: timeout, log: log,
		success: prometheus.NewDesc("eventshop_projection_report_success",
			"1 when this scrape could read the projections' reports, else 0 (and no other eventshop_projection_* metric).", nil, nil),
		position: prometheus.NewDesc("eventshop_projection_position",
			"The commit part of the projection's checkpoint: its position in the global log.", label, nil),
		lagEvents: prometheus.NewDesc("eventshop_projection_lag_events",
			"Events the projection is behind (exact where the event store counts them, else a lower bound on a long backlog); absent until its runner measured them.", label, nil),
		lagSeconds: prometheus.NewDesc("eventshop_projection_lag_seconds",
			"How old the last event the projection applied was when its runner last reported; 0 when live and idle.", label, nil),
		up: prometheus.NewDesc("eventshop_projection_up",
			"1 when the projection's active runner reported lately that it is live or catching up, else 0.", label, nil),
		failing: prometheus.NewDesc("eventshop_projection_failing",
			"1 when the projection is stuck on an event that fails to apply (failing, or halted on it under policy halt), else 0.", label, nil),
		parked: prometheus.NewDesc("eventshop_projection_parked_events",
			"Events in the projection's parked list: events it could not apply, and the later events of their streams waiting behind them (skipped ones not counted).", label, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.success, c.position, c.lagEvents, c.lagSeconds, c.up, c.failing, c.parked} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the reports, bounded
// by the timeout. When they cannot be read it says so in
// eventshop_projection_report_success rather than failing the scrape, so
// the other metrics still arrive.
func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	reps, err := measure(ch, c.success, c.timeout, c.reports)
	if err != nil {
		c.log.Warn("metrics: read the projections' reports", "err", err)
		return
	}
	for _, r := range reps {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, r.Name)
		}
		gauge(c.position, float64(r.Position))
		if r.LagEvents >= 0 {
			gauge(c.lagEvents, float64(r.LagEvents))
		}
		gauge(c.lagSeconds, r.LagTime.Seconds())
		gauge(c.up, flag(r.Up))
		gauge(c.failing, flag(r.Failing))
		gauge(c.parked, float64(r.Parked))
	}
}

// measure calls fetch, bounded by timeout, for a collector that asks a
// database or a broker at each scrape, and exports in success (1 or 0)
// whether it could: a failure is said there rather than failing the
// scrape.
func measure[T any](ch chan<- prometheus.Metric, success *prometheus.Desc, timeout time.Duration, fetch func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v, err := fetch(ctx)
	ch <- prometheus.MustNewConstMetric(success, prometheus.GaugeValue, flag(err == nil))
	return v, err
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
