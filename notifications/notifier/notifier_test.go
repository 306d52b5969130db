package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	netmail "net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

const dlqTopic = "test.notifications.dlq"

// from is the sender of every test mail; its domain is the right side of
// the Message-IDs.
const from = "eventshop <no-reply@eventshop.test>"

type env struct {
	t       *testing.T
	brokers []string
	dbURL   string
	sink    *smtpsink.Sink
	ledger  *ledger.Ledger
	render  *templates.Renderer
	writer  *kafka.Writer
	owners  sync.Map // order id -> user id
	users   sync.Map // user id -> templates.Recipient
}

func newEnv(t *testing.T) *env { return newEnvPartitions(t, 1) }

// newEnvPartitions is newEnv with the user, order and dead-letter topics
// created with partitions partitions.
func newEnvPartitions(t *testing.T, partitions int) *env {
	t.Helper()
	ctx := context.Background()
	b := kafkatest.Start(t)
	e := &env{t: t, brokers: b.Addrs()}
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	var tcs []kafka.TopicConfig
	for _, topic := range []string{published.TopicUsers, published.TopicOrders, dlqTopic} {
		tcs = append(tcs, kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	}
	if _, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: tcs}); err != nil {
		t.Fatal(err)
	}
	sink, err := smtpsink.Start(smtpsink.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	e.sink = sink
	e.dbURL = pgtest.NewDatabase(t)
	pool, err := newPool(ctx, e.dbURL)
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

// newPool connects to dbURL with a small pool: many tests and child
// processes share one server.
func newPool(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 4
	return pgxpool.NewWithConfig(ctx, cfg)
}

// newSender returns a mail sender to addr, with the From of every test.
func newSender(addr string) (*mail.Sender, error) {
	return mail.New(mail.Config{Addr: addr, From: from, Timeout: 5 * time.Second})
}

// start runs a notifier until the returned stop is called (or the test ends).
func (e *env) start() (stop func()) {
	e.t.Helper()
	return e.startWith(nil)
}

// startWith is start with the notifier's config changed by opt first, when
// opt is not nil.
func (e *env) startWith(opt func(*notifier.Config)) (stop func()) {
	e.t.Helper()
	return e.startCtx(context.Background(), opt)
}

// startCtx is startWith, with the notifier also stopping when parent ends
// (stop must still be called to wait for it).
func (e *env) startCtx(parent context.Context, opt func(*notifier.Config)) (stop func()) {
	e.t.Helper()
	sender, err := newSender(e.sink.Addr())
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := notifier.Config{
		Brokers: e.brokers, GroupID: "test-notifier", Ledger: e.ledger, Renderer: e.render, Sender: sender,
		Recipients: func(_ context.Context, id uuid.UUID) (templates.Recipient, error) {
			r, _ := e.users.Load(id)
			return r.(templates.Recipient), nil
		},
		Owner: func(_ context.Context, env published.Envelope) (uuid.UUID, error) {
			id, _ := e.owners.Load(strings.TrimPrefix(env.Subject, order.StreamPrefix))
			return id.(uuid.UUID), nil
		},
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, Lease: 10 * time.Second,
		DLQTopic: dlqTopic, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if opt != nil {
		opt(&cfg)
	}
	n, err := notifier.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(parent)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// publish writes the envelope of an event to its topic, keyed by aggregate
// id, and returns the message value.
func (e *env) publish(stream string, v interface{ EventType() string }, headers ...kafka.Header) []byte {
	e.t.Helper()
	value := e.envelope(stream, v)
	e.write(stream, value, headers...)
	return value
}

// envelope returns the message value of a new event v on stream.
func (e *env) envelope(stream string, v interface{ EventType() string }) []byte {
	e.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	ev := &eventstore.Event{StreamID: stream, EventData: eventstore.EventData{
		ID: uuid.Must(uuid.NewV7()), Type: v.EventType(), Data: data,
		Metadata: eventstore.Metadata{Timestamp: time.Now().UTC()}}}
	value, err := json.Marshal(published.NewEnvelope(ev))
	if err != nil {
		e.t.Fatal(err)
	}
	return value
}

func (e *env) write(stream string, value []byte, headers ...kafka.Header) {
	e.t.Helper()
	topic, key, ok := published.Route(stream)
	if !ok {
		e.t.Fatalf("no route for %s", stream)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.writer.WriteMessages(ctx, kafka.Message{Topic: topic, Key: []byte(key), Value: value, Headers: headers}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) waitMails(n int) []smtpsink.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := e.sink.Wait(ctx, func(m []smtpsink.Message) bool { return len(m) >= n })
	if err != nil {
		e.t.Fatalf("waiting for %d mails, got %d: %v", n, len(msgs), err)
	}
	return msgs
}

// newUser registers a user (the event, with headers) and knows their
// address.
func (e *env) newUser(name string, headers ...kafka.Header) (uuid.UUID, []byte) {
	e.t.Helper()
	id := uuid.Must(uuid.NewV7())
	email := strings.ToLower(name) + "@example.com"
	e.users.Store(id, templates.Recipient{Email: email, Name: name})
	v := e.publish(user.StreamPrefix+id.String(), user.Registered{UserID: id.String(), Email: email, FullName: name, Roles: []string{"customer"}}, headers...)
	return id, v
}

func (e *env) newOrderID(owner uuid.UUID) string {
	id := uuid.Must(uuid.NewV7()).String()
	e.owners.Store(id, owner)
	return id
}

func subjectOf(t *testing.T, r *templates.Renderer, value []byte) string {
	t.Helper()
	env, err := published.Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	m, ok, err := r.Render(env, templates.Recipient{Email: "x@example.com"})
	if err != nil || !ok {
		t.Fatalf("render: %v %v", ok, err)
	}
	return m.Subject
}

func created(orderID string, userID uuid.UUID) order.Created {
	return order.Created{OrderID: orderID, UserID: userID.String(), Total: 1250,
		Items: []order.Item{{ProductID: uuid.NewString(), SKU: "SKU-1", Name: "Mug", Quantity: 1, Price: 1250}}}
}

func TestMailsArriveOnceAndResumeAfterRestart(t *testing.T) {
	e := newEnv(t)
	stop := e.start()
	ada, reg := e.newUser("Ada")
	oid := e.newOrderID(ada)
	stream := order.StreamPrefix + oid
	cr := e.publish(stream, created(oid, ada))
	e.write(stream, cr)                                                        // delivered twice
	e.publish(stream, order.Refunded{OrderID: oid, RefundID: "r1", Amount: 1}) // no mail
	paid := e.publish(stream, order.Paid{OrderID: oid, PaymentID: "p1", Amount: 1250, Last4: "4242"})
	canc := e.publish(stream, order.Cancelled{OrderID: oid, Reason: "changed my mind", Refunded: true})
	msgs := e.waitMails(4)
	want := map[string]bool{}
	for _, v := range [][]byte{reg, cr, paid, canc} {
		want[subjectOf(t, e.render, v)] = true
	}
	for _, m := range msgs {
		if len(m.To) != 1 || m.To[0] != "ada@example.com" || !want[m.Subject] {
			t.Errorf("mail to %v subject %q, want ada@example.com and one of %v", m.To, m.Subject, want)
		}
		delete(want, m.Subject)
	}
	stop()

	// A new member of the same group resumes after the committed ones.
	_, reg2 := e.newUser("Bob")
	stop = e.start()
	msgs = e.waitMails(5)
	if s := subjectOf(t, e.render, reg2); msgs[4].Subject != s || msgs[4].To[0] != "bob@example.com" {
		t.Fatalf("fifth mail %q to %v, want %q to bob", msgs[4].Subject, msgs[4].To, s)
	}
	// A marker after everything: once it arrives, nothing else is coming.
	e.newUser("Cy")
	msgs = e.waitMails(6)
	stop()
	if len(msgs) != 6 {
		t.Fatalf("%d mails, want 6 (no resends)", len(msgs))
	}
}

func (e *env) row(t *testing.T, userID uuid.UUID) ledger.Notification {
	t.Helper()
	rows, _, err := e.ledger.List(context.Background(), ledger.Query{UserID: &userID})
	if err != nil || len(rows) != 1 {
		t.Fatalf("ledger rows of %s: %+v %v", userID, rows, err)
	}
	return rows[0]
}

func TestTemporaryFailureIsRetried(t *testing.T) {
	e := newEnv(t)
	e.sink.FailNext(2, 451, "try again later")
	e.startWith(oneLane) // Ada's sends first
	ada, _ := e.newUser("Ada")
	e.newUser("Bob") // after it, Ada's retries are over
	msgs := e.waitMails(2)
	if len(msgs) != 2 || msgs[0].To[0] != "ada@example.com" {
		t.Fatalf("mails %+v", msgs)
	}
	if r := e.row(t, ada); r.Status != ledger.StatusSent || r.Attempts != 3 {
		t.Fatalf("ledger row: status %s attempts %d, want sent 3", r.Status, r.Attempts)
	}
}

func TestPermanentFailureIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.sink.FailNext(1, 550, "no such user")
	e.startWith(oneLane) // Ada's send first
	ada, reg := e.newUser("Ada")
	e.newUser("Bob")
	msgs := e.waitMails(1)
	if msgs[0].To[0] != "bob@example.com" {
		t.Fatalf("mail to %v, want bob", msgs[0].To)
	}
	if r := e.row(t, ada); r.Status != ledger.StatusFailed {
		t.Fatalf("ledger row status %s, want failed", r.Status)
	}
	dl := kafkatest.ReadAll(t, e.brokers, dlqTopic)
	if len(dl) != 1 || string(dl[0].Value) != string(reg) || dl[0].Key != ada.String() {
		t.Fatalf("dead letters %+v", dl)
	}
	h := dl[0].Headers
	if !strings.Contains(h[notifier.HeaderDLQReason], "550") || h[notifier.HeaderDLQAttempts] != "1" ||
		h[notifier.HeaderDLQTopic] != published.TopicUsers || h[notifier.HeaderDLQPartition] != "0" ||
		h[notifier.HeaderDLQOffset] != "0" {
		t.Fatalf("dead letter headers %v", h)
	}
}

// publishShop publishes, for users new users named prefix00, prefix01, …,
// their registration and an order each, paid for the first paid of them,
// and returns the ledger keys of the mails those events call for. With
// twice, every message is written a second time right after the first, as
// a producer retry would.
func (e *env) publishShop(prefix string, users, paid int, twice bool) []string {
	e.t.Helper()
	var keys []string
	emit := func(stream string, v interface{ EventType() string }) {
		value := e.publish(stream, v)
		if twice {
			e.write(stream, value)
		}
		keys = append(keys, e.keyOf(value))
	}
	for i := range users {
		name := fmt.Sprintf("%s%02d", prefix, i)
		id := uuid.Must(uuid.NewV7())
		email := strings.ToLower(name) + "@example.com"
		e.users.Store(id, templates.Recipient{Email: email, Name: name})
		emit(user.StreamPrefix+id.String(), user.Registered{UserID: id.String(), Email: email, FullName: name, Roles: []string{"customer"}})
		oid := e.newOrderID(id)
		stream := order.StreamPrefix + oid
		emit(stream, created(oid, id))
		if i < paid {
			emit(stream, order.Paid{OrderID: oid, PaymentID: "p-" + oid, Amount: 1250, Last4: "4242"})
		}
	}
	return keys
}

// keyOf returns the ledger key of the mail the event in value calls for.
func (e *env) keyOf(value []byte) string {
	e.t.Helper()
	env, err := published.Decode(value)
	if err != nil {
		e.t.Fatal(err)
	}
	m, ok, err := e.render.Render(env, templates.Recipient{Email: "x@example.com"})
	if err != nil || !ok {
		e.t.Fatalf("render %s: %v %v", env.Type, ok, err)
	}
	return ledger.Key(uuid.MustParse(env.ID), m.Template)
}

// messageID returns the Message-ID the notifier gives the mail of key.
func (e *env) messageID(key string) string {
	e.t.Helper()
	s, err := newSender(e.sink.Addr())
	if err != nil {
		e.t.Fatal(err)
	}
	return s.MessageID(key)
}

// rows returns every row of the ledger; tests keep to one page of them.
func (e *env) rows() []ledger.Notification {
	e.t.Helper()
	rows, total, err := e.ledger.List(context.Background(), ledger.Query{Limit: ledger.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	if total > len(rows) {
		e.t.Fatalf("%d ledger rows, more than one page", total)
	}
	return rows
}

// waitAllSent waits until the ledger has a row for each of keys and every
// row is sent, and returns the rows by key.
func (e *env) waitAllSent(keys []string, within time.Duration) map[string]ledger.Notification {
	e.t.Helper()
	var byKey map[string]ledger.Notification
	testwait.Until(e.t, within, func() string {
		rows := e.rows()
		byKey = map[string]ledger.Notification{}
		sent := 0
		for _, r := range rows {
			byKey[r.Key] = r
			if r.Status == ledger.StatusSent {
				sent++
			}
		}
		if len(rows) != len(keys) || sent != len(rows) {
			return fmt.Sprintf("%d ledger rows, %d sent, want %d sent", len(rows), sent, len(keys))
		}
		return ""
	})
	for _, k := range keys {
		r, ok := byKey[k]
		if !ok {
			e.t.Fatalf("no ledger row for %s", k)
		}
		if r.MessageID != e.messageID(k) {
			e.t.Errorf("row %s: Message-ID %s, want %s", k, r.MessageID, e.messageID(k))
		}
	}
	return byKey
}

// countByMessageID counts the mails of each Message-ID.
func countByMessageID(msgs []smtpsink.Message) map[string]int {
	n := map[string]int{}
	for _, m := range msgs {
		n[m.MessageID]++
	}
	return n
}

// waitRow waits until userID has one ledger row, in status, and returns it.
func (e *env) waitRow(userID uuid.UUID, status ledger.Status) ledger.Notification {
	e.t.Helper()
	var row ledger.Notification
	testwait.Until(e.t, 30*time.Second, func() string {
		rows, _, err := e.ledger.List(context.Background(), ledger.Query{UserID: &userID})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Status != status {
			return fmt.Sprintf("ledger rows of %s: %+v, want one %s", userID, rows, status)
		}
		row = rows[0]
		return ""
	})
	return row
}

// oneLane has the notifier handle one message at a time, for tests whose
// SMTP failures must fall on the sends in the order the messages were
// written.
func oneLane(c *notifier.Config) { c.Lanes = 1 }

// countingSender counts the sends in progress at once, holding each a
// little, and keeps the order of the subjects sent to each address.
type countingSender struct {
	notifier.Sender
	mu        sync.Mutex
	now, most int
	byAddress map[string][]string
}

func (s *countingSender) Send(ctx context.Context, m mail.Message) error {
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	err := s.Sender.Send(ctx, m)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now--
	if a, perr := netmail.ParseAddress(m.To); err == nil && perr == nil {
		s.byAddress[a.Address] = append(s.byAddress[a.Address], m.Subject)
	}
	return err
}

// TestLanesSendAtOnceInEachAggregatesOrder: mails of different orders go
// out at once, and each order's mails in the order of its events.
func TestLanesSendAtOnceInEachAggregatesOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const orders = 24
	want := map[string][]string{}
	for i := range orders {
		u, _ := e.newUser(fmt.Sprintf("Lane%02d", i))
		oid := e.newOrderID(u)
		stream := order.StreamPrefix + oid
		addr := fmt.Sprintf("lane%02d@example.com", i)
		for _, v := range []interface{ EventType() string }{
			created(oid, u), order.Paid{OrderID: oid, PaymentID: "p", Amount: 1250, Last4: "4242"},
			order.Cancelled{OrderID: oid, Reason: "changed my mind", Refunded: true},
		} {
			want[addr] = append(want[addr], subjectOf(t, e.render, e.publish(stream, v)))
		}
	}
	var cs *countingSender
	stop := e.startWith(func(c *notifier.Config) {
		cs = &countingSender{Sender: c.Sender, byAddress: map[string][]string{}}
		c.Sender = cs
	})
	e.waitMails(orders * 4) // each user's welcome, then the order's three
	stop()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.most < 2 {
		t.Errorf("at most %d send at once, want several lanes sending together", cs.most)
	}
	for addr, subjects := range want {
		var got []string
		for _, s := range cs.byAddress[addr] {
			if slices.Contains(subjects, s) {
				got = append(got, s)
			}
		}
		if !slices.Equal(got, subjects) {
			t.Errorf("%s got %q, want %q in that order", addr, got, subjects)
		}
	}
}
