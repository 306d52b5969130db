package published_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/published"
)

func event(stream, typ, data string, md eventstore.Metadata) *eventstore.Event {
	md.Timestamp = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return &eventstore.Event{
		EventData: eventstore.EventData{ID: uuid.New(), Type: typ, Data: json.RawMessage(data), Metadata: md},
		StreamID:  stream, Version: 3,
	}
}

func TestNewMessage(t *testing.T) {
	e := event("order-o1", "order.paid", `{"order_id":"o1"}`, eventstore.Metadata{CorrelationID: "c", CausationID: "k"})
	m, ok, err := published.NewMessage(e)
	if err != nil || !ok {
		t.Fatalf("NewMessage = %v, %v", ok, err)
	}
	if m.Topic != published.TopicOrders || m.Key != "o1" {
		t.Errorf("topic %s key %s, want %s o1", m.Topic, m.Key, published.TopicOrders)
	}
	env, err := published.Decode(m.Value)
	if err != nil || !reflect.DeepEqual(env, published.NewEnvelope(e)) {
		t.Errorf("Decode(value) = %+v, %v; want the event's envelope", env, err)
	}
	want := []published.Header{
		{Key: "content-type", Value: []byte("application/cloudevents+json; charset=utf-8")},
		{Key: "ce_id", Value: []byte(e.ID.String())},
		{Key: "ce_type", Value: []byte("order.paid")},
		{Key: "ce_source", Value: []byte("eventshop")},
		{Key: "ce_subject", Value: []byte("order-o1")},
		{Key: "correlation_id", Value: []byte("c")},
		{Key: "causation_id", Value: []byte("k")},
	}
	if !reflect.DeepEqual(m.Headers, want) {
		t.Errorf("headers %q, want %q", m.Headers, want)
	}

	m, _, _ = published.NewMessage(event("user-u1", "user.registered", `{}`, eventstore.Metadata{}))
	if len(m.Headers) != 5 {
		t.Errorf("headers %q, want no empty correlation or causation header", m.Headers)
	}
}

func TestNewMessageLeavesOutWhatIsNotPublished(t *testing.T) {
	for _, e := range []*eventstore.Event{
		event("user-u1", "user.credentials_set", `{}`, eventstore.Metadata{}),
		event("user_email-abc", "unique.claimed", `{}`, eventstore.Metadata{}),
	} {
		if m, ok, err := published.NewMessage(e); ok || err != nil {
			t.Errorf("NewMessage(%s %s) = %+v, %v, %v; want not published", e.StreamID, e.Type, m, ok, err)
		}
	}
}

func TestNewMessageRefusesDataThatIsNotJSON(t *testing.T) {
	e := event("order-o1", "order.paid", `{"order_id":`, eventstore.Metadata{})
	if _, _, err := published.NewMessage(e); err == nil || !strings.Contains(err.Error(), "encode envelope") {
		t.Errorf("NewMessage = %v, want an error encoding the envelope", err)
	}
}
