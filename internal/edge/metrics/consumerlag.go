package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventshop/eventshop/internal/platform/kafkalag"
)

// WatchConsumerLag exports, at each scrape, how far the consumer group
// group is behind on each partition of its topics, as lag measures it
// within the report timeout. Call it once per group.
func (m *Metrics) WatchConsumerLag(group string, lag func(ctx context.Context) ([]kafkalag.Partition, error)) {
	labels := prometheus.Labels{"group": group}
	m.registry.MustRegister(&consumerLagCollector{
		group: group, lag: lag, timeout: m.reportTimeout, log: m.log,
		success: prometheus.NewDesc("eventshop_consumer_lag_success",
			"1 when this scrape could measure the consumer group's lag, else 0 (and no eventshop_consumer_lag for the group).", nil, labels),
		partition: prometheus.NewDesc("eventshop_consumer_lag",
			"Messages of the partition the consumer group has not committed yet (from the partition's first offset when it committed none).",
			[]string{"topic", "partition"}, labels),
	})
}

// consumerLagCollector measures a consumer group's lag at each scrape.
type consumerLagCollector struct {
	group              string
	lag                func(ctx context.Context) ([]kafkalag.Partition, error)
	timeout            time.Duration
	log                *slog.Logger
	success, partition *prometheus.Desc
}

func (c *consumerLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.success
	ch <- c.partition
}

// Collect measures the lag, bounded by the timeout; when it cannot, it
// says so in eventshop_consumer_lag_success rather than failing the
// scrape.
func (c *consumerLagCollector) Collect(ch chan<- prometheus.Metric) {
	parts, err := measure(ch, c.success, c.timeout, c.lag)
	if err != nil {
		c.log.Warn("metrics: measure the consumer group's lag", "group", c.group, "err", err)
		return
	}
	for _, p := range parts {
		ch <- prometheus.MustNewConstMetric(c.partition, prometheus.GaugeValue, float64(p.Lag), p.Topic, strconv.Itoa(p.Partition))
	}
}
