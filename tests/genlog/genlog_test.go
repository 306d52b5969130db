package genlog_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/eventstore/snapshots"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/tests/genlog"
)

// TestGenerate writes a small log into PostgreSQL and reads it as the
// write side does: every aggregate loads, every product's reserved stock
// is what its pending and paid orders hold, the users sign in with the
// documented password, and the hot product takes a new order and its
// payment as any product would.
func TestGenerate(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	store, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	snaps := snapshots.New(pool)
	sum, err := genlog.Generate(ctx, store, genlog.Options{Events: 8000, Seed: 7, Snapshots: snaps, SnapshotEvery: 100})
	if err != nil {
		t.Fatal(err)
	}
	var log []eventstore.Event
	for from := eventstore.Start; ; {
		evs, err := store.ReadAll(ctx, from, eventstore.MaxReadCount)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		log = append(log, evs...)
		from = evs[len(evs)-1].Position
	}
	if len(log) != sum.Events || sum.Events < 8000 || sum.Events > 8000+2*1000 {
		t.Fatalf("the log holds %d events, the summary says %d, 8000 were asked for", len(log), sum.Events)
	}
	if sum.HotEvents < int64(sum.Events)/40 || sum.ByStatus[order.StatusCompleted] < sum.Orders/2 ||
		sum.ByStatus[order.StatusCancelled] == 0 || sum.ByStatus[order.StatusPaid] == 0 || sum.ByStatus[order.StatusPending] == 0 {
		t.Fatalf("summary %+v: want a hot product and orders in every status, most completed", sum)
	}

	h := commands.New(commands.Config{Store: store, Payments: payment.NewTestProcessor()})
	admin := commands.Actor{ID: "genlog-test-admin", Roles: []string{user.RoleAdmin}}
	held := map[string]int64{} // product → units held by pending and paid orders
	products := map[string]bool{}
	for _, e := range log {
		var err error
		switch {
		case strings.HasPrefix(e.StreamID, order.StreamPrefix) && e.Version == 0:
			o, _, lerr := h.Orders.Order(ctx, admin, strings.TrimPrefix(e.StreamID, order.StreamPrefix))
			if err = lerr; err == nil && (o.Status == order.StatusPending || o.Status == order.StatusPaid) {
				for _, it := range o.Items {
					held[it.ProductID] += it.Quantity
				}
			}
		case strings.HasPrefix(e.StreamID, product.StreamPrefix):
			products[strings.TrimPrefix(e.StreamID, product.StreamPrefix)] = true
		case strings.HasPrefix(e.StreamID, user.StreamPrefix) && e.Version == 0:
			_, _, err = h.Users.User(ctx, strings.TrimPrefix(e.StreamID, user.StreamPrefix))
		}
		if err != nil {
			t.Fatalf("load %s: %v", e.StreamID, err)
		}
	}
	if len(products) != sum.Products {
		t.Fatalf("%d product streams, the summary says %d", len(products), sum.Products)
	}
	for id := range products {
		p, _, err := h.Catalog.Product(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Reserved != held[id] {
			t.Fatalf("product %s: %d units reserved, its pending and paid orders hold %d", id, p.Reserved, held[id])
		}
	}
	hot, _, err := h.Catalog.Product(ctx, sum.HotProduct)
	if err != nil || hot.Version+1 != sum.HotEvents {
		t.Fatalf("hot product at version %d (%v), the summary says %d events", hot.Version, err, sum.HotEvents)
	}
	// Its snapshot is the write side's own: a process starting from it
	// sees the same product.
	if s, ok, err := snaps.Load(ctx, product.Stream(sum.HotProduct), product.SnapshotFormat); err != nil || !ok || s.Version != hot.Version || sum.Snapshots == 0 {
		t.Fatalf("the hot product's snapshot: version %d, %v, %v (%d saved); want version %d", s.Version, ok, err, sum.Snapshots, hot.Version)
	}
	counted := &readCounter{Store: store}
	fromSnapshot, _, err := commands.New(commands.Config{Store: counted, Payments: payment.NewTestProcessor(), Snapshots: snaps}).Catalog.Product(ctx, sum.HotProduct)
	if counted.n != 1 {
		t.Errorf("loading the hot product from its snapshot read %d events, want the snapshot's last alone", counted.n)
	}
	fromSnapshot.CreatedAt, fromSnapshot.UpdatedAt = fromSnapshot.CreatedAt.UTC(), fromSnapshot.UpdatedAt.UTC()
	hot.CreatedAt, hot.UpdatedAt = hot.CreatedAt.UTC(), hot.UpdatedAt.UTC()
	if err != nil || !reflect.DeepEqual(fromSnapshot, hot) {
		t.Fatalf("the hot product from its snapshot (%v):\n%+v\nfolded:\n%+v", err, fromSnapshot, hot)
	}

	u, err := h.Users.Authenticate(ctx, "user-42@genlog.example", genlog.DefaultPassword)
	if err != nil {
		t.Fatalf("sign in as a generated user: %v", err)
	}
	customer := commands.Actor{ID: u.ID, Roles: u.Roles}
	o, _, err := h.Orders.PlaceOrder(ctx, customer, []order.Line{{ProductID: sum.HotProduct, Quantity: 2}})
	if err != nil {
		t.Fatalf("order the hot product: %v", err)
	}
	card := payment.Card{Number: payment.TestCardSuccess, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: "123"}
	if paid, _, err := h.Orders.PayOrder(ctx, customer, o.ID, commands.NoVersion, card); err != nil || paid.Status != order.StatusPaid {
		t.Fatalf("pay it: %s, %v", paid.Status, err)
	}
	if _, err := h.Users.Authenticate(ctx, "user-42@genlog.example", "wrong"); !errors.Is(err, domain.ErrBadCredentials) {
		t.Fatalf("a wrong password: %v, want bad credentials", err)
	}
}

// readCounter counts the events ReadStream returns.
type readCounter struct {
	eventstore.Store
	n int
}

func (s *readCounter) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from int64, count int) ([]eventstore.Event, error) {
	evs, err := s.Store.ReadStream(ctx, stream, dir, from, count)
	s.n += len(evs)
	return evs, err
}
