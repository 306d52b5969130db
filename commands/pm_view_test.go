package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/projections"
)

// subscriptions records where each subscription to the log starts.
type subscriptions struct {
	*postgres.Store
	mu    sync.Mutex
	froms []eventstore.Position
}

func (s *subscriptions) SubscribeAll(ctx context.Context, from eventstore.Position, f eventstore.Filter) (*eventstore.Subscription, error) {
	s.mu.Lock()
	s.froms = append(s.froms, from)
	s.mu.Unlock()
	return s.Store.SubscribeAll(ctx, from, f)
}

func (s *subscriptions) last() eventstore.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.froms[len(s.froms)-1]
}

// dyingView is a view store whose saves can be made to fail, as they do
// once the process that saves has crashed.
type dyingView struct {
	projections.WorkerView
	dead atomic.Bool
}

func (v *dyingView) Save(ctx context.Context, from, to eventstore.Position, put map[string]json.RawMessage, drop []string) error {
	if v.dead.Load() {
		return errors.New("the process is gone")
	}
	return v.WorkerView.Save(ctx, from, to, put, drop)
}

// storeWithView opens a PostgreSQL event store that records where its
// subscriptions start, and the process manager's view store, in a
// database of the test's own.
func storeWithView(t *testing.T) (*subscriptions, projections.WorkerView) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &subscriptions{Store: openPG(t, dbURL)}, projections.WorkerView{Pool: pool, Worker: commands.ProcessManagerLock}
}

// lastPosition is the position of the log's last event.
func lastPosition(t *testing.T, s eventstore.Store) eventstore.Position {
	t.Helper()
	evs := readAll(t, s)
	return evs[len(evs)-1].Position
}

// countTypes counts the events of each type on stream.
func countTypes(t *testing.T, s eventstore.Store, stream string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, e := range readStream(t, s, stream) {
		n[e.Type]++
	}
	return n
}

// TestProcessManagerResumesFromItsView: a process manager that crashes
// (its last saves lost) and starts again reads the log from the position
// it saved last, not from the start, and neither loses nor repeats an
// action: an order it expired after that save is not expired again, and
// the orders that fell due while it was down, or were placed or paid
// after the save, are handled by what they are now.
func TestProcessManagerResumesFromItsView(t *testing.T) {
	ctx := context.Background()
	store, view := storeWithView(t)
	dying := &dyingView{WorkerView: view}
	e := newEnv(t, store, func(c *commands.Config) { c.PaymentTimeout = time.Minute })
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 100)
	line := order.Line{ProductID: p.ID, Quantity: 1}

	// The first process manager sees the first orders and saves its view.
	stop := startPM(t, e.h, 20*time.Millisecond, nil, dying)
	early := e.placeOrder(t, c, line) // due at 60 s
	e.clock.Advance(40 * time.Second)
	pendingA := e.placeOrder(t, c, line) // due at 100 s, paid later
	pendingB := e.placeOrder(t, c, line) // due at 100 s
	saved := lastPosition(t, store)
	waitFor(t, 10*time.Second, "the view saved at the log's end", func() (bool, string) {
		at, entries, err := view.Load(ctx)
		return err == nil && at == saved && len(entries) == 3, fmt.Sprintf("%+v, %d entries, %v", at, len(entries), err)
	})

	// Its saves fail from now on: whatever it does next is as if it had
	// crashed right after the save. It expires the early order.
	dying.dead.Store(true)
	e.clock.Advance(25 * time.Second)
	waitFor(t, 10*time.Second, "the early order expired and released", func() (bool, string) {
		o, got := e.order(t, early.ID), e.product(t, p.ID)
		_, held := got.Reservations[early.ID]
		return o.Status == order.StatusCancelled && !held, string(o.Status) + " " + describe(got)
	})
	if _, _, err := e.h.Orders.PayOrder(ctx, c, pendingA.ID, commands.NoVersion, goodCard); err != nil {
		t.Fatal(err)
	}
	late := e.placeOrder(t, c, line) // due at 125 s
	stop()

	// Down for a while: B and the late order fall due.
	e.clock.Advance(time.Minute)
	dying.dead.Store(false)
	startPM(t, e.h, 20*time.Millisecond, nil, dying)
	waitFor(t, 10*time.Second, "B and the late order expired and released", func() (bool, string) {
		got := e.product(t, p.ID)
		_, heldB := got.Reservations[pendingB.ID]
		_, heldLate := got.Reservations[late.ID]
		b, l := e.order(t, pendingB.ID), e.order(t, late.ID)
		return b.Status == order.StatusCancelled && l.Status == order.StatusCancelled && !heldB && !heldLate,
			fmt.Sprintf("B %s, late %s, %s", b.Status, l.Status, describe(got))
	})
	if from := store.last(); from != saved {
		t.Fatalf("the second process manager read from %+v, want its saved position %+v", from, saved)
	}
	// Let it run past the early order's replayed expiry a few ticks, and
	// past the cancelled orders' check for unrecorded charges.
	e.clock.Advance(time.Minute + 10*time.Second)
	waitFor(t, 10*time.Second, "the view saved past the restart", func() (bool, string) {
		e.clock.Advance(time.Second) // time goes on, for steps whose next try the jump left ahead
		at, entries, err := view.Load(ctx)
		_, a := entries[pendingA.ID]
		return err == nil && at == lastPosition(t, store) && len(entries) == 1 && a, fmt.Sprintf("%+v, %d entries, %v", at, len(entries), err)
	})

	if o := e.order(t, pendingA.ID); o.Status != order.StatusPaid {
		t.Errorf("the order paid after the save is %s (%s), want paid", o.Status, o.CancelReason)
	}
	for _, id := range []string{early.ID, pendingB.ID, late.ID} {
		if n := countTypes(t, store, order.Stream(id)); n[order.Cancelled{}.EventType()] != 1 {
			t.Errorf("order %s: events %v, want one cancellation", id, n)
		}
	}
	released := map[string]int{}
	for _, ev := range readStream(t, store, product.Stream(p.ID)) {
		if ev.Type == (product.Released{}).EventType() {
			var r product.Released
			decodeData(t, ev, &r)
			released[r.OrderID]++
		}
	}
	if len(released) != 3 || released[early.ID] != 1 || released[pendingB.ID] != 1 || released[late.ID] != 1 {
		t.Errorf("releases by order %v, want one for each expired order", released)
	}
	if got := e.product(t, p.ID); got.Reserved != 1 || got.Reservations[pendingA.ID] != 1 {
		t.Errorf("stock: %s, want the paid order's unit held", describe(got))
	}
}

// TestProcessManagerRebuildsAnUnreadableView: a saved view this build
// cannot read (a future format) is dropped and rebuilt from the start of
// the log, and the process manager still acts on every order.
func TestProcessManagerRebuildsAnUnreadableView(t *testing.T) {
	ctx := context.Background()
	store, view := storeWithView(t)
	e := newEnv(t, store, func(c *commands.Config) { c.PaymentTimeout = time.Minute })
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 10)
	o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
	at := lastPosition(t, store)
	future := map[string]json.RawMessage{"someone-else": json.RawMessage(`{"format": 99}`)}
	if err := view.Save(ctx, eventstore.Start, at, future, nil); err != nil {
		t.Fatal(err)
	}

	startPM(t, e.h, 20*time.Millisecond, nil, view)
	e.clock.Advance(time.Minute)
	waitFor(t, 10*time.Second, "the order expired and released", func() (bool, string) {
		got, p := e.order(t, o.ID), e.product(t, p.ID)
		return got.Status == order.StatusCancelled && p.Reserved == 0, string(got.Status) + " " + describe(p)
	})
	if from := store.last(); from != eventstore.Start {
		t.Fatalf("read from %+v, want the start of the log", from)
	}
	waitFor(t, 10*time.Second, "the view saved anew", func() (bool, string) {
		at, entries, err := view.Load(ctx)
		_, stale := entries["someone-else"]
		return err == nil && at == lastPosition(t, store) && !stale, fmt.Sprintf("%+v %v %v", at, entries, err)
	})
}
