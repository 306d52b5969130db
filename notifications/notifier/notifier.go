// Package notifier is the consumer that turns events on the user and order
// topics into emails, one per (event, template), however often Kafka
// delivers a message.
//
// It reads with a kafka-go consumer group, FetchMessage then CommitMessages,
// and commits a message only once it and every message before it in its
// partition are fully handled: sent, skipped as a duplicate (the ledger
// says sent or failed), ignored (an event type that gets no mail), or
// dead-lettered. Messages are handled in several lanes at once, each
// message in the lane of its key, so an aggregate's mails keep their
// order; commits are batched, at most every 100 ms. Each mail goes
// through the ledger's protocol (see package ledger): Claim, send only on
// Won, record the result fenced by the attempt, then commit. A temporary SMTP failure is retried in
// process with exponential backoff, at most MaxAttempts times; a permanent
// one, data that will never render, or exhausted attempts send the message to
// the dead-letter topic, so a poison message never blocks its partition.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/platform/kafkalag"
	"github.com/eventshop/eventshop/internal/platform/kafkalog"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

// Defaults of Config.
const (
	DefaultGroupID     = "eventshop-notifier"
	DefaultDLQTopic    = "ecommerce.notifications.dlq"
	DefaultRetryTopic  = "ecommerce.notifications.retry"
	DefaultMaxAttempts = 5
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = time.Minute
	DefaultLease       = 2 * time.Minute
	DefaultLookup      = 2 * time.Minute
)

// Headers of a dead letter. Its key and value are the original message's.
const (
	HeaderDLQReason    = "dlq_reason"
	HeaderDLQAttempts  = "dlq_attempts"
	HeaderDLQTopic     = "dlq_topic"
	HeaderDLQPartition = "dlq_partition"
	HeaderDLQOffset    = "dlq_offset"
)

// Sender delivers one email; *mail.Sender is one. Send's errors wrap
// mail.ErrTemporary (retry) or mail.ErrPermanent (dead-letter).
type Sender interface {
	Send(ctx context.Context, m mail.Message) error
	MessageID(key string) string
}

// Config configures a Notifier. Brokers, Ledger, Renderer, Sender and
// Recipients are required.
type Config struct {
	Brokers []string
	// GroupID is the consumer group; default DefaultGroupID.
	GroupID string
	// Topics read; default the user and order topics and RetryTopic.
	Topics []string
	// RetryTopic is where `eventshop dlq replay` puts dead letters back;
	// default DefaultRetryTopic. It is read by default, and created by
	// Setup with the dead-letter topic.
	RetryTopic string
	// Partitions is the partition count Setup gives the topics it
	// creates; default 3. ReplicationFactor likewise; default 1.
	Partitions, ReplicationFactor int
	Ledger                        *ledger.Ledger
	Renderer                      *templates.Renderer
	Sender                        Sender
	// Recipients looks the address of a user up (in the user read model).
	// It is not called for user.registered, whose event carries the
	// address and name.
	Recipients func(ctx context.Context, userID uuid.UUID) (templates.Recipient, error)
	// Owner finds the user an event is about when its data has no
	// user_id: order.paid, order.completed and order.cancelled carry only
	// the order id, so the caller looks the order's owner up (in the order
	// read model). Nil means such events are dead-lettered.
	Owner func(ctx context.Context, env published.Envelope) (uuid.UUID, error)
	// MaxAttempts bounds the sends of one notification; default
	// DefaultMaxAttempts.
	MaxAttempts int
	// RetryMin is the wait after the first failed attempt, doubling up to
	// RetryMax; defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// LookupTimeout is how long Owner and Recipients are retried, with
	// the backoff of the sends, before the message is dead-lettered;
	// default DefaultLookup. The read models they consult may lag.
	LookupTimeout time.Duration
	// Lease is how long a claim holds a notification while this process
	// lives (a killed process's claims are taken over at once: see
	// ledger.Hold); default DefaultLease. A batch records what it sent, and
	// gives back the claims it has not tried, once they are half their
	// lease old, and a send and its record may take 40 s (sendTimeout and
	// markSentTimeout): with a lease of at least 80 s every mail is
	// recorded before its claim runs out.
	Lease time.Duration
	// DLQTopic receives dead letters; default DefaultDLQTopic.
	DLQTopic string
	// Lanes is how many messages are handled at once; default
	// DefaultLanes. The messages of one key (one aggregate) share a lane.
	Lanes int
	// Batch is how many messages a lane handles at once, at most: their
	// mails are claimed in one statement and recorded sent in one. A lane
	// takes what it holds, so it batches only when the notifier is behind.
	// A notifier killed mid-batch can send again each mail of the batch it
	// sent and had not recorded yet (with its Message-ID); default
	// DefaultBatch.
	Batch  int
	Logger *slog.Logger
	// Observe, when set, is told each outcome of a mail: OutcomeSent,
	// OutcomeRetrying, OutcomeDeadLettered or OutcomeDuplicate, with the
	// template ("" for a message dead-lettered before it had one).
	Observe func(template, outcome string)
}

// The outcomes Config.Observe is told.
const (
	OutcomeSent         = "sent"
	OutcomeRetrying     = "retrying"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDuplicate    = "duplicate"
)

// Notifier consumes events and sends their mails.
type Notifier struct {
	cfg Config
	log *slog.Logger
	// claims is cfg.Ledger under the hold of the current Run: its claims
	// name this process as their holder.
	claims *ledger.Ledger
}

// ErrConfig is wrapped by New's errors.
var ErrConfig = errors.New("notifier: invalid config")

// New checks cfg, fills in its defaults and returns a Notifier. It does not
// connect. Errors: ErrConfig, wrapped with the field that is missing.
func New(cfg Config) (*Notifier, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, fmt.Errorf("%w: no brokers", ErrConfig)
	case cfg.Ledger == nil:
		return nil, fmt.Errorf("%w: no ledger", ErrConfig)
	case cfg.Renderer == nil:
		return nil, fmt.Errorf("%w: no renderer", ErrConfig)
	case cfg.Sender == nil:
		return nil, fmt.Errorf("%w: no sender", ErrConfig)
	case cfg.Recipients == nil:
		return nil, fmt.Errorf("%w: no recipients lookup", ErrConfig)
	case cfg.MaxAttempts < 0 || cfg.RetryMin < 0 || cfg.RetryMax < 0 || cfg.Lease < 0 || cfg.LookupTimeout < 0 || cfg.Lanes < 0 || cfg.Batch < 0:
		return nil, fmt.Errorf("%w: negative attempts or duration", ErrConfig)
	}
	if cfg.GroupID == "" {
		cfg.GroupID = DefaultGroupID
	}
	if cfg.RetryTopic == "" {
		cfg.RetryTopic = DefaultRetryTopic
	}
	if len(cfg.Topics) == 0 {
		cfg.Topics = []string{published.TopicUsers, published.TopicOrders, cfg.RetryTopic}
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	if cfg.ReplicationFactor <= 0 {
		cfg.ReplicationFactor = 1
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = cfg.RetryMin
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = DefaultLookup
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = DefaultDLQTopic
	}
	if cfg.Lanes == 0 {
		cfg.Lanes = DefaultLanes
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, string) {}
	}
	return &Notifier{cfg: cfg, log: log}, nil
}

// Setup creates the topics the notifier reads and writes (Topics, the
// retry and the dead-letter topic) when they do not exist, with
// Partitions; topics that exist are left as they are. A consumer group
// whose topics do not all exist when it joins consumes nothing, and the
// notifier may start before the publisher has created the event topics.
// Errors: the broker's.
func (n *Notifier) Setup(ctx context.Context) error {
	c := &kafka.Client{Addr: kafka.TCP(n.cfg.Brokers...), Timeout: 10 * time.Second}
	topics := append(slices.Clone(n.cfg.Topics), n.cfg.DLQTopic)
	if !slices.Contains(topics, n.cfg.RetryTopic) {
		topics = append(topics, n.cfg.RetryTopic)
	}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{
			Topic: t, NumPartitions: n.cfg.Partitions, ReplicationFactor: n.cfg.ReplicationFactor,
		})
	}
	resp, err := c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("notifier: create topics: %w", err)
	}
	for _, t := range topics {
		if err := resp.Errors[t]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("notifier: create topic %s: %w", t, err)
		}
	}
	return nil
}

// Ping asks the brokers for the metadata of the topics the notifier
// reads: it fails when no broker answers, for readiness checks.
func (n *Notifier) Ping(ctx context.Context) error {
	c := &kafka.Client{Addr: kafka.TCP(n.cfg.Brokers...), Timeout: 5 * time.Second}
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: n.cfg.Topics}); err != nil {
		return fmt.Errorf("kafka: metadata: %w", err)
	}
	return nil
}

// GroupID is the consumer group the notifier reads in.
func (n *Notifier) GroupID() string { return n.cfg.GroupID }

// Lag measures how far the notifier's consumer group is behind on each
// partition of the topics it reads. Errors: the brokers'.
func (n *Notifier) Lag(ctx context.Context) ([]kafkalag.Partition, error) {
	c := &kafka.Client{Addr: kafka.TCP(n.cfg.Brokers...), Timeout: 5 * time.Second}
	return kafkalag.Group(ctx, c, n.cfg.GroupID, n.cfg.Topics)
}

// Run creates the notifier's topics (Setup), then consumes until ctx
// ends, and then returns nil. It returns an error only when it cannot go
// on: Setup failing, a fetch or a commit failing for another reason
// than ctx ending. A message being handled when ctx ends is not committed,
// so the next member of the group handles it again (the ledger keeps that
// from sending twice); what was handled before is committed on the way
// out.
func (n *Notifier) Run(ctx context.Context) error {
	if err := n.Setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// Rows this process claims are its own: once it is gone (killed),
	// the next claim takes them over at once instead of waiting out the
	// lease.
	claims, release, err := n.cfg.Ledger.Hold(ctx, n.log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("notifier: %w", err)
	}
	defer release()
	n.claims = claims
	klog := kafkalog.New(n.log, "notifier: kafka: ")
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: n.cfg.Brokers, GroupID: n.cfg.GroupID, GroupTopics: n.cfg.Topics,
		StartOffset: kafka.FirstOffset,
		// Commits happen only in CommitMessages, after a message is handled.
		CommitInterval: 0,
		MinBytes:       1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		HeartbeatInterval: time.Second, JoinGroupBackoff: time.Second,
		ErrorLogger: klog,
	})
	defer func() { klog.Closing(); r.Close() }()
	w := &kafka.Writer{
		Addr: kafka.TCP(n.cfg.Brokers...), Topic: n.cfg.DLQTopic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	return n.consume(ctx, r, w)
}

// consume fetches messages into the lanes and commits what they handled,
// until ctx ends (nil) or a fetch or a commit fails (its error).
func (n *Notifier) consume(parent context.Context, r *kafka.Reader, w *kafka.Writer) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	p := newProgress()
	lanes := make([]chan *inFlight, n.cfg.Lanes)
	var wg sync.WaitGroup
	var failOnce sync.Once
	var failed error
	fail := func(err error) {
		failOnce.Do(func() { failed = err })
		cancel()
	}
	for i := range lanes {
		lanes[i] = make(chan *inFlight, 64)
		wg.Go(func() {
			for f := range lanes[i] {
				// A batch is what the lane holds, up to Batch: one
				// message when the notifier keeps up, more when it is
				// behind.
				batch := []*inFlight{f}
			more:
				for len(batch) < n.cfg.Batch {
					select {
					case g, ok := <-lanes[i]:
						if !ok {
							break more
						}
						batch = append(batch, g)
					default:
						break more
					}
				}
				ms := make([]kafka.Message, len(batch))
				for k, f := range batch {
					ms[k] = f.m
				}
				// handleBatch fails when ctx has ended, or on what it
				// cannot retry; either way what is left in the lane
				// stays unhandled and uncommitted.
				if err := n.handleBatch(ctx, w, ms); err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					continue
				}
				for _, f := range batch {
					p.handled(f)
				}
			}
		})
	}
	drained := make(chan struct{})
	committed := make(chan error, 1)
	go func() {
		err := n.commitLoop(ctx, r, p, drained)
		cancel()
		committed <- err
	}()

	seed := maphash.MakeSeed()
	for ctx.Err() == nil {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("notifier: fetch: %w", err))
			}
			break
		}
		select {
		case lanes[lane(seed, m, len(lanes))] <- p.fetched(m):
		case <-ctx.Done():
		}
	}
	for _, l := range lanes {
		close(l)
	}
	wg.Wait()
	close(drained)
	if err := <-committed; err != nil {
		return err
	}
	return failed
}

// commitLoop commits the handled messages every commitEvery until ctx
// ends, and then, once the lanes are drained, what they handled last. It
// returns a commit's failure, after which nothing more is handled.
func (n *Notifier) commitLoop(ctx context.Context, r *kafka.Reader, p *progress, drained <-chan struct{}) error {
	commit := func(ctx context.Context) error {
		if ms := p.take(); len(ms) > 0 {
			if err := r.CommitMessages(ctx, ms...); err != nil {
				return fmt.Errorf("notifier: commit %d partitions: %w", len(ms), err)
			}
		}
		return nil
	}
	t := time.NewTicker(commitEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-drained
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			if err := commit(fctx); err != nil {
				n.log.Warn("notifier: committing what was handled on the way out failed; the next member handles it again", "err", err)
			}
			return nil
		case <-t.C:
			if err := commit(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}
