package commands

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// The order saga. An order's life, in order, with the commands each step
// runs and who runs it:
//
//  1. Reserve: PlaceOrder reserves stock on every product's stream
//     (reserveAll: product.DecideReserve, naming the order); a failed
//     line releases the others.
//  2. Place: PlaceOrder records the order (order.DecidePlace). On a store
//     that appends to several streams atomically, steps 1 and 2 are one
//     append (placeAtomically) and nothing is released on a refusal. A placement
//     not recorded within the grace period is fenced and its holds
//     released: AbandonPlacement (order.DecideAbandon, then ReleaseStock),
//     by the request that failed or by the process manager.
//  3. Pay: PayOrder charges the card and records the payment; a charge it
//     could not record is voided and refunded (compensateCharge,
//     RefundVoided), or by the process manager later.
//  4. Expire: a pending order unpaid past the payment timeout is cancelled
//     and its holds released, by the process manager alone: ExpireOrder
//     (order.DecideExpire, then ReleaseStock).
//  5. Complete: CompleteOrder turns the holds into sales: DeductStock
//     (product.DecideDeduct), which the process manager repeats until no
//     hold is left.
//  6. Cancel: CancelOrder releases the holds (ReleaseStock:
//     product.DecideRelease) and refunds a paid order (RefundOrder), both
//     repeated by the process manager until done.
//  7. Reconcile: once an order that was paid or cancelled can no longer
//     take a payment from a request that saw it pending (chargeSettle
//     after its payment or its cancellation), the process manager asks the
//     provider for the order's charges and voids and refunds those the
//     order never recorded (VoidUnrecorded): what a crash or a store outage
//     between charging and recording left behind, beside a payment made
//     again with another key, or on an order that ended unpaid.
//
// Every step loads what it touches and decides again, so running one twice,
// or from two processes, changes nothing the second time.

// chargeSettle is how long after an order's payment or cancellation the
// process manager waits before it looks for unrecorded charges: longer
// than a request runs (30 s), so a pay request that loaded the order while
// it was pending has charged, or never will, by then.
const chargeSettle = time.Minute

// act is the process manager's part of the saga: it runs the steps whose
// time has come, by what its view holds of each order id. Results show up
// as events, which update the view; a failed step is tried again later.
func (pm *ProcessManager) act(ctx context.Context) {
	now := pm.h.now()
	// 2. Placements whose order was not recorded within the grace period.
	for id, t := range pm.placements {
		if now.Before(t.nextTry) || (t.status != order.StatusAbandoned && now.Sub(t.since) < pm.h.grace) {
			continue
		}
		t.nextTry = now.Add(pm.retry)
		pm.do(ctx, t, "abandon placement", id, func(ctx context.Context) error {
			_, err := pm.h.AbandonPlacement(ctx, id, slices.Sorted(maps.Keys(t.held)))
			return err
		})
	}
	for id, t := range pm.orders {
		if now.Before(t.nextTry) {
			continue
		}
		var action func(context.Context) error
		switch {
		case t.status == order.StatusPending && now.Sub(t.since) >= pm.h.timeout: // 4. expire
			action = func(ctx context.Context) error { _, err := pm.h.ExpireOrder(ctx, id); return err }
		case t.status == order.StatusCompleted && len(t.held) > 0 && now.Sub(t.since) >= pm.tick: // 5. deduct
			action = func(ctx context.Context) error {
				_, err := pm.h.DeductStock(ctx, id, slices.Sorted(maps.Keys(t.held)))
				return err
			}
		case t.status == order.StatusCancelled && (len(t.held) > 0 || t.refundDue) && now.Sub(t.since) >= pm.tick: // 6. release, refund
			action = func(ctx context.Context) error {
				_, err := pm.h.ReleaseStock(ctx, id, slices.Sorted(maps.Keys(t.held)), "order_cancelled")
				if t.refundDue {
					_, _, rerr := pm.h.RefundOrder(ctx, id)
					err = errors.Join(err, rerr)
				}
				return err
			}
		case t.chargesDue && t.status != order.StatusPending && now.Sub(t.since) >= chargeSettle: // 7. unrecorded charges
			action = func(ctx context.Context) error {
				if _, _, err := pm.h.VoidUnrecorded(ctx, id); err != nil {
					return err
				}
				t.chargesDue, pm.dirty[id] = false, true
				pm.forgetIfDone(pm.orders, id)
				return nil
			}
		case pm.voidRefundDue(t, now): // 3. refund voided charges
			action = func(ctx context.Context) error { _, _, err := pm.h.RefundVoided(ctx, id); return err }
		default:
			continue
		}
		t.nextTry = now.Add(pm.retry)
		pm.do(ctx, t, "finish order", id, action)
	}
}

// voidRefundDue reports whether a voided charge of t has waited long
// enough for the request that voided it to have refunded it.
func (pm *ProcessManager) voidRefundDue(t *tracked, now time.Time) bool {
	for _, at := range t.voidsDue {
		if now.Sub(at) >= pm.retry {
			return true
		}
	}
	return false
}

// reserveAll reserves every line for orderID, concurrently, and returns
// the order items with captured SKU, name and price. On any failure it
// releases what it reserved and returns the most telling error: bad input
// before a stock conflict before an infrastructure failure.
func (h *Orders) reserveAll(ctx context.Context, orderID string, lines []order.Line) ([]order.Item, error) {
	items := make([]order.Item, len(lines))
	errs := make([]error, len(lines))
	var wg sync.WaitGroup
	for i, l := range lines {
		wg.Go(func() {
			p, _, err := execute(ctx, h.repository, productKind, product.Stream(l.ProductID), NoVersion, func(s product.State) ([]domain.Event, error) {
				return product.DecideReserve(s, orderID, l.Quantity)
			})
			items[i] = order.Item{ProductID: l.ProductID, SKU: p.SKU, Name: p.Name, Quantity: l.Quantity, Price: p.Price}
			errs[i] = err
		})
	}
	wg.Wait()
	var failed error
	var reserved []string
	for i, err := range errs {
		if err == nil {
			reserved = append(reserved, lines[i].ProductID)
			continue
		}
		failed = telling(failed, err)
	}
	if failed == nil {
		return items, nil
	}
	h.releaseAll(ctx, orderID, reserved, "placement_failed")
	return nil, wrap("reserve stock", failed)
}

// telling is the more telling of errors a and b, either of which may be
// nil: bad input before a stock conflict before an infrastructure failure.
func telling(a, b error) error {
	if a == nil || (b != nil && rank(b) < rank(a)) {
		return b
	}
	return a
}

func rank(err error) int {
	switch {
	case errors.Is(err, &domain.Error{Code: domain.CodeInvalid}):
		return 0
	case errors.Is(err, &domain.Error{Code: domain.CodeConflict}):
		return 1
	}
	return 2
}

// AbandonPlacement fences order id if it was never recorded, so a stalled
// placement can no longer record it, and then releases its holds on
// products. It reports whether the order exists after all (then nothing is
// released). The process manager runs it for reservations whose order did
// not appear within the grace period.
func (h *Orders) AbandonPlacement(ctx context.Context, id string, products []string) (exists bool, err error) {
	st, _, err := execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecideAbandon(s, id, "placement_not_recorded"), nil
	})
	if err != nil {
		return false, wrap("abandon placement", err)
	}
	if st.Exists() {
		return true, nil
	}
	_, err = h.ReleaseStock(ctx, id, products, "placement_abandoned")
	return false, err
}

// compensateCharge gives back a charge whose payment could not be
// recorded. It first records on the order that the charge is void, with
// the order's current version: that is a no-op when the order holds the
// charge after all (an append that failed on the way back) — such a charge
// is refunded only by cancelling the order, with the same key — and it
// moves the order's version on, so a retried payment can never get this
// charge back from the processor, and it can never become the order's
// payment. It reports whether the order holds the charge, with the order.
// A refund that fails here is retried by the process manager.
func (h *Orders) compensateCharge(ctx context.Context, id string, charge payment.Charge) (order.State, Result, bool) {
	ctx, cancel := detached(ctx)
	defer cancel()
	st, res, err := execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecideVoidPayment(s, charge.ID, domain.Cents(charge.AmountCents)), nil
	})
	if err != nil {
		h.log.ErrorContext(ctx, "charge not recorded; the process manager voids it when the order ends unpaid by it", "order_id", id, "charge_id", charge.ID, "err", err)
		return st, res, false
	}
	if p := st.Payment; p != nil && p.ID == charge.ID {
		return st, res, st.Status == order.StatusPaid
	}
	if _, _, err := h.RefundVoided(ctx, id); err != nil {
		h.log.WarnContext(ctx, "refund of a voided charge; the process manager will retry", "order_id", id, "charge_id", charge.ID, "err", err)
	}
	return st, res, false
}

// VoidUnrecorded voids and refunds every charge the payment provider made
// for order id that the order does not hold as its payment: a charge made
// by a request that died, or whose store failed, between charging and
// recording it, which only the provider knows of. It does nothing while
// the order is pending, since a request may still record the charge; past
// that no request can. Safe to repeat.
func (h *Orders) VoidUnrecorded(ctx context.Context, id string) (order.State, Result, error) {
	o, err := load(ctx, h.repository, orderKind, order.Stream(id))
	if err != nil {
		return order.State{}, Result{}, wrap("void unrecorded charges", err)
	}
	st, res := o.state, Result{Version: o.state.Version, Position: o.pos}
	if !st.Exists() || st.Status == order.StatusPending {
		return st, res, nil
	}
	charges, err := h.payments.ChargesOf(ctx, id)
	if err != nil {
		return st, res, wrap("void unrecorded charges", err)
	}
	for _, c := range charges {
		if evs := order.DecideVoidPayment(st, c.ID, domain.Cents(c.AmountCents)); len(evs) == 0 {
			continue
		}
		h.log.WarnContext(ctx, "voiding a charge the order never recorded", "order_id", id, "charge_id", c.ID)
		if st, res, err = execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
			return order.DecideVoidPayment(s, c.ID, domain.Cents(c.AmountCents)), nil
		}); err != nil {
			return st, res, wrap("void unrecorded charges", err)
		}
	}
	if len(st.VoidsDue) == 0 {
		return st, res, nil
	}
	return h.RefundVoided(ctx, id)
}

// RefundVoided refunds every voided charge of order id whose refund is not
// recorded yet, and records each refund; safe to repeat (the refund's key
// is the charge's).
func (h *Orders) RefundVoided(ctx context.Context, id string) (order.State, Result, error) {
	o, err := load(ctx, h.repository, orderKind, order.Stream(id))
	if err != nil {
		return order.State{}, Result{}, wrap("refund voided charges", err)
	}
	st, res := o.state, Result{Version: o.state.Version, Position: o.pos}
	for _, chargeID := range slices.Sorted(maps.Keys(o.state.VoidsDue)) {
		r, err := h.payments.Refund(ctx, chargeID, int64(o.state.VoidsDue[chargeID]), refundKey(chargeID))
		if err != nil {
			return st, res, wrap("refund voided charge", err)
		}
		if st, res, err = execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
			return order.DecideRecordVoidRefund(s, chargeID, r.ID), nil
		}); err != nil {
			return st, res, wrap("refund voided charge", err)
		}
	}
	return st, res, nil
}

// ExpireOrder cancels order id with reason payment_timeout if it is still
// pending past the payment timeout, and releases its stock; otherwise it
// does nothing. The process manager runs it.
func (h *Orders) ExpireOrder(ctx context.Context, id string) (order.State, error) {
	st, _, err := execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecideExpire(s, h.now(), h.timeout), nil
	})
	if err != nil {
		return st, wrap("expire order", err)
	}
	if st.Status == order.StatusCancelled {
		h.freeUnpaid(ctx, st.UserID, id)
		_, err := h.ReleaseStock(ctx, id, productIDs(st.Items), order.ReasonPaymentTimeout)
		return st, err
	}
	return st, nil
}

// DeductStock turns orderID's holds into sales; safe to repeat. It returns
// the latest position among the product streams it touched.
func (h *Orders) DeductStock(ctx context.Context, orderID string, products []string) (eventstore.Position, error) {
	return h.eachProduct(ctx, products, func(s product.State) []domain.Event {
		return product.DecideDeduct(s, orderID)
	})
}

// releaseAll ends orderID's holds on products and returns the position of
// the last event it wrote (Start when none). Failures are logged, not
// returned: the process manager retries them.
func (h *Orders) releaseAll(ctx context.Context, orderID string, products []string, reason string) eventstore.Position {
	rctx, cancel := detached(ctx)
	defer cancel()
	pos, err := h.ReleaseStock(rctx, orderID, products, reason)
	if err != nil {
		h.log.WarnContext(ctx, "release stock; the process manager will retry", "order_id", orderID, "err", err)
	}
	return pos
}

// ReleaseStock ends orderID's holds on each product; products that hold
// nothing for it are left alone, so it is safe to repeat. It returns the
// latest position among the product streams it touched.
func (h *Orders) ReleaseStock(ctx context.Context, orderID string, products []string, reason string) (eventstore.Position, error) {
	return h.eachProduct(ctx, products, func(s product.State) []domain.Event {
		return product.DecideRelease(s, orderID, reason)
	})
}

// RefundOrder refunds the payment of a cancelled order whose refund is
// pending and records the refund; otherwise it does nothing. The refund's
// idempotency key is the charge's, so repeating it (or racing the payment's
// own compensation) refunds once.
func (h *Orders) RefundOrder(ctx context.Context, id string) (order.State, Result, error) {
	o, err := load(ctx, h.repository, orderKind, order.Stream(id))
	if err != nil {
		return order.State{}, Result{}, wrap("refund order", err)
	}
	if !o.state.RefundPending() {
		return o.state, Result{Version: o.state.Version, Position: o.pos}, nil
	}
	p := o.state.Payment
	r, err := h.payments.Refund(ctx, p.ID, int64(p.Amount), refundKey(p.ID))
	if err != nil {
		return o.state, Result{}, wrap("refund order", err)
	}
	st, res, err := execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecideRecordRefund(s, r.ID), nil
	})
	return st, res, wrap("refund order", err)
}

func refundKey(chargeID string) string { return "refund:" + chargeID }

// eachProduct runs decide on each product in parallel, and returns the
// latest position of the products' streams after it: what a reader must
// have seen to see the outcome.
func (h *Orders) eachProduct(ctx context.Context, products []string, decide func(product.State) []domain.Event) (eventstore.Position, error) {
	errs := make([]error, len(products))
	positions := make([]eventstore.Position, len(products))
	var wg sync.WaitGroup
	for i, id := range products {
		wg.Go(func() {
			_, res, err := execute(ctx, h.repository, productKind, product.Stream(id), NoVersion, func(s product.State) ([]domain.Event, error) {
				return decide(s), nil
			})
			positions[i], errs[i] = res.Position, err
		})
	}
	wg.Wait()
	return latest(positions...), errors.Join(errs...)
}

// latest is the latest of positions; Start for none.
func latest(positions ...eventstore.Position) eventstore.Position {
	out := eventstore.Start
	for _, p := range positions {
		if out.Less(p) {
			out = p
		}
	}
	return out
}

func productIDs(items []order.Item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ProductID
	}
	return ids
}
