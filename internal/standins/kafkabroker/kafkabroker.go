// Package kafkabroker runs an embedded Kafka-protocol broker for the local
// run and for tests, where no real Kafka is at hand. It wraps kfake
// (github.com/twmb/franz-go/pkg/kfake) as a single broker listening on one
// address, optionally persisting its topics, records and committed group
// offsets in a directory so they survive a restart.
//
// Any Kafka client works with it: kafka-go, franz-go, kcat.
package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultAddr is where Start listens when Options.Addr is empty: any free
// port on the loopback interface.
const DefaultAddr = "127.0.0.1:0"

// Options configure a broker; the zero value is usable.
type Options struct {
	// Addr is the host:port to listen on; default DefaultAddr. The
	// address the listener gets is also the one the broker advertises to
	// clients in its metadata, so it must be one they can reach: listen on
	// a specific host rather than on 0.0.0.0.
	Addr string
	// DataDir, when set, keeps the broker's state (topics, records,
	// committed offsets) in that directory, created if missing, and
	// reloads it on the next Start. Empty keeps everything in memory.
	// Only one broker may use a directory at a time.
	DataDir string
	// Retention bounds what each partition keeps: records older than
	// Retention (0: any age) and, beyond RetentionBytes (0: any size),
	// the oldest records are deleted. The bound is applied at Start, to
	// what an earlier run left in DataDir, and then every RetentionCheck
	// (default DefaultRetentionCheck), so a restart reads no more than
	// it. Records are deleted a segment at a time; with RetentionBytes a
	// segment holds at most a quarter of it.
	Retention      time.Duration
	RetentionBytes int64
	RetentionCheck time.Duration
	// Logger receives the broker's warnings and errors, and its request
	// log at debug level; default slog.Default().
	Logger *slog.Logger
}

// DefaultRetentionCheck is how often a bounded broker deletes what is
// past its bound.
const DefaultRetentionCheck = time.Minute

// maxSegmentBytes is kfake's own segment size.
const maxSegmentBytes = 100 << 20

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addrs   []string
	once    sync.Once
	stop    chan struct{} // closed by Close: ends the retention loop
	stopped chan struct{} // closed when it has ended
}

// Start listens on opts.Addr and serves the Kafka protocol there until
// Close. Errors: the listen error (address in use, say), or the error of
// reading a DataDir that holds unusable state.
func Start(opts Options) (*Broker, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Listening here, rather than letting kfake do it, reports a busy
	// address as such and honours the host: kfake always asks for
	// 127.0.0.1 and only lets the port be chosen.
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("kafka broker: listen on %s: %w", opts.Addr, err)
	}
	used := false
	listen := func(string, string) (net.Listener, error) {
		if used {
			return nil, errors.New("kafka broker: only one listener")
		}
		used = true
		return ln, nil
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.WithLogger(slogAdapter{opts.Logger.With("component", "kafka-broker")}),
		kfake.ClusterID("eventshop"),
	}
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			ln.Close()
			return nil, fmt.Errorf("kafka broker: data directory: %w", err)
		}
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	bounded := opts.Retention > 0 || opts.RetentionBytes > 0
	if bounded {
		kopts = append(kopts, kfake.BrokerConfigs(retentionConfigs(opts)))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		ln.Close() // kfake closes it too when it got that far; twice is harmless
		return nil, fmt.Errorf("kafka broker: start (data directory %q): %w", opts.DataDir, err)
	}
	b := &Broker{cluster: c, addrs: c.ListenAddrs(), stop: make(chan struct{}), stopped: make(chan struct{})}
	if !bounded {
		close(b.stopped)
		return b, nil
	}
	c.ApplyRetention()
	every := opts.RetentionCheck
	if every <= 0 {
		every = DefaultRetentionCheck
	}
	go b.retain(every)
	return b, nil
}

// retentionConfigs are the broker configurations of opts's bound: -1 is
// kfake's "no bound".
func retentionConfigs(opts Options) map[string]string {
	ms, bytes, segment := int64(-1), int64(-1), int64(maxSegmentBytes)
	if opts.Retention > 0 {
		ms = max(opts.Retention.Milliseconds(), 1)
	}
	if opts.RetentionBytes > 0 {
		bytes, segment = opts.RetentionBytes, min(segment, max(opts.RetentionBytes/4, 1<<10))
	}
	return map[string]string{
		"log.retention.ms":    strconv.FormatInt(ms, 10),
		"log.retention.bytes": strconv.FormatInt(bytes, 10),
		"log.segment.bytes":   strconv.FormatInt(segment, 10),
	}
}

// retain applies the retention bound every interval until Close.
func (b *Broker) retain(every time.Duration) {
	defer close(b.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.cluster.ApplyRetention()
		}
	}
}

// Addrs returns the bootstrap addresses clients connect to, as host:port.
func (b *Broker) Addrs() []string { return append([]string(nil), b.addrs...) }

// Close stops listening, drops every client connection and, with a
// DataDir, writes the broker's state to it. It is safe to call more than
// once.
func (b *Broker) Close() {
	b.once.Do(func() {
		close(b.stop)
		<-b.stopped
		b.cluster.Close()
	})
}

// slogAdapter routes kfake's log lines to slog. kfake logs every request
// at its info level, which is debug detail for eventshop.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	var l slog.Level
	switch level {
	case kfake.LogLevelError:
		l = slog.LevelError
	case kfake.LogLevelWarn:
		l = slog.LevelWarn
	case kfake.LogLevelNone:
		return
	default:
		l = slog.LevelDebug
	}
	ctx := context.Background()
	if a.log.Enabled(ctx, l) {
		a.log.Log(ctx, l, fmt.Sprintf(format, args...))
	}
}
