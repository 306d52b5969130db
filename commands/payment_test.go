package commands_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// TestPayment: a declined card leaves the order pending and another card
// may pay it; an order is paid once; cancelling a paid order refunds it;
// only the order's customer (or an admin) may pay.
func TestPayment(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		c := customer("cust-1")
		p := e.newProduct(t, vendor("vendor-1"), 10)
		o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})

		_, _, err := e.h.Orders.PayOrder(ctx, customer("cust-2"), o.ID, commands.NoVersion, goodCard)
		if !isReason(err, domain.CodeNotFound, "") {
			t.Errorf("another customer pays: got %v, want CodeNotFound", err)
		}
		_, _, err = e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, declinedCard)
		if !errors.Is(err, payment.ErrDeclined) {
			t.Fatalf("declined card: got %v, want payment.ErrDeclined", err)
		}
		if got := e.order(t, o.ID); got.Status != order.StatusPending || got.Payment != nil || got.Version != o.Version {
			t.Fatalf("after a decline the order is %s, version %d, payment %+v; want pending and untouched", got.Status, got.Version, got.Payment)
		}
		_, _, err = e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, payment.Card{Number: "1234", ExpMonth: 13, ExpYear: 2000, CVC: "x"})
		if !isReason(err, domain.CodeInvalid, "") || len(domainErr(err).Fields) == 0 {
			t.Errorf("invalid card: got %v, want CodeInvalid listing the fields", err)
		}
		if e.payments.Charges() != 0 {
			t.Errorf("%d charges after only failed payments", e.payments.Charges())
		}

		paid, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard)
		if err != nil {
			t.Fatalf("pay with the good card: %v", err)
		}
		if paid.Status != order.StatusPaid || paid.Payment == nil || paid.Payment.Amount != o.Total || paid.Payment.Last4 != "4242" {
			t.Errorf("paid order %+v payment %+v, want paid %v with last4 4242", paid, paid.Payment, o.Total)
		}
		_, _, err = e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard)
		if !isReason(err, domain.CodeConflict, "order_not_pending") {
			t.Errorf("paying twice: got %v, want CodeConflict order_not_pending", err)
		}
		if e.payments.Charges() != 1 {
			t.Errorf("%d charges, want 1", e.payments.Charges())
		}

		// The owner cancels the paid order: refunded, stock released.
		st, _, err := e.h.Orders.CancelOrder(ctx, c, o.ID, commands.NoVersion, "")
		if err != nil {
			t.Fatalf("cancel the paid order: %v", err)
		}
		if st.Status != order.StatusCancelled || st.Payment == nil || !st.Payment.Refunded {
			t.Errorf("cancelled order %+v payment %+v, want cancelled and refunded", st, st.Payment)
		}
		if n := e.payments.Refunds(); n != 1 {
			t.Errorf("%d refunds, want 1", n)
		}
		if got := e.order(t, o.ID); !got.Payment.Refunded {
			t.Errorf("the stored order's payment is not refunded: %+v", got.Payment)
		}
		if got := e.product(t, p.ID); got.Reserved != 0 {
			t.Errorf("after cancelling: %s, want nothing reserved", describe(got))
		}
		_, _, err = e.h.Orders.CancelOrder(ctx, c, o.ID, commands.NoVersion, "")
		if !isReason(err, domain.CodeConflict, "order_not_cancellable") {
			t.Errorf("cancelling twice: got %v, want order_not_cancellable", err)
		}
		if n := e.payments.Refunds(); n != 1 {
			t.Errorf("%d refunds after cancelling twice, want 1", n)
		}
		_, _, err = e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard)
		if !isReason(err, domain.CodeConflict, "order_not_pending") {
			t.Errorf("paying a cancelled order: got %v, want order_not_pending", err)
		}

		// Completion needs a paid order.
		o2 := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
		if _, _, err := e.h.Orders.CompleteOrder(ctx, admin, o2.ID, commands.NoVersion); !isReason(err, domain.CodeConflict, "order_not_paid") {
			t.Errorf("completing a pending order: got %v, want order_not_paid", err)
		}
		// An admin may pay for someone else's order.
		if _, _, err := e.h.Orders.PayOrder(ctx, admin, o2.ID, commands.NoVersion, goodCard); err != nil {
			t.Errorf("admin pays: %v", err)
		}
		done, _, err := e.h.Orders.CompleteOrder(ctx, admin, o2.ID, commands.NoVersion)
		if err != nil || done.Status != order.StatusCompleted {
			t.Fatalf("complete: %v, %v", done.Status, err)
		}
		if got := e.product(t, p.ID); got.Reserved != 0 || got.Quantity != 9 {
			t.Errorf("after completing: %s, want quantity=9 reserved=0", describe(got))
		}
		if _, _, err := e.h.Orders.CancelOrder(ctx, c, o2.ID, commands.NoVersion, ""); !isReason(err, domain.CodeConflict, "order_not_cancellable") {
			t.Errorf("cancelling a completed order: got %v, want order_not_cancellable", err)
		}
	})
}

// gatedProcessor wraps the TestProcessor with a hook that runs before a
// charge, to force interleavings.
type gatedProcessor struct {
	*payment.TestProcessor
	beforeCharge func()
}

func (g *gatedProcessor) Charge(ctx context.Context, req payment.ChargeRequest) (payment.Charge, error) {
	if g.beforeCharge != nil {
		g.beforeCharge()
	}
	return g.TestProcessor.Charge(ctx, req)
}

// TestConcurrentPayKeepsThePayment: the same card sent twice at once (a
// double click, a client retry) charges once and the order is paid once;
// the losing request must not refund the charge the order holds.
func TestConcurrentPayKeepsThePayment(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		tp := payment.NewTestProcessor()
		// Both requests reach the processor before either records the
		// payment: both loaded the pending order.
		var arrived sync.WaitGroup
		arrived.Add(2)
		gp := &gatedProcessor{TestProcessor: tp, beforeCharge: func() {
			arrived.Done()
			waitGroup(&arrived, 5*time.Second)
		}}
		e := newEnv(t, s, func(c *commands.Config) { c.Payments = gp })
		e.payments = tp
		c := customer("cust-1")
		p := e.newProduct(t, vendor("vendor-1"), 10)
		o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})

		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { _, _, errs[i] = e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard) })
		}
		wg.Wait()
		gp.beforeCharge = nil

		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !isReason(err, domain.CodeConflict, "order_not_pending"):
				t.Errorf("the losing payment: got %v, want order_not_pending", err)
			}
		}
		// The loser may report order_not_pending or, since its charge is
		// the one recorded, success; what matters is the money.
		if ok == 0 {
			t.Fatalf("no payment succeeded: %v", errs)
		}
		got := e.order(t, o.ID)
		if got.Status != order.StatusPaid || got.Payment == nil || got.Payment.Refunded {
			t.Fatalf("order %s payment %+v, want paid and not refunded", got.Status, got.Payment)
		}
		if tp.Charges() != 1 || tp.Refunds() != 0 {
			t.Errorf("processor: %d charges, %d refunds; want 1 charge and no refund: the order %s is paid with charge %s, which was refunded",
				tp.Charges(), tp.Refunds(), o.ID, got.Payment.ID)
		}
		// The paid order can still be cancelled, and refunded once.
		st, _, err := e.h.Orders.CancelOrder(ctx, c, o.ID, commands.NoVersion, "")
		if err != nil || !st.Payment.Refunded {
			t.Errorf("cancel the paid order: %v (payment %+v); want cancelled and refunded", err, st.Payment)
		}
		if tp.Refunds() != 1 {
			t.Errorf("%d refunds after cancelling, want 1", tp.Refunds())
		}
	})
}

// TestCancelRacingComplete: a paid order cancelled by one process while
// another completes it must not end completed (stock deducted, goods
// shipped) with its payment refunded. The completion lands just before
// the cancellation's append, after the cancelling process loaded the
// paid order.
func TestCancelRacingComplete(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		hs := &hookStore{Store: s}
		e := newEnv(t, hs)
		other := e.another(func(c *commands.Config) { c.Store = s }) // another process
		c := customer("cust-1")
		p := e.newProduct(t, vendor("vendor-1"), 10)
		o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
		if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); err != nil {
			t.Fatal(err)
		}

		var completeErr error
		var once sync.Once
		hs.set(func(stream string, evs []eventstore.EventData) {
			if stream != order.Stream(o.ID) || len(evs) == 0 || evs[0].Type != "order.cancelled" {
				return
			}
			once.Do(func() { _, _, completeErr = other.Orders.CompleteOrder(ctx, admin, o.ID, commands.NoVersion) })
		})
		_, _, cancelErr := e.h.Orders.CancelOrder(ctx, c, o.ID, commands.NoVersion, "changed my mind")
		hs.set(nil)

		got := e.order(t, o.ID)
		switch got.Status {
		case order.StatusCompleted:
			if completeErr != nil {
				t.Errorf("complete: %v", completeErr)
			}
			if !isReason(cancelErr, domain.CodeConflict, "order_not_cancellable") {
				t.Errorf("cancel lost the race: got %v, want order_not_cancellable", cancelErr)
			}
			if n := e.payments.Refunds(); n != 0 || got.Payment.Refunded {
				t.Errorf("the order is completed (stock deducted: %s) yet its payment %s was refunded (%d refunds, recorded %v)",
					describe(e.product(t, p.ID)), got.Payment.ID, n, got.Payment.Refunded)
			}
		case order.StatusCancelled:
			if !isReason(completeErr, domain.CodeConflict, "order_not_paid") {
				t.Errorf("complete lost the race: got %v, want order_not_paid", completeErr)
			}
			if cancelErr != nil || !got.Payment.Refunded || e.payments.Refunds() != 1 {
				t.Errorf("cancel won: err %v, payment %+v, %d refunds; want refunded once", cancelErr, got.Payment, e.payments.Refunds())
			}
		default:
			t.Errorf("order ended %s", got.Status)
		}
	})
}

// waitGroup waits for wg, at most d, so a test whose interleaving cannot
// happen fails instead of hanging.
func waitGroup(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// flakyRefunds fails the first n refunds as a provider outage would.
type flakyRefunds struct {
	*payment.TestProcessor
	mu sync.Mutex
	n  int
}

func (f *flakyRefunds) Refund(ctx context.Context, chargeID string, amount int64, key string) (payment.Refund, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return payment.Refund{}, errors.New("payment provider unavailable")
	}
	return f.TestProcessor.Refund(ctx, chargeID, amount, key)
}

// TestRefundRetried: a paid order is cancelled while the payment provider
// is down; the cancellation stands and the process manager refunds it
// later, once.
func TestRefundRetried(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		tp := payment.NewTestProcessor()
		e := newEnv(t, s, func(c *commands.Config) { c.Payments = &flakyRefunds{TestProcessor: tp, n: 1} })
		e.payments = tp
		c := customer("cust-1")
		p := e.newProduct(t, vendor("vendor-1"), 10)
		o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
		if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.h.Orders.CancelOrder(ctx, c, o.ID, commands.NoVersion, ""); err != nil {
			t.Logf("cancel while the provider is down: %v", err)
		}
		if got := e.order(t, o.ID); got.Status != order.StatusCancelled {
			t.Fatalf("order is %s, want cancelled: the refund failing must not undo the cancellation", got.Status)
		}
		if got := e.product(t, p.ID); got.Reserved != 0 {
			t.Errorf("stock of the cancelled order: %s", describe(got))
		}
		if tp.Refunds() != 0 {
			t.Fatalf("%d refunds while the provider is down", tp.Refunds())
		}

		runPM(t, e.h, 20*time.Millisecond)
		e.clock.Advance(time.Second)
		waitFor(t, 10*time.Second, "the process manager to refund the cancelled order", func() (bool, string) {
			got := e.order(t, o.ID)
			return tp.Refunds() == 1 && got.Payment.Refunded && got.Payment.RefundID != "",
				fmt.Sprintf("%d refunds, payment %+v", tp.Refunds(), got.Payment)
		})
		if _, _, err := e.h.Orders.CancelOrder(ctx, c, o.ID, commands.NoVersion, ""); !isReason(err, domain.CodeConflict, "order_not_cancellable") {
			t.Errorf("cancel again: got %v, want order_not_cancellable", err)
		}
		if tp.Refunds() != 1 {
			t.Errorf("%d refunds, want 1", tp.Refunds())
		}
	})
}
