package kafka_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	ev := eventstore.Event{
		EventData: eventstore.EventData{ID: uuid.New(), Type: "order.paid", Data: json.RawMessage(`{"order_id":"o1","amount":12.5}`),
			Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "k", ActorID: "a",
				Timestamp: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))}},
		StreamID: "order-o1", Version: 7,
	}
	env := kafkapub.NewEnvelope(&ev)
	if env.SchemaVersion != 1 || env.Sequence != 7 || env.Time.Location() != time.UTC || !env.Time.Equal(ev.Metadata.Timestamp) {
		t.Fatalf("NewEnvelope = %+v", env)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := kafkapub.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, env) {
		t.Fatalf("Decode(Marshal(e)) = %+v, want %+v", got, env)
	}
}

func TestDecodeRefusesWhatIsNotAnEnvelope(t *testing.T) {
	for name, value := range map[string]string{
		"not json":          `{"specversion":`,
		"not an object":     `[1]`,
		"other version":     `{"specversion":"0.3","id":"1","source":"s","type":"t","subject":"x"}`,
		"no specversion":    `{"id":"1","source":"s","type":"t","subject":"x"}`,
		"no id":             `{"specversion":"1.0","source":"s","type":"t","subject":"x"}`,
		"no type":           `{"specversion":"1.0","id":"1","source":"s","subject":"x"}`,
		"no subject":        `{"specversion":"1.0","id":"1","source":"s","type":"t"}`,
		"sequence a string": `{"specversion":"1.0","id":"1","source":"s","type":"t","subject":"x","sequence":"3"}`,
	} {
		if _, err := kafkapub.Decode([]byte(value)); !errors.Is(err, kafkapub.ErrInvalidEnvelope) {
			t.Errorf("%s: Decode(%s) = %v, want ErrInvalidEnvelope", name, value, err)
		}
	}
}

func TestRoute(t *testing.T) {
	for stream, want := range map[string][2]string{
		"user-u1":         {"ecommerce.user.events", "u1"},
		"product-p1":      {"ecommerce.product.events", "p1"},
		"order-o-1":       {"ecommerce.order.events", "o-1"},
		"user_email-abc":  {},
		"product_sku-abc": {},
		"user_admins":     {},
		"orders-x":        {},
	} {
		topic, key, ok := kafkapub.Route(stream)
		if ok != (want[0] != "") || topic != want[0] || key != want[1] {
			t.Errorf("Route(%s) = %s, %s, %v; want %v", stream, topic, key, ok, want)
		}
	}
}
