package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/payment"
)

// Order returns order id if actor may see it: its customer, an admin, or
// a vendor with items in it. Anyone else gets CodeNotFound, as for a
// missing order, so ids cannot be probed.
func (h *Handler) Order(ctx context.Context, actor Actor, id string) (order.State, Result, error) {
	o, err := load(ctx, h, orderKind, order.Stream(id))
	if err != nil {
		return order.State{}, Result{}, wrap("load order", err)
	}
	ok, err := h.canSee(ctx, actor, o.state)
	if err != nil {
		return order.State{}, Result{}, err
	}
	if !ok {
		return order.State{}, Result{}, domain.NotFound("order", id)
	}
	return o.state, Result{Version: o.state.Version, Position: o.pos}, nil
}

func (h *Handler) canSee(ctx context.Context, actor Actor, s order.State) (bool, error) {
	switch {
	case !s.Exists():
		return false, nil
	case actor.Has(user.RoleAdmin) || s.UserID == actor.ID:
		return true, nil
	case actor.Has(user.RoleVendor):
		for _, it := range s.Items {
			p, err := load(ctx, h, productKind, product.Stream(it.ProductID))
			if err != nil {
				return false, wrap("load order", err)
			}
			if p.state.VendorID == actor.ID {
				return true, nil
			}
		}
	}
	return false, nil
}

// ownOrder wraps an order decision with the per-object check: the order
// exists and belongs to actor, or actor is an admin; otherwise it is not
// found.
func ownOrder(actor Actor, id string, decide decision[order.State]) decision[order.State] {
	return func(s order.State) ([]domain.Event, error) {
		if !s.Exists() || (s.UserID != actor.ID && !actor.Has(user.RoleAdmin)) {
			return nil, domain.NotFound("order", id)
		}
		return decide(s)
	}
}

// PayOrder charges card for the order's total and records the payment.
// Only the order's customer or an admin may pay it. The card is validated
// first and never stored: only its last four digits are kept. A charge is
// made with an idempotency key derived from the order, its version and the
// card, so a retried request charges once. If the order changed under the
// payment (cancelled meanwhile), the charge is refunded. Errors:
// CodeNotFound, domain.ErrPreconditionFailed, CodeConflict "order_not_pending",
// CodeInvalid for a bad card, payment.ErrDeclined.
func (h *Handler) PayOrder(ctx context.Context, actor Actor, id string, ifMatch int64, card payment.Card) (order.State, Result, error) {
	o, err := load(ctx, h, orderKind, order.Stream(id))
	if err != nil {
		return order.State{}, Result{}, wrap("pay order", err)
	}
	s := o.state
	if _, err := ownOrder(actor, id, func(order.State) ([]domain.Event, error) { return nil, nil })(s); err != nil {
		return s, Result{}, err
	}
	if ifMatch != NoVersion && ifMatch != s.Version {
		return s, Result{}, domain.ErrPreconditionFailed
	}
	if err := order.CheckPayable(s); err != nil {
		return s, Result{}, err
	}
	if err := payment.ValidateCard(card, h.now()); err != nil {
		return s, Result{}, cardError(err)
	}
	// The key names the order's version (a void moves it on) and the
	// card by its last four digits and expiry, never by a hash of its
	// number.
	charge, err := h.payments.Charge(ctx, payment.ChargeRequest{
		OrderID: id, AmountCents: int64(s.Total), Currency: "USD", Card: card,
		IdempotencyKey: fmt.Sprintf("pay:%s:%d:%s:%02d%04d", id, s.Version, payment.Last4(card.Number), card.ExpMonth, card.ExpYear),
	})
	if err != nil {
		return s, Result{}, wrap("charge card", err)
	}
	// Of concurrent requests with the same card (one charge, by its key),
	// one records the payment; the others find the order paid: 409, as
	// for a request that comes after, and the charge is not refunded.
	st, res, err := execute(ctx, h, orderKind, order.Stream(id), NoVersion, ownOrder(actor, id, func(s order.State) ([]domain.Event, error) {
		return order.DecidePay(s, charge.ID, domain.Cents(charge.AmountCents), charge.Last4)
	}))
	if err != nil {
		held, hres, ok := h.compensateCharge(ctx, id, charge)
		var de *domain.Error
		if ok && !errors.As(err, &de) {
			// The store failed, yet the payment was recorded (the append
			// failed only on its way back): the order is paid. A request
			// refused because another one recorded the same charge first
			// stays refused, as one that came after it would be.
			return held, hres, nil
		}
	}
	return st, res, wrap("pay order", err)
}

// cardError turns the payment package's field errors into a domain
// validation error.
func cardError(err error) error {
	var ce *payment.CardError
	if !errors.As(err, &ce) {
		return err
	}
	var f domain.Fields
	for _, fe := range ce.Fields {
		f.Add(fe.Field, "%s", fe.Message)
	}
	return f.Err()
}

// CompleteOrder fulfils a paid order and deducts its held stock. Only
// admins may. Errors: domain.ErrForbidden, CodeNotFound, domain.ErrPreconditionFailed,
// CodeConflict "order_not_paid".
func (h *Handler) CompleteOrder(ctx context.Context, actor Actor, id string, ifMatch int64) (order.State, Result, error) {
	if !actor.Has(user.RoleAdmin) {
		return order.State{}, Result{}, domain.ErrForbidden
	}
	st, res, err := execute(ctx, h, orderKind, order.Stream(id), ifMatch, order.DecideComplete)
	if err != nil {
		return st, res, wrap("complete order", err)
	}
	dctx, cancel := detached(ctx)
	defer cancel()
	pos, err := h.DeductStock(dctx, id, productIDs(st.Items))
	if err != nil {
		h.log.WarnContext(ctx, "deduct stock; the process manager will retry", "order_id", id, "err", err)
	}
	// The answer's position covers the stock it moved, so a read with
	// X-Min-Position sees the product's new stock too.
	res.Position = latest(res.Position, pos)
	return st, res, nil
}

// CancelOrder cancels a pending or paid order, releases its stock and
// refunds a paid one. The order's customer or an admin may. The refund is
// made after the cancellation is recorded, so a cancellation that loses a
// race (say, with completion) never refunds; if the refund fails, the
// cancellation stands with the refund pending and the process manager
// tries again. Errors: CodeNotFound, domain.ErrPreconditionFailed, CodeConflict
// "order_not_cancellable".
func (h *Handler) CancelOrder(ctx context.Context, actor Actor, id string, ifMatch int64, reason string) (order.State, Result, error) {
	st, res, err := execute(ctx, h, orderKind, order.Stream(id), ifMatch, ownOrder(actor, id, func(s order.State) ([]domain.Event, error) {
		return order.DecideCancel(s, reason)
	}))
	if err != nil {
		return st, res, wrap("cancel order", err)
	}
	released := h.releaseAll(ctx, id, productIDs(st.Items), "order_cancelled")
	if st.RefundPending() {
		rctx, cancel := detached(ctx)
		defer cancel()
		refunded, rres, err := h.RefundOrder(rctx, id)
		if err != nil {
			h.log.WarnContext(ctx, "refund; the process manager will retry", "order_id", id, "err", err)
		} else {
			st, res = refunded, rres
		}
	}
	// The answer's position covers the released stock too.
	res.Position = latest(res.Position, released)
	return st, res, nil
}

// RefundOrder refunds the payment of a cancelled order whose refund is
// pending and records the refund; otherwise it does nothing. The refund's
// idempotency key is the charge's, so repeating it (or racing the payment's
// own compensation) refunds once.
func (h *Handler) RefundOrder(ctx context.Context, id string) (order.State, Result, error) {
	o, err := load(ctx, h, orderKind, order.Stream(id))
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
	st, res, err := execute(ctx, h, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecideRecordRefund(s, r.ID), nil
	})
	return st, res, wrap("refund order", err)
}

func refundKey(chargeID string) string { return "refund:" + chargeID }

// compensateCharge gives back a charge whose payment could not be
// recorded. It first records on the order that the charge is void, with
// the order's current version: that is a no-op when the order holds the
// charge after all (an append that failed on the way back) — such a charge
// is refunded only by cancelling the order, with the same key — and it
// moves the order's version on, so a retried payment can never get this
// charge back from the processor, and it can never become the order's
// payment. It reports whether the order holds the charge, with the order.
// A refund that fails here is retried by the process manager.
func (h *Handler) compensateCharge(ctx context.Context, id string, charge payment.Charge) (order.State, Result, bool) {
	ctx, cancel := detached(ctx)
	defer cancel()
	st, res, err := execute(ctx, h, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecideVoidPayment(s, charge.ID, domain.Cents(charge.AmountCents)), nil
	})
	if err != nil {
		h.log.ErrorContext(ctx, "charge may be unrecorded; check it by hand", "order_id", id, "charge_id", charge.ID, "err", err)
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

// RefundVoided refunds every voided charge of order id whose refund is not
// recorded yet, and records each refund; safe to repeat (the refund's key
// is the charge's).
func (h *Handler) RefundVoided(ctx context.Context, id string) (order.State, Result, error) {
	o, err := load(ctx, h, orderKind, order.Stream(id))
	if err != nil {
		return order.State{}, Result{}, wrap("refund voided charges", err)
	}
	st, res := o.state, Result{Version: o.state.Version, Position: o.pos}
	for _, chargeID := range slices.Sorted(maps.Keys(o.state.VoidsDue)) {
		r, err := h.payments.Refund(ctx, chargeID, int64(o.state.VoidsDue[chargeID]), refundKey(chargeID))
		if err != nil {
			return st, res, wrap("refund voided charge", err)
		}
		if st, res, err = execute(ctx, h, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
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
func (h *Handler) ExpireOrder(ctx context.Context, id string) (order.State, error) {
	st, _, err := execute(ctx, h, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecideExpire(s, h.now(), h.timeout), nil
	})
	if err != nil {
		return st, wrap("expire order", err)
	}
	if st.Status == order.StatusCancelled {
		_, err := h.ReleaseStock(ctx, id, productIDs(st.Items), order.ReasonPaymentTimeout)
		return st, err
	}
	return st, nil
}

// AbandonPlacement fences order id if it was never recorded, so a stalled
// placement can no longer record it, and then releases its holds on
// products. It reports whether the order exists after all (then nothing is
// released). The process manager runs it for reservations whose order did
// not appear within the grace period.
func (h *Handler) AbandonPlacement(ctx context.Context, id string, products []string) (exists bool, err error) {
	st, _, err := execute(ctx, h, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
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
