package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
	"github.com/eventshop/eventshop/notifications/dlq"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

const (
	dlqTopic    = notifier.DefaultDLQTopic
	retryTopic  = notifier.DefaultRetryTopic
	replayGroup = "test-dlq-replay"
	// dlqPartitions is more than one, so that a replay has partitions
	// with dead letters and partitions without.
	dlqPartitions = 3
	within        = 30 * time.Second
)

// env is a broker, PostgreSQL with the ledger, an SMTP sink, and a notifier
// when started: the pieces a replay works with, all real.
type env struct {
	t       *testing.T
	brokers []string
	sink    *smtpsink.Sink
	ledger  *ledger.Ledger
	render  *templates.Renderer
	writer  *kafka.Writer
	logs    *logRecorder
}

// newEnv creates the event topics (one partition each) and the
// dead-letter and retry topics (dlqPartitions each).
func newEnv(t *testing.T) *env {
	t.Helper()
	e := newBareEnv(t)
	ctx := context.Background()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	var tcs []kafka.TopicConfig
	for _, topic := range []string{published.TopicUsers, published.TopicOrders} {
		tcs = append(tcs, kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1})
	}
	for _, topic := range []string{dlqTopic, retryTopic} {
		tcs = append(tcs, kafka.TopicConfig{Topic: topic, NumPartitions: dlqPartitions, ReplicationFactor: 1})
	}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: tcs})
	if err != nil {
		t.Fatal(err)
	}
	for topic, err := range resp.Errors {
		if err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
	}
	return e
}

// newBareEnv is newEnv without any topic.
func newBareEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, brokers: kafkatest.Start(t).Addrs(), logs: &logRecorder{}}
	sink, err := smtpsink.Start(smtpsink.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	e.sink = sink
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.ledger = ledger.New(pool)
	if err := e.ledger.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if e.render, err = templates.New(templates.Options{}); err != nil {
		t.Fatal(err)
	}
	e.writer = &kafka.Writer{Addr: kafka.TCP(e.brokers...), Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { e.writer.Close() })
	return e
}

// startNotifier runs the real notifier, with the default dead-letter and
// retry topics, until the test ends.
func (e *env) startNotifier() {
	e.t.Helper()
	sender, err := mail.New(mail.Config{Addr: e.sink.Addr(), From: "eventshop <no-reply@eventshop.test>", Timeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := notifier.New(notifier.Config{
		Brokers: e.brokers, GroupID: "test-notifier", Ledger: e.ledger, Renderer: e.render, Sender: sender,
		// The tests send user.registered only, which carries its address.
		Recipients: func(context.Context, uuid.UUID) (templates.Recipient, error) {
			return templates.Recipient{}, errors.New("no lookup in these tests")
		},
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, Lease: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("notifier: %v", err)
		}
	})
}

// replay runs dlq.Replay with cfg, completed with the env's brokers,
// ledger and logger, the test group and a short poll.
func (e *env) replay(cfg dlq.Config) dlq.Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	res, err := e.tryReplay(ctx, cfg)
	if err != nil {
		e.t.Fatalf("Replay: %v (result %+v)", err, res)
	}
	return res
}

func (e *env) tryReplay(ctx context.Context, cfg dlq.Config) (dlq.Result, error) {
	cfg.Brokers, cfg.Ledger = e.brokers, e.ledger
	if cfg.GroupID == "" {
		cfg.GroupID = replayGroup
	}
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	cfg.Logger = slog.New(e.logs)
	return dlq.Replay(ctx, cfg)
}

// registered returns the envelope of a user.registered event for a new
// user with name, and the user's id.
func registered(t *testing.T, name string) (uuid.UUID, []byte) {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	data, err := json.Marshal(user.Registered{UserID: id.String(), Email: strings.ToLower(name) + "@example.com",
		FullName: name, Roles: []string{"customer"}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &eventstore.Event{StreamID: user.StreamPrefix + id.String(), EventData: eventstore.EventData{
		ID: uuid.Must(uuid.NewV7()), Type: user.Registered{}.EventType(), Data: data,
		Metadata: eventstore.Metadata{Timestamp: time.Now().UTC()}}}
	value, err := json.Marshal(published.NewEnvelope(ev))
	if err != nil {
		t.Fatal(err)
	}
	return id, value
}

// write writes one message to topic.
func (e *env) write(topic, key string, value []byte, headers ...kafka.Header) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.writer.WriteMessages(ctx, kafka.Message{Topic: topic, Key: []byte(key), Value: value, Headers: headers}); err != nil {
		e.t.Fatal(err)
	}
}

// newUser publishes the registration of a new user to the user topic, with
// a correlation header, and returns the user's id and the message value.
func (e *env) newUser(name string) (uuid.UUID, []byte) {
	e.t.Helper()
	id, value := registered(e.t, name)
	e.write(published.TopicUsers, id.String(), value, kafka.Header{Key: published.HeaderCorrelationID, Value: []byte("corr-" + name)})
	return id, value
}

// mailsTo waits until at least n mails went to addr and returns every mail.
func (e *env) mailsTo(addr string, n int) []smtpsink.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	msgs, err := e.sink.Wait(ctx, func(m []smtpsink.Message) bool { return countTo(m, addr) >= n })
	if err != nil {
		e.t.Fatalf("waiting for %d mails to %s, got %d: %v", n, addr, countTo(msgs, addr), err)
	}
	return msgs
}

func countTo(msgs []smtpsink.Message, addr string) int {
	n := 0
	for _, m := range msgs {
		if len(m.To) == 1 && m.To[0] == addr {
			n++
		}
	}
	return n
}

// waitRow waits until the only ledger row of user has status want, and
// returns it.
func (e *env) waitRow(userID uuid.UUID, want ledger.Status) ledger.Notification {
	e.t.Helper()
	var row ledger.Notification
	testwait.Until(e.t, within, func() string {
		rows, _, err := e.ledger.List(context.Background(), ledger.Query{UserID: &userID})
		switch {
		case err != nil:
			return err.Error()
		case len(rows) != 1:
			return fmt.Sprintf("%d ledger rows of the user, want 1", len(rows))
		case rows[0].Status != want:
			return "ledger row status " + string(rows[0].Status) + ", want " + string(want)
		}
		row = rows[0]
		return ""
	})
	return row
}

// waitRecords waits until topic holds n records and returns them.
func (e *env) waitRecords(topic string, n int) []kafkatest.Record {
	e.t.Helper()
	var recs []kafkatest.Record
	testwait.Until(e.t, within, func() string {
		if recs = kafkatest.ReadAll(e.t, e.brokers, topic); len(recs) != n {
			return fmt.Sprintf("%s holds %d records, want %d", topic, len(recs), n)
		}
		return ""
	})
	return recs
}

// committed returns the replay group's committed offset on partition p of
// the dead-letter topic, -1 for none.
func (e *env) committed(p int) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Transport: tr}
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: replayGroup, Topics: map[string][]int{dlqTopic: {p}}})
	if err == nil && errors.Is(resp.Error, kafka.GroupIdNotFound) {
		return -1 // the group never joined nor committed
	}
	if err != nil || resp.Error != nil {
		e.t.Fatalf("committed offsets: %v %v", err, resp.Error)
	}
	for _, po := range resp.Topics[dlqTopic] {
		if po.Partition == p {
			return po.CommittedOffset
		}
	}
	return -1
}

// logRecorder is a slog.Handler keeping the messages logged, so a test can
// wait for Replay to reach a step.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *logRecorder) logged(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if m == msg {
			return true
		}
	}
	return false
}
