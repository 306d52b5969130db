package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/kafkalog"

	"github.com/eventshop/eventshop/published"
)

// consumeOptions are the flags of the consume subcommand.
type consumeOptions struct {
	brokers       []string
	topics        []string
	group         string
	fromBeginning bool
	max           int
	timeout       time.Duration
}

// consumedMessage is the line consume prints for each message.
type consumedMessage struct {
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key"`
	Timestamp time.Time         `json:"timestamp"`
	Headers   map[string]string `json:"headers"`
	// Event is the CloudEvents envelope as published (checked with
	// published.Decode, printed as is so that attributes added later are
	// shown too); null when the value is not an envelope.
	Event json.RawMessage `json:"event"`
	// Value and Error are set only when the value is not an envelope.
	Value string `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

// consume is a downstream consumer of the event topics: it prints one
// JSON object per message on stdout (see usage). With a group it commits
// each message's offset only after its line is written, so a consumer
// that stops never skips a message it did not print; it may print the
// last one again. It returns nil when ctx ends, after --max messages, or
// after --timeout without a message.
func consume(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	o, err := parseConsume(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	o.brokers = cfg.KafkaBrokers
	if len(o.brokers) == 0 {
		o.brokers = []string{cfg.KafkaAddr} // the local run's embedded broker
	}
	log = log.With("component", "consume", "brokers", strings.Join(o.brokers, ","))
	var src source
	if o.group != "" {
		src = newGroupSource(o, log)
	} else {
		src, err = newPartitionSource(ctx, o, log)
		if err != nil {
			return err
		}
	}
	defer src.close()
	log.Debug("consuming", "topics", o.topics, "group", o.group, "from_beginning", o.fromBeginning)

	for n := 0; o.max == 0 || n < o.max; n++ {
		m, err := fetch(ctx, src, o.timeout)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			log.Debug("idle; exiting", "timeout", o.timeout.String(), "messages", n)
			return nil
		case err != nil:
			return fmt.Errorf("consume: %w", err)
		}
		line, err := render(m)
		if err != nil {
			log.Error("message is not an event envelope", "topic", m.Topic, "partition", m.Partition,
				"offset", m.Offset, "error", err)
		}
		if _, err := stdout.Write(line); err != nil {
			return fmt.Errorf("consume: write output: %w", err)
		}
		if err := commit(ctx, src, m); err != nil {
			return fmt.Errorf("consume: commit %s/%d offset %d: %w", m.Topic, m.Partition, m.Offset, err)
		}
	}
	return nil
}

// commit commits m even when ctx has just ended: its line is printed, and
// a commit skipped now would print it again on the next run.
func commit(ctx context.Context, src source, m kafka.Message) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return src.commit(ctx, m)
}

func parseConsume(args []string, stderr io.Writer) (consumeOptions, error) {
	fs := flag.NewFlagSet("eventshop consume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o consumeOptions
	topics := fs.String("topics", strings.Join(published.Topics(), ","), "comma-separated `topics` to read")
	fs.StringVar(&o.group, "group", "", "consume as consumer group `name`, committing after each printed message")
	fs.BoolVar(&o.fromBeginning, "from-beginning", false,
		"start at the first offset (with --group: where the group has no committed offset); otherwise at the end")
	fs.IntVar(&o.max, "max", 0, "exit after `n` messages (0: no limit)")
	fs.DurationVar(&o.timeout, "timeout", 0, "exit after `duration` without a message (0: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, errUsage // the flag package has said what is wrong
	}
	var bad []string
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.topics = append(o.topics, t)
		}
	}
	if len(o.topics) == 0 {
		bad = append(bad, "--topics: name at least one topic")
	}
	if o.max < 0 {
		bad = append(bad, "--max: want 0 or more")
	}
	if o.timeout < 0 {
		bad = append(bad, "--timeout: want 0 or a positive duration")
	}
	if len(bad) > 0 {
		return o, fmt.Errorf("consume: %s", strings.Join(bad, "; "))
	}
	return o, nil
}

// fetch waits for the next message, up to timeout when it is positive.
func fetch(ctx context.Context, src source, timeout time.Duration) (kafka.Message, error) {
	if timeout <= 0 {
		return src.fetch(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return src.fetch(ctx)
}

// render returns m's output line. When m's value is not an envelope it
// still returns the line, with the value and the error in it, and the
// error.
func render(m kafka.Message) ([]byte, error) {
	out := consumedMessage{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key),
		Timestamp: m.Time.UTC(), Headers: make(map[string]string, len(m.Headers)), Event: json.RawMessage("null")}
	for _, h := range m.Headers {
		out.Headers[h.Key] = string(h.Value)
	}
	_, derr := published.Decode(m.Value)
	var compact bytes.Buffer
	if derr == nil {
		derr = json.Compact(&compact, m.Value)
	}
	if derr == nil {
		out.Event = compact.Bytes()
	} else {
		out.Value, out.Error = string(m.Value), derr.Error()
	}
	line, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode output line: %w", err)
	}
	return append(line, '\n'), derr
}

// source is where consume's messages come from.
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

func newGroupSource(o consumeOptions, log *slog.Logger) *groupSource {
	klog := kafkalog.New(log, "kafka: ")
	start := kafka.LastOffset
	if o.fromBeginning {
		start = kafka.FirstOffset
	}
	return &groupSource{log: klog, r: kafka.NewReader(kafka.ReaderConfig{
		Brokers: o.brokers, GroupID: o.group, GroupTopics: o.topics, StartOffset: start,
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

func newPartitionSource(ctx context.Context, o consumeOptions, log *slog.Logger) (*partitionSource, error) {
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tr := &kafka.Transport{ClientID: "eventshop-consume"}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(o.brokers...), Transport: tr}
	md, err := c.Metadata(mctx, &kafka.MetadataRequest{Topics: o.topics})
	if err != nil {
		return nil, fmt.Errorf("consume: topics %s: %w", strings.Join(o.topics, ","), err)
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
				Brokers: o.brokers, Topic: t.Name, Partition: p.ID,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
				ErrorLogger: s.log,
			})
			if !o.fromBeginning {
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
