package benchmarks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/published"
)

// This file holds how BenchmarkProjectionLag sees events arrive: the
// appends it times from, and each path an event takes to a reader.

// appendClock is the event store as the command handler sees it: it
// notes when each order.created append returned, and its position.
type appendClock struct {
	eventstore.Store

	mu      sync.Mutex
	byOrder map[string]uuid.UUID // order id → its order.created event id
	at      map[uuid.UUID]time.Time
	list    []appended // in the order the appends returned
}

type appended struct {
	id  uuid.UUID
	at  time.Time
	pos eventstore.Position
}

// created returns the id of order orderID's order.created event.
func (c *appendClock) created(orderID string) uuid.UUID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byOrder[orderID]
}

func (c *appendClock) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := c.Store.Append(ctx, stream, expected, events...)
	if err != nil || len(events) != 1 || events[0].Type != (order.Created{}).EventType() {
		return res, err
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at, c.byOrder = map[uuid.UUID]time.Time{}, map[string]uuid.UUID{}
	}
	c.at[events[0].ID] = now
	c.byOrder[strings.TrimPrefix(stream, order.StreamPrefix)] = events[0].ID
	c.list = append(c.list, appended{id: events[0].ID, at: now, pos: res.Position})
	return res, nil
}

// since returns the appends after the first n.
func (c *appendClock) since(n int) []appended {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list[n:])
}

// times returns when the appends of ids returned.
func (c *appendClock) times(ids []uuid.UUID) map[uuid.UUID]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uuid.UUID]time.Time, len(ids))
	for _, id := range ids {
		out[id] = c.at[id]
	}
	return out
}

// sightings notes when one path first delivered each event.
type sightings struct {
	mu   sync.Mutex
	seen map[uuid.UUID]time.Time
}

func newSightings() *sightings { return &sightings{seen: map[uuid.UUID]time.Time{}} }

func (s *sightings) saw(id uuid.UUID, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[id]; !ok {
		s.seen[id] = at
	}
}

func (s *sightings) missing(ids []uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := s.seen[id]; !ok {
			n++
		}
	}
	return n
}

// lags returns, sorted, how long after its append each of ids was seen; a
// path may see an event a hair before its append returns: that is 0.
func (s *sightings) lags(appended map[uuid.UUID]time.Time, ids []uuid.UUID) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		out = append(out, max(s.seen[id].Sub(appended[id]), 0))
	}
	slices.Sort(out)
	return out
}

type lagPaths struct{ readModel, kafka, rawSub, rawKafka *sightings }

// await waits until every path has seen every one of ids.
func (p lagPaths) await(tb testing.TB, ids []uuid.UUID) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var behind []string
		for name, s := range map[string]*sightings{"orders.v1": p.readModel, "kafka": p.kafka, "raw subscription": p.rawSub, "raw kafka": p.rawKafka} {
			if n := s.missing(ids); n > 0 {
				behind = append(behind, fmt.Sprintf("%s misses %d", name, n))
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("orders not delivered within a minute: %s", strings.Join(behind, ", "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchCheckpoint polls the runner's checkpoint every 200 µs and notes
// when it passes each order.created append.
func watchCheckpoint(ctx context.Context, r *projections.Runner, clock *appendClock, s *sightings) {
	var pending []appended
	n := 0
	for ctx.Err() == nil {
		news := clock.since(n)
		n += len(news)
		pending = append(pending, news...)
		pos, now := r.Status().Position, time.Now()
		pending = slices.DeleteFunc(pending, func(a appended) bool {
			if pos.Less(a.pos) {
				return false
			}
			s.saw(a.id, now)
			return true
		})
		time.Sleep(200 * time.Microsecond)
	}
}

// consume fetches partition p of topic from its start until ctx ends and
// notes each message's event id (read by idOf) as seen.
func consume(ctx context.Context, brokers []string, topic string, p int, s *sightings, idOf func(kafkago.Message) (uuid.UUID, bool)) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 10 << 20,
		MaxWait: 100 * time.Millisecond, ReadLagInterval: -1, StartOffset: kafkago.FirstOffset,
	})
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return // ctx ended
		}
		if id, ok := idOf(m); ok {
			s.saw(id, time.Now())
		}
	}
}

// envelopeID is the event id of a publisher's message of order.created.
func envelopeID(m kafkago.Message) (uuid.UUID, bool) {
	env, err := published.Decode(m.Value)
	if err != nil || env.Type != (order.Created{}).EventType() {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(env.ID)
	return id, err == nil
}

// plainID is the event id a raw baseline message carries as its value.
func plainID(m kafkago.Message) (uuid.UUID, bool) {
	id, err := uuid.ParseBytes(m.Value)
	return id, err == nil
}

// relay is the raw baseline: it notes each event the bare subscription
// delivers and writes it at once, with whatever else is waiting, to
// lagRawTopic with a plain writer configured as the publisher's
// (acks=all, 2 ms batch timeout).
func relay(ctx context.Context, sub *eventstore.Subscription, brokers []string, s *sightings) {
	w := &kafkago.Writer{
		Addr: kafkago.TCP(brokers...), Topic: lagRawTopic, RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 2 * time.Millisecond, Balancer: &kafkago.Murmur2Balancer{},
	}
	defer w.Close()
	for {
		var msgs []kafkago.Message
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				return
			}
			s.saw(ev.ID, time.Now())
			msgs = append(msgs, kafkago.Message{Key: []byte(ev.StreamID), Value: []byte(ev.ID.String())})
		case <-ctx.Done():
			return
		}
	drain:
		for len(msgs) < 100 {
			select {
			case ev, ok := <-sub.Events():
				if !ok {
					break drain
				}
				s.saw(ev.ID, time.Now())
				msgs = append(msgs, kafkago.Message{Key: []byte(ev.StreamID), Value: []byte(ev.ID.String())})
			default:
				break drain
			}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil && !errors.Is(err, context.Canceled) {
			return
		}
	}
}

// createTopic creates topic with one partition.
func createTopic(tb testing.TB, brokers []string, topic string) {
	tb.Helper()
	c := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := c.CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
	})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
}
