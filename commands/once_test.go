package commands_test

import (
	"context"
	"testing"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
)

// TestPlaceOrderOnceFindsItsFirstAttempt: a retry of an idempotent
// placement whose answer was lost (a new process, nothing cached) gets
// the order its first attempt placed, and nothing is reserved or recorded
// twice; the same key with other lines is refused; a first attempt that
// failed and was fenced does not stop the retry.
func TestPlaceOrderOnceFindsItsFirstAttempt(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		c := customer("cust-once")
		p := e.newProduct(t, vendor("vendor-once"), 10)
		lines := []order.Line{{ProductID: p.ID, Quantity: 2}}

		first, _, err := e.h.Orders.PlaceOrderOnce(ctx, c, "key-1", lines)
		if err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		retry, res, err := e.another().Orders.PlaceOrderOnce(ctx, c, "key-1", lines)
		if err != nil {
			t.Fatalf("retry after the answer was lost: %v", err)
		}
		if retry.ID != first.ID || res.Version != first.Version {
			t.Errorf("retry answered order %s v%d, want the first attempt's %s v%d", retry.ID, res.Version, first.ID, first.Version)
		}
		if got := e.product(t, p.ID); got.Reserved != 2 {
			t.Errorf("%d units reserved after a retried placement, want 2", got.Reserved)
		}
		if n := count(readAll(t, s), order.Created{}.EventType()); n != 1 {
			t.Errorf("%d orders recorded, want 1", n)
		}

		_, _, err = e.another().Orders.PlaceOrderOnce(ctx, c, "key-1", []order.Line{{ProductID: p.ID, Quantity: 3}})
		if !isReason(err, domain.CodeInvalid, "idempotency_key_reused") {
			t.Errorf("same key, other lines: got %v, want CodeInvalid idempotency_key_reused", err)
		}
		other, _, err := e.h.Orders.PlaceOrderOnce(ctx, customer("cust-other"), "key-1", lines)
		if err != nil || other.ID == first.ID {
			t.Errorf("another customer's same key: order %s, %v; want a new order", other.ID, err)
		}
		plain, _, err := e.h.Orders.PlaceOrderOnce(ctx, c, "", lines)
		if err != nil || plain.ID == first.ID {
			t.Errorf("no key: order %s, %v; want a new order", plain.ID, err)
		}

		// Paying: the retry of a payment that was recorded gets the paid
		// order, charged once.
		paid, _, err := e.h.Orders.PayOrderOnce(ctx, c, "pay-1", first.ID, commands.NoVersion, goodCard)
		if err != nil {
			t.Fatalf("pay: %v", err)
		}
		again, _, err := e.another().Orders.PayOrderOnce(ctx, c, "pay-1", first.ID, paid.Version-1, goodCard)
		if err != nil || again.Status != order.StatusPaid || again.Payment.ID != paid.Payment.ID {
			t.Errorf("retried payment: %v, %+v; want the paid order", err, again.Payment)
		}
		if n := e.payments.Charges(); n != 1 {
			t.Errorf("%d charges, want 1", n)
		}
		other4 := goodCard
		other4.Number = "5555555555554444"
		if _, _, err := e.another().Orders.PayOrderOnce(ctx, c, "pay-1", first.ID, commands.NoVersion, other4); !isReason(err, domain.CodeInvalid, "idempotency_key_reused") {
			t.Errorf("retried payment with another card: got %v, want idempotency_key_reused", err)
		}
		if _, _, err := e.another().Orders.PayOrderOnce(ctx, c, "pay-2", first.ID, commands.NoVersion, goodCard); !isReason(err, domain.CodeConflict, "order_not_pending") {
			t.Errorf("another key pays a paid order: got %v, want order_not_pending", err)
		}
	})
}

// TestPlaceOrderOnceAfterAFencedAttempt: the first attempt's append fails
// without landing and its id is fenced; the client's retry with the same
// key places the order under the next id.
func TestPlaceOrderOnceAfterAFencedAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newFaultMultiStore()
	e := newEnv(t, s)
	c := customer("cust-fenced")
	p := e.newProduct(t, vendor("vendor-fenced"), 10)
	lines := []order.Line{{ProductID: p.ID, Quantity: 1}}

	s.failNext(order.Created{}.EventType(), false)
	if _, _, err := e.h.Orders.PlaceOrderOnce(ctx, c, "key-f", lines); err == nil {
		t.Fatal("the failing append was answered as a success")
	}
	o, _, err := e.h.Orders.PlaceOrderOnce(ctx, c, "key-f", lines)
	if err != nil {
		t.Fatalf("retry after a fenced attempt: %v", err)
	}
	again, _, err := e.another().Orders.PlaceOrderOnce(ctx, c, "key-f", lines)
	if err != nil || again.ID != o.ID {
		t.Errorf("second retry: %s, %v; want %s", again.ID, err, o.ID)
	}
	if got := e.product(t, p.ID); got.Reserved != 1 {
		t.Errorf("%d reserved, want 1", got.Reserved)
	}
	if n := count(readAll(t, s), order.PlacementAbandoned{}.EventType()); n != 1 {
		t.Errorf("%d placements abandoned, want the first attempt's", n)
	}
}

// count counts the events of type typ among evs.
func count(evs []eventstore.Event, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}
