package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
)

// TestOrderWrittenBeforeTheBounds: an order stored before events were
// validated (issue 12: 10,000 units at the largest price, and a
// cancellation reason holding NUL, which a text column refuses) still
// lands in the read model; the NUL is kept as U+FFFD.
func TestOrderWrittenBeforeTheBounds(t *testing.T) {
	e := newEnv(t)
	e.runProjections(t)
	ctx := context.Background()
	id := uuid.NewString()
	stored := func(typ, data string) eventstore.EventData {
		return eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: typ, SchemaVersion: 1, Data: []byte(data),
			Metadata: eventstore.Metadata{Timestamp: time.Now().UTC()}}
	}
	if _, err := e.store.Append(ctx, order.Stream(id), eventstore.NoStream,
		stored("order.created", `{"order_id":"`+id+`","user_id":"`+uuid.NewString()+`","items":[{"product_id":"`+uuid.NewString()+
			`","sku":"GOLD","name":"Gold","quantity":10000,"price":1000000000.00}],"total":10000000000000.00}`),
		stored("order.cancelled", `{"order_id":"`+id+`","reason":"changed\u0000my mind","refunded":false}`),
	); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := e.rm.Order(ctx, id)
		if err == nil && o.Status == "cancelled" {
			if o.Total != domain.MaxCents*10_000 || o.CancelReason == nil || *o.CancelReason != "changed\uFFFDmy mind" ||
				len(o.Items) != 1 || o.Items[0].Price != domain.MaxCents {
				t.Errorf("read model holds %s", dump(o))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the order did not land within 10s: %v, %v", dump(o), err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
