// Package standins starts the local run's stand-ins for the servers a
// deployment brings: a MongoDB-protocol server (ferret), a Kafka-protocol
// broker (kafkabroker) and an SMTP sink (smtpsink). Only the local run's
// wiring and tests import them.
package standins

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/standins/kafkabroker"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

// Local is the stand-ins one process started, each at most once.
type Local struct {
	Log    *slog.Logger
	ferret *ferret.Server
	broker *kafkabroker.Broker
	sink   *smtpsink.Sink
}

// MongoDB starts the MongoDB-protocol server on addr, which keeps its
// documents in the PostgreSQL database at postgresURL, and returns its URI.
func (l *Local) MongoDB(ctx context.Context, addr, postgresURL string) (string, error) {
	if l.ferret == nil {
		s, err := ferret.Start(ctx, ferret.Options{Addr: addr, PostgreSQLURL: postgresURL, Logger: l.Log})
		if err != nil {
			return "", fmt.Errorf("embedded MongoDB-protocol server on MONGO_ADDR %s: %w", addr, err)
		}
		l.ferret = s
	}
	return l.ferret.URI(), nil
}

// Kafka starts the Kafka-protocol broker on addr, which keeps its log in
// dataDir/kafka, each partition within retention and retentionBytes (0:
// no bound; see kafkabroker.Options), and returns its bootstrap addresses.
func (l *Local) Kafka(addr, dataDir string, retention time.Duration, retentionBytes int64) ([]string, error) {
	if l.broker == nil {
		b, err := kafkabroker.Start(kafkabroker.Options{Addr: addr, DataDir: filepath.Join(dataDir, "kafka"), Logger: l.Log,
			Retention: retention, RetentionBytes: retentionBytes})
		if err != nil {
			return nil, fmt.Errorf("embedded Kafka-protocol broker on KAFKA_ADDR %s: %w", addr, err)
		}
		l.broker = b
	}
	return l.broker.Addrs(), nil
}

// SMTP starts the SMTP sink on addr and returns its address.
func (l *Local) SMTP(addr string) (string, error) {
	if l.sink == nil {
		s, err := smtpsink.Start(smtpsink.Options{Addr: addr, Logger: l.Log})
		if err != nil {
			return "", fmt.Errorf("embedded SMTP sink on SMTP_SINK_ADDR %s: %w", addr, err)
		}
		l.sink = s
	}
	return l.sink.Addr(), nil
}

// Mail is the mail the SMTP sink received, as GET /dev/mail shows it;
// nil unless the sink runs.
func (l *Local) Mail() http.Handler {
	if l.sink == nil {
		return nil
	}
	return l.sink.Handler()
}

// Mark is " (embedded)" for a server ("mongodb", "kafka" or "smtp") this
// process started, for the start banner; else "".
func (l *Local) Mark(server string) string {
	if started := map[string]bool{"mongodb": l.ferret != nil, "kafka": l.broker != nil, "smtp": l.sink != nil}; started[server] {
		return " (embedded)"
	}
	return ""
}

// Close stops what was started.
func (l *Local) Close() error {
	var err error
	if l.broker != nil {
		l.broker.Close()
	}
	if l.sink != nil {
		err = l.sink.Close()
	}
	if l.ferret != nil {
		l.ferret.Close()
	}
	return err
}

// Up reports whether something listens on addr, such as a stand-in
// another local process started.
func Up(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}
