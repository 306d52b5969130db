package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/standins/kafkabroker"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	"github.com/eventshop/eventshop/published"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// apiTypes are the event types API.md promises on the topics.
var apiTypes = []string{
	"user.registered", "user.role_granted", "user.role_revoked",
	"product.created", "product.updated", "product.discontinued",
	"inventory.updated", "inventory.reserved", "inventory.released", "inventory.deducted",
	"order.created", "order.paid", "order.completed", "order.cancelled",
}

// wantTopic is the topic of a stream and the data field naming the
// aggregate, from API.md.
func wantTopic(stream string) (topic, idField string) {
	switch {
	case strings.HasPrefix(stream, "user-"):
		return "ecommerce.user.events", "user_id"
	case strings.HasPrefix(stream, "product-"):
		return "ecommerce.product.events", "product_id"
	case strings.HasPrefix(stream, "order-"):
		return "ecommerce.order.events", "order_id"
	}
	return "", ""
}

func TestPublishesEveryEventAsACloudEvent(t *testing.T) {
	e := newEnv(t)
	writeHistory(t, e)
	p := e.publisher(t, kafkapub.Config{})
	ctx := ctxFor(t)
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	evs := e.published(t, p)
	start := time.Now()
	if err := p.Apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	byID := map[string]message{}
	for _, m := range readTopics(t, e.broker.Addrs()) {
		if _, dup := byID[m.Headers["ce_id"]]; dup {
			t.Fatalf("event %s published twice", m.Headers["ce_id"])
		}
		byID[m.Headers["ce_id"]] = m
	}

	types := map[string]bool{}
	correlated := 0
	for _, ev := range evs {
		m, ok := byID[ev.ID.String()]
		if ev.Type == "user.credentials_set" {
			if ok {
				t.Errorf("secret event %s was published", ev.ID)
			}
			continue
		}
		if !ok {
			t.Errorf("event %s (%s v%d, %s) was not published", ev.ID, ev.StreamID, ev.Version, ev.Type)
			continue
		}
		delete(byID, ev.ID.String())
		types[ev.Type] = true
		topic, idField := wantTopic(ev.StreamID)
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatal(err)
		}
		if m.Topic != topic || m.Key != data[idField] || m.Key != ev.StreamID[strings.IndexByte(ev.StreamID, '-')+1:] {
			t.Errorf("%s %s: topic %s key %q, want %s and the aggregate id %v", ev.StreamID, ev.Type, m.Topic, m.Key, topic, data[idField])
		}

		var got map[string]any
		if err := json.Unmarshal(m.Value, &got); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["time"]))
		if err != nil || !at.Equal(ev.Metadata.Timestamp) || !strings.HasSuffix(got["time"].(string), "Z") {
			t.Errorf("%s: time %v, want %s in UTC", ev.ID, got["time"], ev.Metadata.Timestamp)
		}
		delete(got, "time")
		want := map[string]any{
			"specversion": "1.0", "id": ev.ID.String(), "source": "eventshop", "type": ev.Type,
			"subject": ev.StreamID, "datacontenttype": "application/json",
			"correlationid": ev.Metadata.CorrelationID, "causationid": ev.Metadata.CausationID,
			"schemaversion": float64(1), "sequence": float64(ev.Version), "data": data,
		}
		if ev.Metadata.ActorID != "" {
			want["actorid"] = ev.Metadata.ActorID
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: envelope\n%v\nwant\n%v", ev.StreamID, ev.Type, got, want)
		}

		wantHeaders := map[string]string{
			"content-type": "application/cloudevents+json; charset=utf-8",
			"ce_id":        ev.ID.String(), "ce_type": ev.Type, "ce_source": "eventshop", "ce_subject": ev.StreamID,
			"correlation_id": ev.Metadata.CorrelationID, "causation_id": ev.Metadata.CausationID,
		}
		if !maps.Equal(m.Headers, wantHeaders) || len(m.HeaderList) != len(wantHeaders) {
			t.Errorf("%s: headers %v, want %v", ev.ID, m.Headers, wantHeaders)
		}
		if ev.Metadata.CorrelationID == historyCorrelation {
			correlated++
		}
		// The Kafka timestamp is when it was published: retention runs on it.
		if m.Time.Before(start.Add(-time.Second)) || m.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: Kafka timestamp %s, want the publishing time", ev.ID, m.Time)
		}
	}
	if len(byID) > 0 {
		t.Errorf("%d messages for no event of the log: %v", len(byID), slices.Collect(maps.Keys(byID)))
	}
	for _, typ := range apiTypes {
		if !types[typ] {
			t.Errorf("no %s event was published; the history should have one", typ)
		}
	}
	if correlated == 0 {
		t.Error("no published event carries the commands' correlation id")
	}
}

func TestCredentialsAreNeverPublished(t *testing.T) {
	e := newEnv(t)
	writeHistory(t, e)
	secrets := e.readLog(t, eventstore.Filter{EventTypePrefixes: []string{"user.credentials_set"}})
	if len(secrets) != 4 { // the admin and three users
		t.Fatalf("%d credentials events in the log, want 4", len(secrets))
	}
	var hashes []string
	for _, s := range secrets {
		var c user.CredentialsSet
		if err := json.Unmarshal(s.Data, &c); err != nil || c.PasswordHash == "" {
			t.Fatalf("credentials event %s: %v %q", s.ID, err, s.Data)
		}
		hashes = append(hashes, c.PasswordHash)
	}
	p := e.publisher(t, kafkapub.Config{})
	ctx := ctxFor(t)
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	evs := e.published(t, p)
	// The filter lets them through: Apply is what keeps them out.
	if n := len(eventsOfType(evs, "user.credentials_set")); n != len(secrets) {
		t.Fatalf("the filter delivers %d credentials events, want all %d", n, len(secrets))
	}
	if err := p.Apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	msgs := readTopics(t, e.broker.Addrs())
	if len(msgs) != len(evs)-len(secrets) {
		t.Fatalf("%d messages, want %d", len(msgs), len(evs)-len(secrets))
	}
	forbidden := append([]string{"credentials_set", "password_hash", password}, hashes...)
	for _, m := range msgs {
		all := m.Key + "\x00" + string(m.Value)
		for _, h := range m.HeaderList {
			all += "\x00" + h.Key + "\x00" + string(h.Value)
		}
		for _, f := range forbidden {
			if strings.Contains(all, f) {
				t.Fatalf("message %s/%d@%d (%s) contains %q", m.Topic, m.Partition, m.Offset, m.env.Type, f)
			}
		}
	}
}

func eventsOfType(evs []eventstore.Event, typ string) []eventstore.Event {
	var out []eventstore.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func TestInternalStreamsAreNotPublished(t *testing.T) {
	e := newEnv(t)
	writeHistory(t, e)
	p := e.publisher(t, kafkapub.Config{})
	f := p.Filter()
	id := uuid.NewString()
	for stream, want := range map[string]bool{
		user.Stream(id): true, product.Stream(id): true, order.Stream(id): true,
		user.EmailStream("a@example.com"): false, user.AdminsStream: false, product.SKUStreamPrefix + "abc": false,
	} {
		if got := f.Match(&eventstore.Event{StreamID: stream, EventData: eventstore.EventData{Type: "x.y"}}); got != want {
			t.Errorf("Filter().Match(%s) = %v, want %v", stream, got, want)
		}
	}

	ctx := ctxFor(t)
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	// Given the whole log, unfiltered, Apply publishes the same as given
	// the filtered one.
	all := e.readLog(t, eventstore.Filter{})
	internal := 0
	for _, ev := range all {
		if !f.Match(&ev) {
			internal++
		}
	}
	if internal == 0 {
		t.Fatal("the history has no event of an internal stream")
	}
	if err := p.Apply(ctx, all); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, ev := range e.published(t, p) {
		if ev.Type != "user.credentials_set" {
			want++
		}
	}
	msgs := readTopics(t, e.broker.Addrs())
	if len(msgs) != want {
		t.Fatalf("%d messages from %d events of which %d internal, want %d", len(msgs), len(all), internal, want)
	}
	for _, m := range msgs {
		if topic, _ := wantTopic(m.env.Subject); topic != m.Topic {
			t.Errorf("stream %s published to %s", m.env.Subject, m.Topic)
		}
	}
}

// streamsOf returns n streams of each aggregate kind.
func streamsOf(n int) []string {
	var out []string
	for range n {
		out = append(out, user.Stream(uuid.NewString()), product.Stream(uuid.NewString()), order.Stream(uuid.NewString()))
	}
	return out
}

func TestPerAggregateOrderOverManyPartitions(t *testing.T) {
	e := newEnv(t)
	const perStream = 25
	streams := streamsOf(20)
	appendSynthetic(t, e.store, streams, perStream)
	p := e.publisher(t, kafkapub.Config{Partitions: 4})
	ctx := ctxFor(t)
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	evs := e.published(t, p)
	if len(evs) != len(streams)*perStream {
		t.Fatalf("%d events in the log, want %d", len(evs), len(streams)*perStream)
	}
	// Half in batches of the runner's varying sizes, the rest in one
	// Apply larger than a produce request may be.
	half := len(evs) / 2
	for i, size := 0, 1; i < half; i, size = i+size, size*3 {
		if err := p.Apply(ctx, evs[i:min(i+size, half)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Apply(ctx, evs[half:]); err != nil {
		t.Fatal(err)
	}

	msgs := readTopics(t, e.broker.Addrs())
	if len(msgs) != len(evs) {
		t.Fatalf("%d messages, want one per event: %d", len(msgs), len(evs))
	}
	counts := checkOrder(t, msgs)
	if len(counts) != len(streams) {
		t.Fatalf("%d keys, want %d", len(counts), len(streams))
	}
	for k, n := range counts {
		if n != perStream {
			t.Errorf("key %s: %d events, want %d", k, n, perStream)
		}
	}
	for _, topic := range published.Topics() {
		used := map[int]bool{}
		for _, m := range msgs {
			if m.Topic == topic {
				used[m.Partition] = true
			}
		}
		if n := kafkatest.Partitions(t, e.broker.Addrs(), topic); n != 4 || len(used) < 2 {
			t.Errorf("%s: %d partitions, %d in use; want 4, several in use", topic, n, len(used))
		}
	}
}

func TestReapplyDuplicatesButNeverReorders(t *testing.T) {
	e := newEnv(t)
	streams := streamsOf(4)
	appendSynthetic(t, e.store, streams, 10)
	p := e.publisher(t, kafkapub.Config{})
	ctx := ctxFor(t)
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	evs := e.published(t, p)
	// What a runner does after crashes before its checkpoint: the whole
	// batch again, then again from a checkpoint in its middle.
	applied := [][]eventstore.Event{evs, evs, evs[len(evs)/3:]}
	for _, b := range applied {
		if err := p.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	msgs := readTopics(t, e.broker.Addrs())
	for k, n := range checkOrder(t, msgs) {
		if n != 10 {
			t.Errorf("key %s: %d distinct events, want 10", k, n)
		}
	}
	// Exactly: per key, each Apply's events of that key in turn.
	want := map[string][]int64{}
	for _, b := range applied {
		for _, ev := range b {
			want[ev.StreamID] = append(want[ev.StreamID], ev.Version)
		}
	}
	got := map[string][]int64{}
	for _, m := range msgs {
		got[m.env.Subject] = append(got[m.env.Subject], m.env.Sequence)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sequences per stream\n%v\nwant\n%v", got, want)
	}
}

// TestApplyFailsWhileTheBrokerIsDown stops the broker between two
// Applies: the second fails in bounded time instead of claiming success,
// and once the broker is back the runner's retry of the same batch
// publishes it, after the first, in order.
func TestApplyFailsWhileTheBrokerIsDown(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	b, err := kafkabroker.Start(kafkabroker.Options{Addr: "127.0.0.1:0", DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	addr := b.Addrs()[0]
	streams := streamsOf(3)
	appendSynthetic(t, e.store, streams, 6)
	p := e.publisher(t, kafkapub.Config{Brokers: b.Addrs(), ApplyTimeout: 10 * time.Second, WriteTimeout: 2 * time.Second})
	ctx := ctxFor(t)
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	evs := e.published(t, p)
	first, second := evs[:len(evs)/2], evs[len(evs)/2:]
	if err := p.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}

	b.Close()
	began := time.Now()
	err = p.Apply(ctx, second)
	if err == nil {
		t.Fatal("Apply with the broker down returned nil")
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Fatalf("Apply with the broker down took %s", d)
	}
	if !strings.Contains(err.Error(), second[0].ID.String()) {
		t.Errorf("error %q does not name the first event of the failed write %s", err, second[0].ID)
	}
	t.Logf("Apply failed after %s: %v", time.Since(began).Round(time.Millisecond), err)

	b2, err := kafkabroker.Start(kafkabroker.Options{Addr: addr, DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b2.Close)
	// The runner retries with backoff until it applies.
	deadline := time.Now().Add(30 * time.Second)
	for err = p.Apply(ctx, second); err != nil; err = p.Apply(ctx, second) {
		if time.Now().After(deadline) {
			t.Fatalf("Apply still fails 30s after the broker came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the runner's backoff
	}
	msgs := readTopics(t, b2.Addrs())
	for k, n := range checkOrder(t, msgs) {
		if n != 6 {
			t.Errorf("key %s: %d events, want 6", k, n)
		}
	}
	if len(msgs) < len(evs) {
		t.Fatalf("%d messages, want at least %d", len(msgs), len(evs))
	}
}

// TestApplyGivesUpOnABrokerThatNeverAnswers points the Publisher at a
// server that accepts connections and reads but never replies: Apply must
// fail within its ApplyTimeout rather than hang.
func TestApplyGivesUpOnABrokerThatNeverAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(io.Discard, c) }()
		}
	}()
	p, err := kafkapub.New(kafkapub.Config{Brokers: []string{ln.Addr().String()}, Logger: quiet(),
		WriteTimeout: 200 * time.Millisecond, ApplyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ev := eventstore.Event{StreamID: order.Stream(uuid.NewString()), EventData: eventstore.EventData{
		ID: uuid.New(), Type: "order.completed", Data: json.RawMessage(`{}`)}}
	began := time.Now()
	err = p.Apply(ctxFor(t), []eventstore.Event{ev})
	if err == nil {
		t.Fatal("Apply to a silent broker returned nil")
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("Apply to a silent broker took %s", d)
	}
	t.Logf("Apply failed after %s: %v", time.Since(began).Round(time.Millisecond), err)
}

func TestSetupCreatesTheTopicsOnce(t *testing.T) {
	b := kafkatest.Start(t)
	ctx := ctxFor(t)
	newPub := func(cfg kafkapub.Config) *kafkapub.Publisher {
		cfg.Brokers, cfg.Logger = b.Addrs(), quiet()
		p, err := kafkapub.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	p := newPub(kafkapub.Config{Partitions: 5})
	for range 2 {
		if err := p.Setup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Another partition count leaves existing topics alone.
	if err := newPub(kafkapub.Config{Partitions: 2}).Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"ecommerce.user.events", "ecommerce.product.events", "ecommerce.order.events"} {
		if n := kafkatest.Partitions(t, b.Addrs(), topic); n != 5 {
			t.Errorf("%s has %d partitions, want 5", topic, n)
		}
	}
	// The replication factor reaches the broker, which has one replica.
	b = kafkatest.Start(t)
	err := newPub(kafkapub.Config{ReplicationFactor: 3}).Setup(ctx)
	var kerr kafkago.Error
	if !errors.As(err, &kerr) || kerr != kafkago.InvalidReplicationFactor {
		t.Fatalf("Setup with replication factor 3 on one broker: %v, want InvalidReplicationFactor", err)
	}
}

func TestNewRejectsABadConfig(t *testing.T) {
	for _, cfg := range []kafkapub.Config{{}, {Brokers: []string{"x:1"}, Partitions: -1}, {Brokers: []string{"x:1"}, ReplicationFactor: -2}} {
		if _, err := kafkapub.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestApplyAfterCloseFails(t *testing.T) {
	b := kafkatest.Start(t)
	p, err := kafkapub.New(kafkapub.Config{Brokers: b.Addrs(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	ev := eventstore.Event{StreamID: order.Stream(uuid.NewString()), EventData: eventstore.EventData{
		ID: uuid.New(), Type: "order.completed", Data: json.RawMessage(`{}`)}}
	if err := p.Apply(ctxFor(t), []eventstore.Event{ev}); !errors.Is(err, kafkapub.ErrClosed) {
		t.Fatalf("Apply after Close: %v, want ErrClosed", err)
	}
}
