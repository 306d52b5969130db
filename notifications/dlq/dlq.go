// Package dlq replays the notifier's dead letters once the cause of their
// failure is fixed: `eventshop dlq replay`. Replay puts each dead letter
// back on the retry topic, which the notifier reads, after making its
// failed ledger rows claimable again.
//
// It replays the dead letters present when it starts, and only those. It
// takes the dead-letter topic's end offsets first, and consumes with a
// consumer group of its own, committing each dead letter once it is
// handled, until every partition is handled up to that end. A replayed
// message that fails again is dead-lettered again after that end, so a
// replay always finishes; the next one picks the new dead letter up.
//
// # Why nothing is lost and nothing is mailed twice
//
// Each dead letter is handled in this order: wait while its event has
// ledger rows that are not final, reset the event's failed rows
// (ledger.Requeue), publish it to the retry topic and wait for the
// brokers' acknowledgement (acks=all), and only then commit its offset.
//
//   - Requeue before publish. The notifier skips an event whose row is
//     'failed' (Claim answers AlreadyFailed) and commits it; a message
//     published before the reset could be consumed in that state, and the
//     dead letter, committed by then, would be lost.
//   - Wait for unsettled rows. The notifier writes a dead letter before it
//     marks the row failed, so that a crash in between leaves a duplicate
//     dead letter rather than none. A replay reading the dead letter in
//     that window finds the row still 'sending': resetting nothing and
//     publishing would have the notifier skip the message once the row is
//     marked failed. So Replay calls Requeue again every Poll while the
//     event has unsettled rows, which resets the row as soon as it fails.
//     After SettleTimeout it publishes anyway: a row still 'sending' then
//     is most likely a crashed notifier's, whose lease runs out, and the
//     retry message's claim takes it over. (Should a live notifier mark
//     it failed later still, the retry message is skipped and this dead
//     letter, committed, is lost: the one gap, which a generous timeout
//     keeps to a notifier stuck that long on its ledger.)
//   - Commit after the acknowledged publish. A crash (or a failed write)
//     before the commit leaves the dead letter to the next replay, which
//     publishes it again; a crash after the publish and before the commit
//     publishes it twice. Either way the notifier mails at most once: only
//     a claim that wins sends, the ledger's unique key gives one winner per
//     (event, template), and a row that was sent stays sent.
//   - Only failed rows are reset. Requeue never touches a 'sent' row, so
//     replaying an event whose mail went out (a duplicate dead letter, or
//     a replay run twice) only makes the notifier skip it as AlreadySent;
//     nor a row in flight, whose holder's attempt fencing stays intact.
//   - Messages past the snapshot are neither handled nor committed: the
//     group's committed offset never passes a dead letter it did not
//     replay, and a replay never chases its own failures.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/platform/kafkalog"
	"github.com/eventshop/eventshop/internal/platform/retry"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/published"
)

// Defaults of Config.
const (
	DefaultGroupID       = "eventshop-dlq-replay"
	DefaultSettleTimeout = 2 * time.Minute
	DefaultPoll          = 500 * time.Millisecond
)

// HeaderReplayedAt is added to a replayed message: when it was replayed,
// in RFC 3339. The dead letter's own headers, dlq_* included, are kept.
const HeaderReplayedAt = "dlq_replayed_at"

// commitTimeout bounds the commit of a dead letter already republished,
// which is done even when ctx has ended.
const commitTimeout = 10 * time.Second

// Config configures Replay. Brokers and Ledger are required.
type Config struct {
	Brokers []string
	// GroupID is the consumer group whose committed offsets say which
	// dead letters were replayed; default DefaultGroupID.
	GroupID string
	// DLQTopic is read; default notifier.DefaultDLQTopic.
	DLQTopic string
	// RetryTopic receives the replayed messages; default
	// notifier.DefaultRetryTopic. It must exist (the notifier creates it).
	RetryTopic string
	// Ledger is the notifier's ledger, whose failed rows are reset.
	Ledger *ledger.Ledger
	// SettleTimeout is how long a dead letter waits for its event's
	// unsettled ledger rows before it is replayed anyway; default
	// DefaultSettleTimeout.
	SettleTimeout time.Duration
	// Poll is how often the ledger is asked again while waiting, and how
	// long Replay waits for a message before it checks whether another
	// member of the group handled the partitions it waits for; default
	// DefaultPoll.
	Poll   time.Duration
	Logger *slog.Logger
}

// Result counts what Replay did.
type Result struct {
	// Replayed is the number of dead letters published to the retry topic
	// (and committed).
	Replayed int
	// Requeued is the number of ledger rows reset from 'failed'.
	Requeued int
	// Undecodable is the number of replayed dead letters whose value is
	// not an event envelope with a UUID id: no ledger row was reset for
	// them.
	Undecodable int
}

// String is what `eventshop dlq replay` prints: "replayed 2 dead letters
// (1 notification requeued, 0 undecodable)".
func (r Result) String() string {
	return fmt.Sprintf("replayed %s (%s requeued, %d undecodable)",
		plural(r.Replayed, "dead letter"), plural(r.Requeued, "notification"), r.Undecodable)
}

// plural is n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// ErrConfig is wrapped by Replay's errors about its Config.
var ErrConfig = errors.New("dlq: invalid config")

// Replay replays the dead letters of cfg.DLQTopic that are there when it
// starts and that cfg.GroupID has not committed (all of them, the first
// time), as the package doc describes, and returns what it did. With
// nothing to replay, or no dead-letter topic, it returns at once, without
// joining the group.
//
// Errors: ErrConfig; the brokers' or the ledger's, wrapped with what was
// being done and, for a dead letter, where it is (topic/partition@offset).
// When ctx ends it returns ctx.Err(); every dead letter published by then
// is committed. The Result counts what was done before any error.
func Replay(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return Result{}, err
	}
	tr := &kafka.Transport{ClientID: "eventshop-dlq-replay"}
	defer tr.CloseIdleConnections()
	r := &replayer{cfg: cfg, log: cfg.Logger.With("component", "dlq-replay", "topic", cfg.DLQTopic, "group", cfg.GroupID),
		client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: tr, Timeout: 10 * time.Second}}
	ends, err := r.snapshot(ctx)
	if err != nil && ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if err != nil || len(ends) == 0 {
		return Result{}, err
	}
	return r.run(ctx, ends, tr)
}

func withDefaults(cfg Config) (Config, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return cfg, fmt.Errorf("%w: no brokers", ErrConfig)
	case cfg.Ledger == nil:
		return cfg, fmt.Errorf("%w: no ledger", ErrConfig)
	case cfg.SettleTimeout < 0 || cfg.Poll < 0:
		return cfg, fmt.Errorf("%w: negative duration", ErrConfig)
	}
	if cfg.GroupID == "" {
		cfg.GroupID = DefaultGroupID
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = notifier.DefaultDLQTopic
	}
	if cfg.RetryTopic == "" {
		cfg.RetryTopic = notifier.DefaultRetryTopic
	}
	if cfg.DLQTopic == cfg.RetryTopic {
		return cfg, fmt.Errorf("%w: dead-letter and retry topic are both %s", ErrConfig, cfg.DLQTopic)
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = DefaultSettleTimeout
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

type replayer struct {
	cfg    Config
	log    *slog.Logger
	client *kafka.Client
	res    Result
}

// run consumes the dead-letter topic as the group until every partition
// of ends is handled up to its end.
func (r *replayer) run(ctx context.Context, ends map[int]int64, tr *kafka.Transport) (Result, error) {
	klog := kafkalog.New(r.log, "kafka: ")
	rd := kafka.NewReader(kafka.ReaderConfig{
		Brokers: r.cfg.Brokers, GroupID: r.cfg.GroupID, GroupTopics: []string{r.cfg.DLQTopic},
		StartOffset: kafka.FirstOffset,
		// Commits happen only in CommitMessages, after the publish.
		CommitInterval: 0,
		MinBytes:       1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		HeartbeatInterval: time.Second, JoinGroupBackoff: time.Second,
		ErrorLogger: klog,
	})
	defer func() {
		klog.Closing()
		rd.Close()
	}()
	w := &kafka.Writer{
		Addr: kafka.TCP(r.cfg.Brokers...), Topic: r.cfg.RetryTopic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, Transport: tr,
	}
	defer w.Close()

	for len(ends) > 0 {
		fctx, cancel := context.WithTimeout(ctx, r.cfg.Poll)
		m, err := rd.FetchMessage(fctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return r.res, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Idle: another member of the group may hold the partitions
			// left, and have handled them.
			if err := r.dropCommitted(ctx, ends); err != nil {
				return r.res, ctxErr(ctx, err)
			}
			continue
		case err != nil:
			return r.res, fmt.Errorf("dlq: fetch from %s: %w", r.cfg.DLQTopic, err)
		}
		end, ok := ends[m.Partition]
		if !ok || m.Offset >= end {
			// Past the snapshot (a dead letter of this replay's own
			// messages, perhaps): neither handled nor committed.
			delete(ends, m.Partition)
			continue
		}
		if err := r.handle(ctx, w, m); err != nil {
			return r.res, ctxErr(ctx, err)
		}
		// Committed even when ctx has just ended: the dead letter is
		// republished, and left uncommitted it would be again.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		err = rd.CommitMessages(cctx, m)
		cancel()
		if err != nil {
			return r.res, fmt.Errorf("dlq: commit %s: %w", where(m), err)
		}
		if m.Offset+1 >= end {
			delete(ends, m.Partition)
		}
	}
	return r.res, nil
}

// handle requeues the event of m in the ledger and republishes m to the
// retry topic.
func (r *replayer) handle(ctx context.Context, w *kafka.Writer, m kafka.Message) error {
	log := r.log.With("partition", m.Partition, "offset", m.Offset, "reason", header(m, notifier.HeaderDLQReason))
	requeued := 0
	env, err := published.Decode(m.Value)
	var eventID uuid.UUID
	if err == nil {
		eventID, err = uuid.Parse(env.ID)
	}
	if err != nil {
		// Nothing in the ledger to reset; the notifier will dead-letter it
		// again unless what failed to read it was fixed.
		r.res.Undecodable++
		log.WarnContext(ctx, "dlq: dead letter is not an event envelope with a UUID id; republishing it as it is", "err", err)
	} else {
		log = log.With("event_id", eventID)
		if requeued, err = r.requeue(ctx, log, eventID); err != nil {
			return fmt.Errorf("dlq: %s: %w", where(m), err)
		}
	}
	out := kafka.Message{Key: m.Key, Value: m.Value, Headers: replayHeaders(m.Headers, time.Now())}
	if err := w.WriteMessages(ctx, out); err != nil {
		return fmt.Errorf("dlq: republish %s to %s: %w", where(m), r.cfg.RetryTopic, err)
	}
	r.res.Replayed++
	log.InfoContext(ctx, "dlq: dead letter replayed", "requeued", requeued)
	return nil
}

// requeue resets the failed ledger rows of eventID, waiting up to
// SettleTimeout for its unsettled rows (see the package doc), and returns
// how many rows it reset.
func (r *replayer) requeue(ctx context.Context, log *slog.Logger, eventID uuid.UUID) (int, error) {
	deadline := time.Now().Add(r.cfg.SettleTimeout)
	total := 0
	for waited := false; ; waited = true {
		n, unsettled, err := r.cfg.Ledger.Requeue(ctx, eventID)
		if err != nil {
			return total, err
		}
		total += n
		r.res.Requeued += n
		if unsettled == 0 {
			return total, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			log.WarnContext(ctx, "dlq: notifications still unsettled after the settle timeout; replaying anyway",
				"unsettled", unsettled, "settle_timeout", r.cfg.SettleTimeout.String())
			return total, nil
		}
		if !waited {
			log.InfoContext(ctx, "dlq: waiting for notifications to settle", "unsettled", unsettled)
		}
		if err := retry.Sleep(ctx, min(r.cfg.Poll, left)); err != nil {
			return total, err
		}
	}
}

// ctxErr is ctx.Err() when ctx has ended, which is then why err
// happened, and err otherwise.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// replayHeaders returns the dead letter's headers with HeaderReplayedAt
// set to now.
func replayHeaders(in []kafka.Header, now time.Time) []kafka.Header {
	out := make([]kafka.Header, 0, len(in)+1)
	for _, h := range in {
		if h.Key != HeaderReplayedAt {
			out = append(out, h)
		}
	}
	return append(out, kafka.Header{Key: HeaderReplayedAt, Value: []byte(now.UTC().Format(time.RFC3339))})
}

// header returns the value of m's last header key, or "".
func header(m kafka.Message, key string) string {
	v := ""
	for _, h := range m.Headers {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}

// where names m in errors: topic/partition@offset.
func where(m kafka.Message) string {
	return m.Topic + "/" + strconv.Itoa(m.Partition) + "@" + strconv.FormatInt(m.Offset, 10)
}
