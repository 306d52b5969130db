package published_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/published"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	ev := eventstore.Event{
		EventData: eventstore.EventData{ID: uuid.New(), Type: "order.paid", Data: json.RawMessage(`{"order_id":"o1","amount":12.5}`),
			Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "k", ActorID: "a",
				Timestamp: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))}},
		StreamID: "order-o1", Version: 7,
	}
	env := published.NewEnvelope(&ev)
	if env.SchemaVersion != 1 || env.Sequence != 7 || env.Time.Location() != time.UTC || !env.Time.Equal(ev.Metadata.Timestamp) {
		t.Fatalf("NewEnvelope = %+v", env)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := published.Decode(b)
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
		if _, err := published.Decode([]byte(value)); !errors.Is(err, published.ErrInvalidEnvelope) {
			t.Errorf("%s: Decode(%s) = %v, want ErrInvalidEnvelope", name, value, err)
		}
	}
}
