package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
)

// TestPlaceOrderCompensates: when one product of an order lacks stock, the
// order is refused naming that product and what it has, the reservations
// already made on the others are released, and no order is recorded.
func TestPlaceOrderCompensates(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		e := newEnv(t, s)
		v := vendor("vendor-1")
		a := e.newProduct(t, v, 100)
		b := e.newProduct(t, v, 2)
		c := e.newProduct(t, v, 100)

		_, _, err := e.h.Orders.PlaceOrder(context.Background(), customer("cust-1"), []order.Line{
			{ProductID: a.ID, Quantity: 5}, {ProductID: b.ID, Quantity: 3}, {ProductID: c.ID, Quantity: 1},
		})
		de := domainErr(err)
		if !isReason(err, domain.CodeConflict, "insufficient_stock") || de == nil {
			t.Fatalf("got %v, want CodeConflict insufficient_stock", err)
		}
		if de.Extra["product_id"] != b.ID || extraInt(t, de, "available") != 2 || extraInt(t, de, "requested") != 3 {
			t.Errorf("refusal extra %v, want product %s with 2 available, 3 requested", de.Extra, b.ID)
		}

		for _, id := range []string{a.ID, b.ID, c.ID} {
			if p := e.product(t, id); p.Reserved != 0 || len(p.Reservations) != 0 || p.Quantity != map[string]int64{a.ID: 100, b.ID: 2, c.ID: 100}[id] {
				t.Errorf("product %s after the refused order: %s, want nothing reserved", id, describe(p))
			}
		}
		reserved, released := map[string]string{}, map[string]string{}
		for _, ev := range readAll(t, s) {
			switch ev.Type {
			case "order.created":
				t.Errorf("an order was recorded: %s", ev.Data)
			case "inventory.reserved":
				var r product.Reserved
				decodeData(t, ev, &r)
				reserved[r.ProductID] = r.OrderID
			case "inventory.released":
				var r product.Released
				decodeData(t, ev, &r)
				released[r.ProductID] = r.OrderID
				if r.Reason != "placement_failed" {
					t.Errorf("release reason %q, want placement_failed", r.Reason)
				}
			}
		}
		if _, ok := reserved[b.ID]; ok {
			t.Errorf("the short product was reserved")
		}
		if _, atomic := s.(eventstore.MultiAppender); atomic && len(reserved) > 0 {
			t.Errorf("placed atomically, the refused order wrote reservations: %v", reserved)
		}
		for pid, oid := range reserved {
			if released[pid] != oid {
				t.Errorf("reservation of %s for %s was not released (released: %v)", pid, oid, released)
			}
		}
		if len(reserved) == 0 {
			// Not a failure: reservations run concurrently and may all
			// have seen the short product first. Still worth knowing.
			t.Log("no reservation was made before the refusal")
		}
		// The stock is all there for the next order.
		e.placeOrder(t, customer("cust-2"), order.Line{ProductID: a.ID, Quantity: 100}, order.Line{ProductID: b.ID, Quantity: 2})
	})
}

// TestAbandonedPlacement: a placement that stopped after reserving (its
// order never recorded) is fenced and released by the process manager
// once the grace period has passed; the fenced order id can never be
// recorded afterwards.
func TestAbandonedPlacement(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s, func(c *commands.Config) { c.ClaimGrace = 200 * time.Millisecond })
		p := e.newProduct(t, vendor("vendor-1"), 10)
		orphan := uuid.NewString()
		mustAppend(t, s, product.Stream(p.ID), eventstore.Exact(p.Version), e.clock.Now(),
			product.Reserved{ProductID: p.ID, OrderID: orphan, Quantity: 3})
		if got, _, _ := e.h.Catalog.Product(ctx, p.ID); got.Reserved != 3 {
			t.Fatalf("the crashed placement's hold is not seen: %s", describe(got))
		}

		runPM(t, e.h, 20*time.Millisecond)
		e.clock.Advance(time.Second)
		waitFor(t, 10*time.Second, "the abandoned reservation to be released", func() (bool, string) {
			got := e.product(t, p.ID)
			return got.Reserved == 0, describe(got)
		})
		evs := readStream(t, s, order.Stream(orphan))
		if len(evs) != 1 || evs[0].Type != "order.placement_abandoned" {
			t.Fatalf("order stream of the abandoned placement holds %v, want [order.placement_abandoned]", types(evs))
		}
		// What the manager writes is tied to the placement it finishes: the
		// placement request's correlation id (carried by its reservation),
		// a cause, and the system as actor.
		last := readStream(t, s, product.Stream(p.ID))
		for _, ev := range []eventstore.Event{evs[0], last[len(last)-1]} {
			if m := ev.Metadata; m.ActorID != "system" || m.CorrelationID != "test" || m.CausationID == "" {
				t.Errorf("%s by the process manager: metadata %+v; want actor system, the placement's correlation id %q and a causation id",
					ev.Type, m, "test")
			}
		}
		var rel product.Released
		decodeData(t, last[len(last)-1], &rel)
		if last[len(last)-1].Type != "inventory.released" || rel.OrderID != orphan || rel.Quantity != 3 || rel.Reason != "placement_abandoned" {
			t.Errorf("last product event %s %+v, want inventory.released of 3 for %s, reason placement_abandoned", last[len(last)-1].Type, rel, orphan)
		}

		// The stalled placement wakes up and records its order: fenced.
		_, err := appendEvent(t, s, order.Stream(orphan), eventstore.NoStream, e.clock.Now(),
			order.Created{OrderID: orphan, UserID: "cust-1", Items: []order.Item{{ProductID: p.ID, Quantity: 3, Price: p.Price}}, Total: 3 * p.Price})
		if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			t.Fatalf("late order.created for the fenced id: got %v, want ErrWrongExpectedVersion", err)
		}
		// The same through the command: a placement that drew the fenced
		// id reserves, fails to record the order, and gives the stock back.
		late := e.another(func(c *commands.Config) { c.NewID = func() string { return orphan } })
		_, _, err = late.Orders.PlaceOrder(ctx, customer("cust-1"), []order.Line{{ProductID: p.ID, Quantity: 3}})
		if !isReason(err, domain.CodeConflict, "order_exists") {
			t.Errorf("placing an order under a fenced id: got %v, want CodeConflict order_exists", err)
		}
		if got := e.product(t, p.ID); got.Reserved != 0 {
			t.Errorf("after the refused late placement: %s, want nothing reserved", describe(got))
		}
		if o, _, err := e.h.Orders.Order(ctx, admin, orphan); !isReason(err, domain.CodeNotFound, "") {
			t.Errorf("the abandoned order is visible: %+v, %v", o, err)
		}
	})
}

// TestPlacementWithinGraceIsKept: a reservation younger than the grace
// period is left alone while an older one, later in the log, is released
// in the same run; it is released once it too is past the grace.
func TestPlacementWithinGraceIsKept(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		e := newEnv(t, s, func(c *commands.Config) { c.ClaimGrace = time.Hour })
		p := e.newProduct(t, vendor("vendor-1"), 10)
		young, old := uuid.NewString(), uuid.NewString()
		now := e.clock.Now()
		res := mustAppend(t, s, product.Stream(p.ID), eventstore.Exact(p.Version), now,
			product.Reserved{ProductID: p.ID, OrderID: young, Quantity: 2})
		mustAppend(t, s, product.Stream(p.ID), eventstore.Exact(res.Version), now.Add(-2*time.Hour),
			product.Reserved{ProductID: p.ID, OrderID: old, Quantity: 3})

		runPM(t, e.h, 20*time.Millisecond)
		waitFor(t, 10*time.Second, "the old reservation to be released", func() (bool, string) {
			got := e.product(t, p.ID)
			_, held := got.Reservations[old]
			return !held, describe(got)
		})
		// The manager had the young reservation in view (it comes first in
		// the log) when it released the old one, and kept it.
		got := e.product(t, p.ID)
		if got.Reserved != 2 || got.Reservations[young] != 2 {
			t.Errorf("after the old hold was released: %s, want the young hold of 2 kept", describe(got))
		}
		if evs := readStream(t, s, order.Stream(young)); evs != nil {
			t.Errorf("the young placement was fenced: %v", types(evs))
		}

		e.clock.Advance(2 * time.Hour)
		waitFor(t, 10*time.Second, "the young reservation to be released once past the grace", func() (bool, string) {
			got := e.product(t, p.ID)
			return got.Reserved == 0, describe(got)
		})
	})
}

// TestProcessManagerFinishesOrders: an order whose cancellation or
// completion was recorded but whose stock step never ran (the request
// stopped in between) has its stock released or deducted by the process
// manager.
func TestProcessManagerFinishesOrders(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		v, c := vendor("vendor-1"), customer("cust-1")
		p := e.newProduct(t, v, 10)

		// Live: the manager is running when the cancellation is written.
		runPM(t, e.h, 20*time.Millisecond)
		cancelled := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
		completed := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 3})
		for _, o := range []order.State{cancelled, completed} {
			if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); err != nil {
				t.Fatal(err)
			}
		}
		mustAppend(t, s, order.Stream(cancelled.ID), eventstore.Exact(1), e.clock.Now(),
			order.Cancelled{OrderID: cancelled.ID, Reason: "by_hand"})
		e.clock.Advance(time.Second)
		waitFor(t, 10*time.Second, "the cancelled order's stock to be released", func() (bool, string) {
			got := e.product(t, p.ID)
			_, held := got.Reservations[cancelled.ID]
			return !held, describe(got)
		})
		if got := e.product(t, p.ID); got.Quantity != 10 || got.Reserved != 3 {
			t.Errorf("after the release: %s, want quantity=10 reserved=3", describe(got))
		}

		// Catch-up: a second manager that starts after the completion was
		// written (the first one too would act; acting twice is harmless).
		mustAppend(t, s, order.Stream(completed.ID), eventstore.Exact(1), e.clock.Now(),
			order.Completed{OrderID: completed.ID})
		runPM(t, e.another(), 20*time.Millisecond)
		e.clock.Advance(time.Second)
		waitFor(t, 10*time.Second, "the completed order's stock to be deducted", func() (bool, string) {
			got := e.product(t, p.ID)
			return got.Reserved == 0 && got.Quantity == 7, describe(got)
		})
		deducted := 0
		for _, ev := range readStream(t, s, product.Stream(p.ID)) {
			if ev.Type == "inventory.deducted" {
				deducted++
			}
		}
		if deducted != 1 {
			t.Errorf("%d deductions, want 1", deducted)
		}
	})
}

// TestExpiry: a pending order left unpaid past the payment timeout is
// cancelled with reason payment_timeout and its stock released; a paid
// order never is.
func TestExpiry(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s, func(c *commands.Config) { c.PaymentTimeout = time.Minute })
		c := customer("cust-1")
		p := e.newProduct(t, vendor("vendor-1"), 10)
		pending := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
		paid := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 3})
		if _, _, err := e.h.Orders.PayOrder(ctx, c, paid.ID, commands.NoVersion, goodCard); err != nil {
			t.Fatal(err)
		}

		// Not due yet: ExpireOrder does nothing.
		e.clock.Advance(59 * time.Second)
		if o, err := e.h.Orders.ExpireOrder(ctx, pending.ID); err != nil || o.Status != order.StatusPending {
			t.Fatalf("expire before the timeout: %s, %v; want still pending", o.Status, err)
		}

		runPM(t, e.h, 20*time.Millisecond)
		e.clock.Advance(time.Minute)
		waitFor(t, 10*time.Second, "the unpaid order to expire", func() (bool, string) {
			o := e.order(t, pending.ID)
			return o.Status == order.StatusCancelled, string(o.Status)
		})
		if o := e.order(t, pending.ID); o.CancelReason != order.ReasonPaymentTimeout {
			t.Errorf("cancel reason %q, want %q", o.CancelReason, order.ReasonPaymentTimeout)
		}
		waitFor(t, 10*time.Second, "the expired order's stock to be released", func() (bool, string) {
			got := e.product(t, p.ID)
			return got.Reserved == 3, describe(got)
		})

		// Another order expires an hour later: the manager has run past
		// the paid order's deadline many times and left it alone.
		later := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
		e.clock.Advance(time.Hour)
		waitFor(t, 10*time.Second, "the later order to expire and release its stock", func() (bool, string) {
			o, p := e.order(t, later.ID), e.product(t, p.ID)
			_, held := p.Reservations[later.ID]
			return o.Status == order.StatusCancelled && !held, string(o.Status) + " " + describe(p)
		})
		if o := e.order(t, paid.ID); o.Status != order.StatusPaid {
			t.Errorf("the paid order is %s (%q), want paid", o.Status, o.CancelReason)
		}
		if o, err := e.h.Orders.ExpireOrder(ctx, paid.ID); err != nil || o.Status != order.StatusPaid {
			t.Errorf("expire a paid order: %s, %v; want it left paid", o.Status, err)
		}
		if got := e.product(t, p.ID); got.Reserved != 3 || got.Reservations[paid.ID] != 3 {
			t.Errorf("the paid order's stock: %s, want its 3 units still held", describe(got))
		}
	})
}

// TestPlaceOrderValidation: bad lines, unknown and discontinued products
// are refused before any stock is touched.
func TestPlaceOrderValidation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		v, c := vendor("vendor-1"), customer("cust-1")
		ok := e.newProduct(t, v, 10)
		gone := e.newProduct(t, v, 10)
		if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, v, gone.ID, commands.NoVersion); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			lines  []order.Line
			reason string
		}{
			{"no items", nil, "validation_failed"},
			{"zero quantity", []order.Line{{ProductID: ok.ID, Quantity: 0}}, "validation_failed"},
			{"too many units", []order.Line{{ProductID: ok.ID, Quantity: order.MaxLineUnits + 1}}, "validation_failed"},
			{"product twice", []order.Line{{ProductID: ok.ID, Quantity: 1}, {ProductID: ok.ID, Quantity: 1}}, "validation_failed"},
			{"unknown product", []order.Line{{ProductID: ok.ID, Quantity: 1}, {ProductID: uuid.NewString(), Quantity: 1}}, "product_unavailable"},
			{"discontinued product", []order.Line{{ProductID: ok.ID, Quantity: 1}, {ProductID: gone.ID, Quantity: 1}}, "product_unavailable"},
		} {
			if _, _, err := e.h.Orders.PlaceOrder(ctx, c, tc.lines); !isReason(err, domain.CodeInvalid, tc.reason) {
				t.Errorf("%s: got %v, want CodeInvalid %s", tc.name, err, tc.reason)
			}
		}
		for _, id := range []string{ok.ID, gone.ID} {
			if got := e.product(t, id); got.Reserved != 0 || len(readStream(t, s, product.Stream(id))) != map[string]int{ok.ID: 1, gone.ID: 2}[id] {
				t.Errorf("refused orders touched product %s: %s", id, describe(got))
			}
		}
		for _, ev := range readAll(t, s) {
			if ev.Type == "order.created" || ev.Type == "inventory.reserved" {
				t.Errorf("a refused order wrote %s", ev.Type)
			}
		}
	})
}
