package consume

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/platform/kafkalog"
)

// source is where Run's messages come from.
type source interface {
	// fetch returns the next message. Errors: ctx's, or the reader's.
	fetch(ctx context.Context) (kafka.Message, error)
	// commit records that m was processed.
	commit(ctx context.Context, m kafka.Message) error
	close()
}

// groupSource is a consumer group member: Kafka assigns it partitions and
// keeps its committed offsets.
type groupSource struct {
	r   *kafka.Reader
	log *kafkalog.Logger
}

// newGroupSource joins group o.Group; it connects on the first fetch.
func newGroupSource(o Options, log *slog.Logger) *groupSource {
	klog := kafkalog.New(log, "kafka: ")
	start := kafka.LastOffset
	if o.FromBeginning {
		start = kafka.FirstOffset
	}
	return &groupSource{log: klog, r: kafka.NewReader(kafka.ReaderConfig{
		Brokers: o.Brokers, GroupID: o.Group, GroupTopics: o.Topics, StartOffset: start,
		// Commits happen in CommitMessages, synchronously, never in the
		// background before a message was printed.
		CommitInterval: 0,
		MinBytes:       1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
		// A short-lived command line member: leave a dead member's
		// partitions to the others soon.
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		HeartbeatInterval: time.Second, JoinGroupBackoff: time.Second,
		ErrorLogger: klog,
	})}
}

func (g *groupSource) fetch(ctx context.Context) (kafka.Message, error) {
	m, err := g.r.FetchMessage(ctx)
	if err != nil {
		return m, fmt.Errorf("fetch: %w", err)
	}
	return m, nil
}

func (g *groupSource) commit(ctx context.Context, m kafka.Message) error {
	return g.r.CommitMessages(ctx, m)
}

func (g *groupSource) close() {
	g.log.Closing()
	g.r.Close()
}

// partitionSource reads every partition of the topics, one reader each,
// with no group and no commits.
type partitionSource struct {
	log     *kafkalog.Logger
	readers []*kafka.Reader
	msgs    chan kafka.Message
	errs    chan error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// newPartitionSource starts a reader on every partition of o.Topics, at
// their ends unless o.FromBeginning. Errors: a topic that does not exist,
// or the brokers' metadata not answering within 30 s.
func newPartitionSource(ctx context.Context, o Options, log *slog.Logger) (*partitionSource, error) {
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tr := &kafka.Transport{ClientID: "eventshop-consume"}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(o.Brokers...), Transport: tr}
	md, err := c.Metadata(mctx, &kafka.MetadataRequest{Topics: o.Topics})
	if err != nil {
		return nil, fmt.Errorf("consume: topics %s: %w", strings.Join(o.Topics, ","), err)
	}
	rctx, stop := context.WithCancel(ctx)
	s := &partitionSource{log: kafkalog.New(log, "kafka: "), msgs: make(chan kafka.Message), errs: make(chan error, 1), cancel: stop}
	for _, t := range md.Topics {
		if t.Error != nil {
			s.close()
			return nil, fmt.Errorf("consume: topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: o.Brokers, Topic: t.Name, Partition: p.ID,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
				ErrorLogger: s.log,
			})
			if !o.FromBeginning {
				if err := r.SetOffset(kafka.LastOffset); err != nil {
					r.Close()
					s.close()
					return nil, fmt.Errorf("consume: %s/%d: %w", t.Name, p.ID, err)
				}
			}
			s.readers = append(s.readers, r)
			s.wg.Go(func() { s.pump(rctx, r) })
		}
	}
	return s, nil
}

// pump feeds r's messages to s.msgs, in r's (one partition's) order.
func (s *partitionSource) pump(ctx context.Context, r *kafka.Reader) {
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				select {
				case s.errs <- fmt.Errorf("fetch %s/%d: %w", r.Config().Topic, r.Config().Partition, err):
				default: // another partition's error is being reported
				}
			}
			return
		}
		select {
		case s.msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

func (s *partitionSource) fetch(ctx context.Context) (kafka.Message, error) {
	select {
	case m := <-s.msgs:
		return m, nil
	case err := <-s.errs:
		return kafka.Message{}, err
	case <-ctx.Done():
		return kafka.Message{}, ctx.Err()
	}
}

func (s *partitionSource) commit(context.Context, kafka.Message) error { return nil }

// close stops the readers, all at once: each may take up to MaxWait to
// notice, as its fetch in flight is not interrupted.
func (s *partitionSource) close() {
	s.log.Closing()
	s.cancel()
	for _, r := range s.readers {
		s.wg.Go(func() { r.Close() })
	}
	s.wg.Wait()
}
