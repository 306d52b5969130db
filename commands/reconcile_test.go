package commands_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// strayCharge charges o's total at the provider with key, as a request
// that died before recording the charge would have.
func strayCharge(t *testing.T, e *env, o order.State, key string) payment.Charge {
	t.Helper()
	ch, err := e.payments.Charge(context.Background(), payment.ChargeRequest{OrderID: o.ID, AmountCents: int64(o.Total),
		Currency: "USD", Card: goodCard, IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestUnrecordedChargesAreGivenBack: a charge the shop never recorded
// (the request died, or its store failed, right after charging) is known
// only to the provider. Once its order has ended, the process manager
// finds it there, voids it on the order and refunds it: for an order that
// expired unpaid, and for a paid order cancelled with a stray charge
// beside its payment. A pending order's charge is left alone, since a
// request may still record it.
func TestUnrecordedChargesAreGivenBack(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s, func(c *commands.Config) { c.PaymentTimeout = time.Minute })
		c := customer("cust-stray")
		p := e.newProduct(t, vendor("vendor-stray"), 10)
		unpaid := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
		paid := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
		lost := strayCharge(t, e, unpaid, "lost-1")
		if _, _, err := e.h.Orders.PayOrder(ctx, c, paid.ID, commands.NoVersion, goodCard); err != nil {
			t.Fatal(err)
		}
		extra := strayCharge(t, e, paid, "lost-2")

		if st, _, err := e.h.Orders.VoidUnrecorded(ctx, unpaid.ID); err != nil || len(st.Voided) != 0 {
			t.Fatalf("pending order: voided %v, %v; want nothing voided", st.Voided, err)
		}

		runPM(t, e.h, 20*time.Millisecond)
		if _, _, err := e.h.Orders.CancelOrder(ctx, c, paid.ID, commands.NoVersion, "changed my mind"); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute) // the unpaid order expires
		waitFor(t, 10*time.Second, "the unpaid order to expire", func() (bool, string) {
			o := e.order(t, unpaid.ID)
			return o.Status == order.StatusCancelled, string(o.Status)
		})
		e.clock.Advance(2 * time.Minute)
		waitFor(t, 10*time.Second, "the stray charges to be voided and refunded", func() (bool, string) {
			// Time goes on: a step the process manager took after the
			// jump (a release) puts its next one a little later.
			e.clock.Advance(time.Second)
			u, q := e.order(t, unpaid.ID), e.order(t, paid.ID)
			done := u.Voided[lost.ID] && len(u.VoidsDue) == 0 && q.Voided[extra.ID] && len(q.VoidsDue) == 0
			return done, fmt.Sprintf("unpaid voided %v, paid voided %v", sortedKeys(u.Voided), sortedKeys(q.Voided))
		})
		if q := e.order(t, paid.ID); q.Payment == nil || !q.Payment.Refunded || q.Voided[q.Payment.ID] {
			t.Errorf("the cancelled order's own payment: %+v, want refunded once and not voided", q.Payment)
		}
		// Two stray charges and one payment: three refunds, each once.
		if n := e.payments.Refunds(); n != 3 {
			t.Errorf("%d refunds at the provider, want 3", n)
		}
		for _, id := range []string{unpaid.ID, paid.ID} {
			if n := countTypes(t, s, order.Stream(id))[order.PaymentVoided{}.EventType()]; n != 1 {
				t.Errorf("order %s: %d charges voided, want 1", id, n)
			}
		}
	})
}

// TestStrayChargeBesidePaymentIsGivenBack: a shopper whose payment got no
// answer (the request died after charging) pays again with another key;
// the order is paid, and the first charge is known only to the provider.
// A minute after the payment the process manager voids and refunds it,
// and leaves the payment alone; the order stays paid and can complete.
func TestStrayChargeBesidePaymentIsGivenBack(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s, func(c *commands.Config) { c.PaymentTimeout = time.Hour })
		c := customer("cust-again")
		p := e.newProduct(t, vendor("vendor-again"), 10)
		o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
		lost := strayCharge(t, e, o, "the-first-attempt")
		if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); err != nil {
			t.Fatal(err)
		}
		runPM(t, e.h, 20*time.Millisecond)
		e.clock.Advance(time.Minute) // the payment has settled
		waitFor(t, 10*time.Second, "the stray charge to be voided and refunded", func() (bool, string) {
			e.clock.Advance(time.Second)
			q := e.order(t, o.ID)
			return q.Voided[lost.ID] && len(q.VoidsDue) == 0, fmt.Sprintf("voided %v, due %v", sortedKeys(q.Voided), q.VoidsDue)
		})
		q := e.order(t, o.ID)
		if q.Status != order.StatusPaid || q.Payment == nil || q.Payment.Refunded || q.Voided[q.Payment.ID] {
			t.Errorf("the order after reconciling: %s, payment %+v; want paid, its payment neither refunded nor voided", q.Status, q.Payment)
		}
		if n := e.payments.Refunds(); n != 1 {
			t.Errorf("%d refunds at the provider, want 1 (the stray charge)", n)
		}
		if _, _, err := e.h.Orders.CompleteOrder(ctx, admin, o.ID, commands.NoVersion); err != nil {
			t.Errorf("complete the reconciled order: %v", err)
		}
	})
}
