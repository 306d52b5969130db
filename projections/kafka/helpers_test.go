package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/platform/correlation"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/standins/kafkabroker"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/internal/testsupport/storetest"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	"github.com/eventshop/eventshop/published"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// env is a PostgreSQL event store with a command handler writing to it,
// and an embedded broker.
type env struct {
	pool   *pgxpool.Pool
	store  eventstore.Store
	h      commands.Handlers
	broker *kafkabroker.Broker
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, s := storetest.Postgres(t)
	h := commands.New(commands.Config{Store: s, Payments: payment.NewTestProcessor(), Log: quiet()})
	return &env{pool: pool, store: s, h: h, broker: kafkatest.Start(t)}
}

// publisher returns a Publisher on the env's broker, closed when t ends.
func (e *env) publisher(t *testing.T, cfg kafkapub.Config) *kafkapub.Publisher {
	t.Helper()
	if cfg.Brokers == nil {
		cfg.Brokers = e.broker.Addrs()
	}
	cfg.Logger = quiet()
	p, err := kafkapub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// published returns the events of the log the publisher's filter selects.
func (e *env) published(t *testing.T, p *kafkapub.Publisher) []eventstore.Event {
	t.Helper()
	return e.readLog(t, p.Filter())
}

// readLog returns every event written so far that matches filter.
func (e *env) readLog(t *testing.T, filter eventstore.Filter) []eventstore.Event {
	t.Helper()
	return eventstoretest.ReadAllMatching(t, e.store, filter, 1000)
}

var card = payment.Card{Number: payment.TestCardSuccess, ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"}

// password is the one every user of writeHistory registers with.
const password = "correct horse battery"

// Correlation ids writeHistory's commands carry.
const (
	historyCorrelation = "corr-history"
	historyCausation   = "cause-history"
)

// writeHistory drives every published event type through the command
// layer: users registered (with credentials), given and stripped of roles,
// an admin; products created, updated, restocked, discontinued; orders
// placed (reserving stock), paid, completed (deducting it) and cancelled
// after payment (releasing it, refunded). Every command carries the same
// correlation and causation ids.
func writeHistory(t *testing.T, e *env) {
	t.Helper()
	ctx := correlation.With(context.Background(), correlation.IDs{
		Correlation: historyCorrelation, Causation: historyCausation, Actor: "actor-history"})
	if _, err := e.h.Users.EnsureAdmin(ctx, "admin@example.com", password, "Administrator"); err != nil {
		t.Fatalf("ensure admin: %v", err)
	}
	admin := commands.Actor{ID: uuid.NewString(), Roles: []string{"admin"}}
	var users []string
	for i := range 3 {
		u, _, err := e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: fmt.Sprintf("user%d@example.com", i),
			Password: password, FullName: fmt.Sprintf("User %d", i)})
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		users = append(users, u.ID)
	}
	if _, _, err := e.h.Users.GrantRole(ctx, admin, users[0], "vendor"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Users.RevokeRole(ctx, admin, users[0], "customer"); err != nil {
		t.Fatal(err)
	}
	vendor := commands.Actor{ID: users[0], Roles: []string{"vendor"}}
	customer := commands.Actor{ID: users[1], Roles: []string{"customer"}}

	var products []string
	for i := range 3 {
		p, _, err := e.h.Catalog.CreateProduct(ctx, vendor, commands.CreateProduct{SKU: fmt.Sprintf("SKU-%d", i),
			Name: fmt.Sprintf("Product %d", i), Description: "a thing", Price: domain.Cents(1099 + 250*i),
			Category: "things", Images: []string{"https://example.com/p.png"}, Metadata: json.RawMessage(`{"colour":"red"}`),
			Quantity: 100, Warehouse: "main"})
		if err != nil {
			t.Fatalf("create product: %v", err)
		}
		products = append(products, p.ID)
	}
	name := "Product 0, renamed"
	if _, _, err := e.h.Catalog.UpdateProduct(ctx, vendor, products[0], commands.NoVersion, product.Update{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Catalog.AdjustInventory(ctx, vendor, products[1], commands.NoVersion,
		product.AdjustInventory{Adjustment: 5, Reason: "restock"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, vendor, products[2], commands.NoVersion); err != nil {
		t.Fatal(err)
	}

	place := func(lines ...order.Line) string {
		t.Helper()
		o, _, err := e.h.Orders.PlaceOrder(ctx, customer, lines)
		if err != nil {
			t.Fatalf("place order: %v", err)
		}
		if _, _, err := e.h.Orders.PayOrder(ctx, customer, o.ID, commands.NoVersion, card); err != nil {
			t.Fatalf("pay: %v", err)
		}
		return o.ID
	}
	completed := place(order.Line{ProductID: products[0], Quantity: 2})
	if _, _, err := e.h.Orders.CompleteOrder(ctx, admin, completed, commands.NoVersion); err != nil {
		t.Fatal(err)
	}
	cancelled := place(order.Line{ProductID: products[0], Quantity: 1}, order.Line{ProductID: products[1], Quantity: 3})
	if _, _, err := e.h.Orders.CancelOrder(ctx, customer, cancelled, commands.NoVersion, "changed my mind"); err != nil {
		t.Fatal(err)
	}
}

// appendSynthetic appends n events to each of the given streams, one
// event per stream in turn, so that the streams interleave in the log.
// Event i of a stream has {"i": i} as data.
func appendSynthetic(t *testing.T, s eventstore.Store, streams []string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		for _, st := range streams {
			_, err := s.Append(ctx, st, eventstore.Exact(int64(i)-1), eventstore.EventData{
				Type: "test.happened", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
				Metadata: eventstore.Metadata{CorrelationID: "corr-" + st},
			})
			if err != nil {
				t.Fatalf("append %s #%d: %v", st, i, err)
			}
		}
	}
}

// message is a published record with its envelope decoded.
type message struct {
	kafkatest.Record
	env published.Envelope
}

// readTopics reads every record of the three topics and decodes each
// envelope.
func readTopics(t *testing.T, brokers []string) []message {
	t.Helper()
	var out []message
	for _, topic := range published.Topics() {
		for _, r := range kafkatest.ReadAll(t, brokers, topic) {
			env, err := published.Decode(r.Value)
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			out = append(out, message{Record: r, env: env})
		}
	}
	return out
}

// checkOrder checks that per key the sequence numbers rise, except for
// duplicates of messages already seen: an event never comes after a later
// one of its aggregate (there are gaps where secret events were left out).
// It also checks that each key stays on one partition, and returns how
// many distinct events each key has.
func checkOrder(t *testing.T, msgs []message) map[string]int {
	t.Helper()
	type keyState struct {
		partition int
		last      int64
		seen      map[int64]bool
	}
	keys := map[string]*keyState{}
	for _, m := range msgs {
		k := m.Topic + "/" + m.Key
		ks := keys[k]
		if ks == nil {
			ks = &keyState{partition: m.Partition, last: -1, seen: map[int64]bool{}}
			keys[k] = ks
		}
		if ks.partition != m.Partition {
			t.Fatalf("key %s is on partitions %d and %d", k, ks.partition, m.Partition)
		}
		seq := m.env.Sequence
		switch {
		case seq > ks.last:
			ks.last = seq
		case !ks.seen[seq]:
			t.Fatalf("key %s: sequence %d first published at %d/%d, after %d", k, seq, m.Partition, m.Offset, ks.last)
		}
		ks.seen[seq] = true
	}
	out := map[string]int{}
	for k, ks := range keys {
		out[k] = len(ks.seen)
	}
	return out
}
