package consume_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/internal/standins/kafkabroker"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	"github.com/eventshop/eventshop/published"
	"github.com/eventshop/eventshop/published/consume"
)

// consumeEnv is a broker with the event topics, and a store whose events
// it publishes through the Publisher.
type consumeEnv struct {
	broker *kafkabroker.Broker
	store  *memory.Store
	pub    *kafkapub.Publisher
	from   eventstore.Position // what was published so far
	stderr string              // of the last runConsume
}

func newConsumeEnv(t *testing.T) *consumeEnv {
	t.Helper()
	b := kafkatest.Start(t)
	p, err := kafkapub.New(kafkapub.Config{Brokers: b.Addrs(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &consumeEnv{broker: b, store: memory.New(), pub: p}
}

// publish appends n events to each of aggregates new streams (users,
// products and orders in turn), interleaved, and publishes them; it
// returns their ids in order.
func (e *consumeEnv) publish(t *testing.T, aggregates, n int) []string {
	t.Helper()
	ctx := context.Background()
	var streams []string
	for i := range aggregates {
		id := uuid.NewString()
		streams = append(streams, []string{user.Stream(id), product.Stream(id), order.Stream(id)}[i%3])
	}
	for v := range n {
		for _, s := range streams {
			if _, err := e.store.Append(ctx, s, eventstore.Exact(int64(v)-1), eventstore.EventData{
				Type: "test.happened", Data: json.RawMessage(fmt.Sprintf(`{"v":%d}`, v)),
				Metadata: eventstore.Metadata{CorrelationID: "corr-" + s},
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	evs, err := e.store.ReadAll(ctx, e.from, eventstore.MaxReadCount)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.pub.Apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	e.from = evs[len(evs)-1].Position
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID.String()
	}
	return ids
}

// consumedLine is an output line of Run, decoded.
type consumedLine struct {
	consume.Line
	env published.Envelope
}

// runConsume runs consume.Run with o against the broker and returns its
// output lines, each decoded, and its error. It fails t when Run takes
// over a minute.
func (e *consumeEnv) runConsume(t *testing.T, o consume.Options) ([]consumedLine, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	o.Brokers = e.broker.Addrs()
	if o.Topics == nil {
		o.Topics = published.Topics()
	}
	log := slog.New(slog.NewJSONHandler(&stderr, nil))
	err := consume.Run(ctx, o, &stdout, log)
	if ctx.Err() != nil {
		t.Fatalf("consume %+v still running after a minute; stderr:\n%s", o, stderr.String())
	}
	e.stderr = stderr.String()
	if e.stderr != "" {
		t.Logf("consume %+v stderr:\n%s", o, e.stderr) // shown when the test fails
	}
	var out []consumedLine
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l consumedLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l.Line); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		if string(l.Event) != "null" {
			env, err := published.Decode(l.Event)
			if err != nil {
				t.Fatalf("output line %q: event: %v", sc.Text(), err)
			}
			l.env = env
		}
		out = append(out, l)
	}
	return out, err
}

// checkLines checks that every line is a published event on its topic,
// under its aggregate's key with its headers, that each key's sequence
// rises, and that the lines are exactly the events want, each once.
func checkLines(t *testing.T, lines []consumedLine, want []string) {
	t.Helper()
	last := map[string]int64{}
	got := map[string]bool{}
	for _, l := range lines {
		topic, key, ok := published.Route(l.env.Subject)
		if !ok || l.Topic != topic || l.Key != key {
			t.Fatalf("event %s of %s printed as %s key %q", l.env.ID, l.env.Subject, l.Topic, l.Key)
		}
		if l.Headers["ce_id"] != l.env.ID || l.Headers["ce_type"] != l.env.Type || l.Headers["correlation_id"] != l.env.CorrelationID {
			t.Fatalf("event %s: headers %v", l.env.ID, l.Headers)
		}
		if prev, ok := last[l.Key]; ok && l.env.Sequence <= prev {
			t.Fatalf("key %s: sequence %d printed after %d", l.Key, l.env.Sequence, prev)
		}
		last[l.Key] = l.env.Sequence
		if got[l.env.ID] {
			t.Fatalf("event %s printed twice", l.env.ID)
		}
		got[l.env.ID] = true
	}
	for _, id := range want {
		if !got[id] {
			t.Errorf("event %s not printed", id)
		}
		delete(got, id)
	}
	if len(got) > 0 {
		t.Errorf("%d lines for events not expected", len(got))
	}
}

func TestConsumeFromBeginningPrintsEveryPartition(t *testing.T) {
	e := newConsumeEnv(t)
	ids := e.publish(t, 12, 5)
	lines, err := e.runConsume(t, consume.Options{FromBeginning: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines, ids)
	if l := lines[0]; l.Timestamp.IsZero() || l.env.Data == nil {
		t.Errorf("line without a timestamp or data: %+v", l)
	}
}

func TestConsumeWithoutFromBeginningStartsAtTheEnd(t *testing.T) {
	e := newConsumeEnv(t)
	e.publish(t, 3, 2)
	lines, err := e.runConsume(t, consume.Options{Timeout: 500 * time.Millisecond})
	if err != nil || len(lines) != 0 {
		t.Fatalf("consume without --from-beginning printed %d lines of earlier messages, err %v", len(lines), err)
	}
}

func TestConsumeOneTopic(t *testing.T) {
	e := newConsumeEnv(t)
	e.publish(t, 9, 2)
	lines, err := e.runConsume(t, consume.Options{Topics: []string{published.TopicOrders}, FromBeginning: true, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 6 { // 3 orders, 2 events each
		t.Fatalf("%d lines, want 6", len(lines))
	}
	for _, l := range lines {
		if l.Topic != published.TopicOrders {
			t.Fatalf("line of topic %s", l.Topic)
		}
	}
}

func TestConsumeMaxExits(t *testing.T) {
	e := newConsumeEnv(t)
	e.publish(t, 6, 4)
	// No timeout: only --max ends it.
	lines, err := e.runConsume(t, consume.Options{FromBeginning: true, Max: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
}

// TestConsumeGroupResumesAfterItsCommits stops a group member after a few
// messages; the next member of the group prints the rest, not one of
// those again, and later only what was published after. Another group
// reads everything.
func TestConsumeGroupResumesAfterItsCommits(t *testing.T) {
	e := newConsumeEnv(t)
	first := e.publish(t, 9, 4)
	a, err := e.runConsume(t, consume.Options{Group: "g1", FromBeginning: true, Max: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 7 {
		t.Fatalf("first member: %d lines, want 7", len(a))
	}
	b, err := e.runConsume(t, consume.Options{Group: "g1", FromBeginning: true, Max: len(first) - 7})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, append(a, b...), first)

	// Had the group's offsets not been committed after each printed
	// message, this member would start with messages printed already.
	second := e.publish(t, 6, 2)
	// --from-beginning for the partitions that had no message before, so
	// the group has no offset there.
	c, err := e.runConsume(t, consume.Options{Group: "g1", FromBeginning: true, Max: len(second)})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, c, second)

	all, err := e.runConsume(t, consume.Options{Group: "g2", FromBeginning: true, Max: len(first) + len(second)})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, all, append(first, second...))
}

func TestConsumePrintsAForeignMessageWithItsError(t *testing.T) {
	e := newConsumeEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(e.broker.Addrs()...)}
	if _, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: "other.topic", NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(e.broker.Addrs()...), Topic: "other.topic", RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("not an envelope")}); err != nil {
		t.Fatal(err)
	}
	lines, err := e.runConsume(t, consume.Options{Topics: []string{"other.topic"}, FromBeginning: true, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || string(lines[0].Event) != "null" || lines[0].Value != "not an envelope" ||
		!strings.Contains(lines[0].Error, published.ErrInvalidEnvelope.Error()) || lines[0].Key != "k" {
		t.Fatalf("lines %+v, want the raw value with the decoding error", lines)
	}
	if !strings.Contains(e.stderr, "not an event envelope") || !strings.Contains(e.stderr, `"offset":0`) {
		t.Fatalf("stderr %q, want the error logged with the message's place", e.stderr)
	}
}

// TestConsumeOfAMissingTopic: a topic the brokers do not have is an error
// naming it.
func TestConsumeOfAMissingTopic(t *testing.T) {
	e := newConsumeEnv(t)
	if _, err := e.runConsume(t, consume.Options{Topics: []string{"no.such.topic"}, Timeout: 100 * time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "no.such.topic") {
		t.Errorf("consume of a missing topic: %v, want an error naming it", err)
	}
}
