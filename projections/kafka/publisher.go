// Package kafka publishes the event log to Kafka for downstream consumers:
// every event of the user, product and order streams, except the secret
// ones, goes to its aggregate's topic as a CloudEvents 1.0 JSON envelope,
// keyed by aggregate id so that each aggregate's events keep their order.
//
// The Publisher is a projections.Sink: the runner moves its checkpoint
// only after Apply returned, and Apply returns only once the broker has
// acknowledged every message with acks=all. Delivery is at least once: a
// crash or a failed write between publishing and checkpointing publishes
// a batch again, so consumers deduplicate by event id (or by the sequence
// attribute, per key). Messages are never lost, and a later event of an
// aggregate is never written before an earlier one.
//
// What is published (topics, keys, the envelope, the headers) is package
// published's, which consumers read too; this package only writes it.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/published"
)

// Name is the projection name of the Publisher, and of its checkpoint.
const Name = "kafka.v1"

// Config configures a Publisher.
type Config struct {
	// Brokers is the bootstrap list, as host:port; required.
	Brokers []string
	// Partitions is the partition count of the topics Setup creates;
	// default 3. Topics that already exist are left as they are: changing
	// an existing topic's partition count moves keys to other partitions,
	// which breaks per-aggregate order while old messages are consumed,
	// and is an operator's decision.
	Partitions int
	// ReplicationFactor of the topics Setup creates; default 1.
	ReplicationFactor int
	// Transport carries the requests (TLS, SASL, client id); default a
	// kafka-go Transport of the Publisher's own.
	Transport kafkago.RoundTripper
	// WriteTimeout bounds one produce request; default 10 s.
	WriteTimeout time.Duration
	// ApplyTimeout bounds a whole Apply, retries included; default 30 s.
	// An Apply that runs out of time fails, and the runner retries it.
	ApplyTimeout time.Duration
	// Logger receives write failures; default slog.Default().
	Logger *slog.Logger
	// Now stamps the messages' Kafka timestamp; default time.Now.
	Now func() time.Time
}

// Publisher publishes events to Kafka; see the package comment. It is
// safe for concurrent use, though the runner calls it from one goroutine.
type Publisher struct {
	cfg       Config
	transport kafkago.RoundTripper
	log       *slog.Logger

	mu     sync.Mutex
	w      *kafkago.Writer // nil until the first Apply, and after a failed one
	closed bool
}

var _ projections.Sink = (*Publisher)(nil)

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("kafka publisher closed")

// New returns a Publisher. It connects to nothing until Setup or Apply.
// Errors: a Config without brokers, or with a negative count.
func New(cfg Config) (*Publisher, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka publisher: no brokers")
	}
	if cfg.Partitions < 0 || cfg.ReplicationFactor < 0 || cfg.WriteTimeout < 0 || cfg.ApplyTimeout < 0 {
		return nil, fmt.Errorf("kafka publisher: partitions %d, replication factor %d, write timeout %s, apply timeout %s: none may be negative",
			cfg.Partitions, cfg.ReplicationFactor, cfg.WriteTimeout, cfg.ApplyTimeout)
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 3
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = 1
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Publisher{cfg: cfg, transport: cfg.Transport, log: cfg.Logger.With("projection", Name)}
	if p.transport == nil {
		p.transport = &kafkago.Transport{ClientID: "eventshop", DialTimeout: 5 * time.Second}
	}
	return p, nil
}

// Name implements projections.Sink.
func (p *Publisher) Name() string { return Name }

// Filter implements projections.Sink: the user, product and order
// streams. Their secret events still arrive and are skipped by Apply.
func (p *Publisher) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: published.StreamPrefixes()}
}

// Setup implements projections.Sink: it creates the three topics with the
// configured partition count and replication factor. A topic that already
// exists is fine. Errors: the broker's, per topic.
func (p *Publisher) Setup(ctx context.Context) error {
	c := p.client()
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range published.Topics() {
		req.Topics = append(req.Topics, kafkago.TopicConfig{
			Topic: t, NumPartitions: p.cfg.Partitions, ReplicationFactor: p.cfg.ReplicationFactor,
		})
	}
	resp, err := c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("kafka setup: create topics: %w", err)
	}
	var errs []error
	for _, t := range published.Topics() {
		if err := resp.Errors[t]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafka setup: create topic %s: %w", t, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: published.Topics()})
	if err != nil {
		return fmt.Errorf("kafka setup: read back topics: %w", err)
	}
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("kafka setup: topic %s: %w", t.Name, t.Error)
		}
		if len(t.Partitions) != p.cfg.Partitions {
			p.log.Info("kafka topic exists with another partition count; leaving it",
				"topic", t.Name, "partitions", len(t.Partitions), "configured", p.cfg.Partitions)
		}
	}
	return nil
}

// Ping asks the cluster for the metadata of the event topics: it fails
// when no broker answers, for readiness checks.
func (p *Publisher) Ping(ctx context.Context) error {
	if _, err := p.client().Metadata(ctx, &kafkago.MetadataRequest{Topics: published.Topics()}); err != nil {
		return fmt.Errorf("kafka: metadata: %w", err)
	}
	return nil
}

func (p *Publisher) client() *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(p.cfg.Brokers...), Transport: p.transport, Timeout: p.cfg.WriteTimeout}
}

// Apply implements projections.Sink: it publishes the events of batch
// that are published at all (see Filter; secret events never are) and
// returns once the broker has acknowledged every one of them.
//
// Order: kafka-go writes each partition's batches one after another but
// moves on to the next batch even when one failed for good, which would
// put an aggregate's later event in the log before an earlier one that is
// only written on the retry. So Apply hands the writer chunks small enough
// to be one produce request per partition, waits for each, and stops at
// the first failure; and a failed writer is retired, so nothing of a failed
// attempt is still queued when the runner retries. The retry then starts
// at the checkpoint, before everything this attempt may have written.
//
// Errors: ErrClosed; the write error, naming the first event of the chunk
// that failed; an error naming an event too large to be a message.
func (p *Publisher) Apply(ctx context.Context, batch []eventstore.Event) error {
	now := p.cfg.Now()
	msgs := make([]kafkago.Message, 0, len(batch))
	evs := make([]*eventstore.Event, 0, len(batch))
	for i := range batch {
		e := &batch[i]
		m, ok, err := message(e, now)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if n := sizeBound(&m); n > maxBatchBytes {
			return fmt.Errorf("kafka publish: event %s (%s v%d, %s) is %d bytes as a message, over the limit of %d",
				e.ID, e.StreamID, e.Version, e.Type, n, maxBatchBytes)
		}
		msgs, evs = append(msgs, m), append(evs, e)
	}
	if len(msgs) == 0 {
		return nil
	}
	w, err := p.writer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ApplyTimeout)
	defer cancel()
	for _, c := range chunks(msgs) {
		if err := w.WriteMessages(ctx, msgs[c[0]:c[1]]...); err != nil {
			p.retire(w)
			e := evs[c[0]]
			return fmt.Errorf("kafka publish: write %d messages from event %s (%s v%d): %w",
				c[1]-c[0], e.ID, e.StreamID, e.Version, firstError(err))
		}
	}
	p.log.Debug("published", "messages", len(msgs), "events", len(batch))
	return nil
}

// writer returns the current writer, making one if there is none.
func (p *Publisher) writer() (*kafkago.Writer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.w == nil {
		p.w = &kafkago.Writer{
			Addr:         kafkago.TCP(p.cfg.Brokers...),
			Transport:    p.transport,
			RequiredAcks: kafkago.RequireAll,
			// Murmur2 is the Java client's key hash, so any other producer
			// using Kafka's default partitioner puts an aggregate on the
			// same partition.
			Balancer:        &kafkago.Murmur2Balancer{},
			BatchTimeout:    2 * time.Millisecond,
			BatchSize:       maxBatchMessages,
			BatchBytes:      maxBatchBytes,
			MaxAttempts:     3,
			WriteBackoffMin: 50 * time.Millisecond,
			WriteBackoffMax: 500 * time.Millisecond,
			WriteTimeout:    p.cfg.WriteTimeout,
			ReadTimeout:     p.cfg.WriteTimeout,
			ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) {
				p.log.Warn("kafka writer: " + fmt.Sprintf(msg, args...))
			}),
		}
	}
	return p.w, nil
}

// retire drops w after a failure. It is closed in the background: closing
// waits for its queued writes, which may be slow against a broker that is
// down, and nothing waits for them.
func (p *Publisher) retire(w *kafkago.Writer) {
	p.mu.Lock()
	if p.w == w {
		p.w = nil
	}
	p.mu.Unlock()
	go w.Close()
}

// Close releases the writer; Apply fails with ErrClosed afterwards. After
// a successful Apply nothing is left to flush. It is safe to call more
// than once.
func (p *Publisher) Close() error {
	p.mu.Lock()
	w := p.w
	p.w, p.closed = nil, true
	p.mu.Unlock()
	if w != nil {
		if err := w.Close(); err != nil {
			return fmt.Errorf("kafka publisher: close: %w", err)
		}
	}
	if t, ok := p.transport.(*kafkago.Transport); ok && p.cfg.Transport == nil {
		t.CloseIdleConnections()
	}
	return nil
}

// firstError returns the first failure inside kafka-go's per-message
// WriteErrors, which on its own says only how many messages failed.
func firstError(err error) error {
	var we kafkago.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				return fmt.Errorf("%d of %d messages failed, first: %w", we.Count(), len(we), e)
			}
		}
	}
	return err
}
