package metrics

import "github.com/prometheus/client_golang/prometheus"

// Overload counts one request the gateway's admission control refused,
// or cut at its deadline, by class and outcome (gateway.Config.Observe).
func (m *Metrics) Overload(class, outcome string) {
	m.overload.WithLabelValues(class, outcome).Inc()
}

// WatchAdmission exports, at each scrape, how many requests of each of
// classes are being served and how many wait for a slot, as occupancy
// (gateway.Gateway.Occupancy) tells. Call it once.
func (m *Metrics) WatchAdmission(classes []string, occupancy func(class string) (inFlight, queued int)) {
	m.registry.MustRegister(&admissionCollector{
		classes: classes, occupancy: occupancy,
		inFlight: prometheus.NewDesc("eventshop_http_in_flight",
			"Requests being served, by admission class (read, write, ops).", []string{"class"}, nil),
		queued: prometheus.NewDesc("eventshop_http_queued",
			"Requests waiting for a slot, by admission class (read, write, ops).", []string{"class"}, nil),
	})
}

// admissionCollector reads the gateway's occupancy at each scrape.
type admissionCollector struct {
	classes          []string
	occupancy        func(class string) (inFlight, queued int)
	inFlight, queued *prometheus.Desc
}

func (c *admissionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inFlight
	ch <- c.queued
}

func (c *admissionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, class := range c.classes {
		in, q := c.occupancy(class)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(in), class)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(q), class)
	}
}
