package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/failpoint"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/services/unpaid"
	"github.com/google/uuid"
)

// Orders runs the commands on orders that clients send — place, pay,
// complete, cancel — and the steps of the order saga that the process
// manager runs when a request stopped part-way (saga.go). Placing an order
// and finishing one move stock on the products' streams, through the same
// repository as Catalog.
type Orders struct {
	*repository
	payments payment.Processor
	timeout  time.Duration // how long a pending order waits for payment
	grace    time.Duration // how long a placement may take before its holds are taken back
	unpaid   UnpaidLimit   // nil: no bound on a customer's unpaid orders
}

// LimitUnpaid bounds what one customer may hold in unpaid orders (admins
// are not bounded). Call it before the handlers are used; without it
// nothing is bounded.
func (h *Orders) LimitUnpaid(l UnpaidLimit) { h.unpaid = l }

// Order returns order id if actor may see it: its customer, an admin, or
// a vendor with items in it. Anyone else gets CodeNotFound, as for a
// missing order, so ids cannot be probed.
func (h *Orders) Order(ctx context.Context, actor Actor, id string) (order.State, Result, error) {
	o, err := load(ctx, h.repository, orderKind, order.Stream(id))
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

func (h *Orders) canSee(ctx context.Context, actor Actor, s order.State) (bool, error) {
	switch {
	case !s.Exists():
		return false, nil
	case actor.Has(user.RoleAdmin) || s.UserID == actor.ID:
		return true, nil
	case actor.Has(user.RoleVendor):
		for _, it := range s.Items {
			p, err := load(ctx, h.repository, productKind, product.Stream(it.ProductID))
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

// PlaceOrder places an order for actor: it reserves stock on every
// product's stream (each reservation names the order) and records the
// order with the prices captured from the products. On a store that
// appends to several streams atomically (eventstore.MultiAppender) both
// are one append: all of it is written or none. Elsewhere it runs the
// saga: the reservations, then the order; if any reservation fails, those
// already made are released and no order is recorded, and a crash
// part-way leaves reservations whose order never appeared, which the
// process manager fences and releases after the grace period. Errors:
// domain.ErrForbidden (no customer or admin role), CodeInvalid
// (bad lines, unknown or discontinued product, a line or the order total
// over domain.MaxCents: nothing is reserved), CodeConflict
// "insufficient_stock" naming the product and what is available,
// CodeConflict stream_unreadable.
func (h *Orders) PlaceOrder(ctx context.Context, actor Actor, lines []order.Line) (order.State, Result, error) {
	if !actor.Has(user.RoleCustomer) && !actor.Has(user.RoleAdmin) {
		return order.State{}, Result{}, domain.ErrForbidden
	}
	return h.place(ctx, actor, h.newID(), lines)
}

// placementIDs bounds the ids one idempotent request may try: each
// placement of it that failed and was fenced moves it to the next.
const placementIDs = 8

// placementNamespace names the ids of orders placed by idempotent
// requests (UUID version 5, RFC 9562).
var placementNamespace = uuid.MustParse("c83263e3-6284-4a1d-ab0e-43045b94cbf9")

// PlaceOrderOnce is PlaceOrder for the idempotent request named key
// (idempotency.RequestKey; "" is PlaceOrder). The order's id is derived
// from actor and key, so a retry whose first attempt was written (and its
// answer lost, say to a crash) finds that order and answers with it
// instead of placing a second one. A first attempt that failed and was
// fenced moves the request to the next derived id. Besides PlaceOrder's
// errors: CodeInvalid "idempotency_key_reused" when the key placed an
// order with other lines, CodeConflict "idempotency_key_exhausted" when
// every id of the key was fenced.
func (h *Orders) PlaceOrderOnce(ctx context.Context, actor Actor, key string, lines []order.Line) (order.State, Result, error) {
	if key == "" {
		return h.PlaceOrder(ctx, actor, lines)
	}
	if !actor.Has(user.RoleCustomer) && !actor.Has(user.RoleAdmin) {
		return order.State{}, Result{}, domain.ErrForbidden
	}
	for n := range placementIDs {
		id := uuid.NewSHA1(placementNamespace, []byte(actor.ID+"\x00"+key+"\x00"+strconv.Itoa(n))).String()
		o, err := load(ctx, h.repository, orderKind, order.Stream(id))
		if err != nil {
			return order.State{}, Result{}, wrap("place order", err)
		}
		switch {
		case o.state.Status == order.StatusAbandoned:
			continue
		case o.state.Exists():
			return placedBefore(actor, o, lines)
		}
		st, res, err := h.place(ctx, actor, id, lines)
		if err != nil {
			// A retry running beside this one may have placed it.
			if o, lerr := load(ctx, h.repository, orderKind, order.Stream(id)); lerr == nil && o.state.Exists() {
				return placedBefore(actor, o, lines)
			}
		}
		return st, res, err
	}
	return order.State{}, Result{}, domain.Conflict("idempotency_key_exhausted",
		"every placement with this Idempotency-Key failed; retry with a new key")
}

// placedBefore answers a retry with the order its first attempt placed,
// if that order is the one asked for.
func placedBefore(actor Actor, o loaded[order.State], lines []order.Line) (order.State, Result, error) {
	want := slices.Clone(lines)
	slices.SortFunc(want, func(a, b order.Line) int { return strings.Compare(a.ProductID, b.ProductID) })
	same := o.state.UserID == actor.ID && slices.EqualFunc(o.state.Items, want, func(it order.Item, l order.Line) bool {
		return it.ProductID == l.ProductID && it.Quantity == l.Quantity
	})
	if !same {
		return order.State{}, Result{}, keyReused()
	}
	return o.state, Result{Version: o.state.Version, Position: o.pos}, nil
}

// keyReused is the answer to an Idempotency-Key whose first request was
// another one.
func keyReused() error {
	return &domain.Error{Code: domain.CodeInvalid, Reason: "idempotency_key_reused",
		Detail: "Idempotency-Key reused with a different request"}
}

// place is PlaceOrder with the order's id chosen.
func (h *Orders) place(ctx context.Context, actor Actor, id string, lines []order.Line) (order.State, Result, error) {
	if err := order.CheckLines(lines); err != nil {
		return order.State{}, Result{}, err
	}
	if err := h.checkProducts(ctx, lines); err != nil {
		return order.State{}, Result{}, err
	}
	if err := h.holdUnpaid(ctx, actor, id, lines); err != nil {
		return order.State{}, Result{}, err
	}
	lines = slices.Clone(lines)
	slices.SortFunc(lines, func(a, b order.Line) int { return strings.Compare(a.ProductID, b.ProductID) })
	st, res, err := h.record(ctx, actor, id, lines)
	var refused *domain.Error
	if errors.As(err, &refused) && refused.Reason != "order_exists" {
		// Refused: nothing was written, so nothing is held. (An id taken
		// already is a retry's, placed beside this one: its hold stays.)
		h.freeUnpaid(ctx, actor.ID, id)
	}
	return st, res, err
}

// holdUnpaid counts the order against what its customer may hold unpaid,
// or says which bound it would break: CodeConflict
// "too_many_unpaid_orders" or "too_many_unpaid_units". Admins are not
// bounded.
func (h *Orders) holdUnpaid(ctx context.Context, actor Actor, id string, lines []order.Line) error {
	if h.unpaid == nil || actor.Has(user.RoleAdmin) {
		return nil
	}
	var units int64
	for _, l := range lines {
		units += l.Quantity
	}
	refusal, err := h.unpaid.Hold(ctx, actor.ID, id, units, h.now().Add(h.timeout+h.grace))
	lim := h.unpaid.Limits()
	switch {
	case err != nil:
		return wrap("count unpaid orders", err)
	case refusal == unpaid.TooManyOrders:
		e := domain.Conflict("too_many_unpaid_orders", "you have %d unpaid orders, the most one customer may have; pay or cancel one first", lim.Orders)
		e.Extra = map[string]any{"limit": lim.Orders}
		return e
	case refusal == unpaid.TooManyUnits:
		e := domain.Conflict("too_many_unpaid_units", "your unpaid orders would hold more than %d units, the most one customer may hold; pay or cancel one first", lim.Units)
		e.Extra = map[string]any{"limit": lim.Units}
		return e
	}
	return nil
}

// freeUnpaid stops counting order id against customer: it was paid, or
// ended, or never written. A failure is only logged; the hold then ends
// at its deadline.
func (h *Orders) freeUnpaid(ctx context.Context, customer, id string) {
	if h.unpaid == nil || customer == "" {
		return
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := h.unpaid.Free(ctx, customer, id); err != nil {
		h.log.WarnContext(ctx, "free an unpaid order's hold; it ends at the payment deadline", "order_id", id, "err", err)
	}
}

// record reserves the stock of lines (sorted by product) and records the
// order, in one append where the store can, else by the saga.
func (h *Orders) record(ctx context.Context, actor Actor, id string, lines []order.Line) (order.State, Result, error) {
	if m, ok := h.store.(eventstore.MultiAppender); ok {
		return h.placeAtomically(ctx, m, actor, id, lines)
	}
	items, err := h.reserveAll(ctx, id, lines)
	if err != nil {
		return order.State{}, Result{}, err
	}
	fresh(h.repository, orderKind, order.Stream(id))
	st, res, err := execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecidePlace(s, order.Place{OrderID: id, UserID: actor.ID, Items: items})
	})
	if err != nil {
		// The order id was fenced (this placement stalled past the grace
		// period), or the store failed.
		return h.settle(ctx, actor, id, productIDs(items), err)
	}
	return st, res, nil
}

// settle answers a placement whose order was not recorded as far as it
// knows: the store failed, perhaps after the order was written. It fences
// the order id and gives the stock back only if the order does not exist,
// and answers with the order if it does; if that fails too, the process
// manager does it after the grace period.
func (h *Orders) settle(ctx context.Context, actor Actor, id string, products []string, err error) (order.State, Result, error) {
	actx, cancel := detached(ctx)
	defer cancel()
	if exists, aerr := h.AbandonPlacement(actx, id, products); aerr != nil {
		h.log.WarnContext(ctx, "abandon placement; the process manager will retry", "order_id", id, "err", aerr)
	} else if exists {
		st, res, lerr := h.Order(actx, actor, id)
		if lerr == nil {
			return st, res, nil
		}
	}
	return order.State{}, Result{}, wrap("place order", err)
}

// placeAtomically reserves every line and records the order in one
// append across the products' streams and the order's. A refusal writes
// nothing, so nothing is given back, and a crash cannot leave holds
// without their order. Each reservation is decided on its product's
// current state (the cached one first, as execute does) and the order on
// the prices it captured; a version conflict on a product decides all
// again, a bounded number of times. lines are sorted by product, the
// order in which their streams are locked.
func (h *Orders) placeAtomically(ctx context.Context, m eventstore.MultiAppender, actor Actor, id string, lines []order.Line) (order.State, Result, error) {
	st, res, err := h.appendPlacement(ctx, m, actor, id, lines)
	var unknown errUnknown
	if errors.As(err, &unknown) {
		// Settled once the products' locks are free: giving stock back
		// takes them.
		products := make([]string, len(lines))
		for i, l := range lines {
			products[i] = l.ProductID
		}
		return h.settle(ctx, actor, id, products, unknown.err)
	}
	return st, res, err
}

// errUnknown is appendPlacement's report of a store failure after which
// the placement may have been written or not.
type errUnknown struct{ err error }

func (e errUnknown) Error() string { return e.err.Error() }

// appendPlacement is placeAtomically's append, with the products' streams
// locked.
func (h *Orders) appendPlacement(ctx context.Context, m eventstore.MultiAppender, actor Actor, id string, lines []order.Line) (order.State, Result, error) {
	r := h.repository
	fresh(r, orderKind, order.Stream(id))
	streams := make([]string, len(lines))
	for i, l := range lines {
		streams[i] = product.Stream(l.ProductID)
		if r.serialized {
			unlock := r.locks.lock(streams[i])
			defer unlock()
		}
	}
	n := len(lines)
	fromCache := true
	for attempt := 1; ; {
		states := make([]product.State, n)
		holds := make([][]domain.Event, n)
		items := make([]order.Item, n)
		var refused error
		stale := false
		for i, l := range lines {
			cur, cached, err := current(ctx, r, productKind, streams[i], fromCache)
			if err != nil {
				return order.State{}, Result{}, wrap("reserve stock", err)
			}
			evs, err := product.DecideReserve(cur.state, id, l.Quantity)
			if cached && (err != nil || len(evs) == 0) {
				stale = true
				break
			}
			refused = telling(refused, err)
			p := cur.state
			states[i], holds[i] = p, evs
			items[i] = order.Item{ProductID: l.ProductID, SKU: p.SKU, Name: p.Name, Quantity: l.Quantity, Price: p.Price}
		}
		var placed []domain.Event
		var o loaded[order.State]
		var err error
		if !stale && refused == nil {
			var cached bool
			if o, cached, err = current(ctx, r, orderKind, order.Stream(id), fromCache); err != nil {
				return order.State{}, Result{}, wrap("place order", err)
			}
			placed, err = order.DecidePlace(o.state, order.Place{OrderID: id, UserID: actor.ID, Items: items})
			stale = cached && err != nil
		}
		if stale {
			// A refusal decided on the cache is decided again on a load.
			fromCache = false
			continue
		}
		if refused != nil {
			return order.State{}, Result{}, wrap("reserve stock", refused)
		}
		if err != nil {
			return order.State{}, Result{}, wrap("place order", err)
		}
		data, at, err := r.encode(ctx, append(slices.Concat(holds...), placed...))
		if err != nil {
			return order.State{}, Result{}, wrap("place order", err)
		}
		parts := make([]eventstore.StreamAppend, 0, n+1)
		for i := range lines {
			if len(holds[i]) > 0 {
				parts = append(parts, eventstore.StreamAppend{Stream: streams[i], Expected: expectedAt(states[i].Version), Events: data[:len(holds[i])]})
				data = data[len(holds[i]):]
			}
		}
		parts = append(parts, eventstore.StreamAppend{Stream: order.Stream(id), Expected: expectedAt(o.state.Version), Events: data})
		res, err := m.AppendMulti(ctx, parts...)
		var wrong *eventstore.WrongExpectedVersionError
		if errors.As(err, &wrong) {
			if attempt, err = r.lost(ctx, wrong.Stream, fromCache, attempt); err != nil {
				return order.State{}, Result{}, err
			}
			fromCache = false
			continue
		}
		if errors.Is(err, eventstore.ErrInvalidArgument) {
			return order.State{}, Result{}, wrap("place order", err)
		}
		if err != nil {
			return order.State{}, Result{}, errUnknown{err}
		}
		k := 0
		for i := range lines {
			if len(holds[i]) > 0 {
				remember(ctx, r, productKind, streams[i], states[i], holds[i], at, res[k])
				k++
			}
		}
		st := remember(ctx, r, orderKind, order.Stream(id), o.state, placed, at, res[k])
		return st, Result{Version: res[k].Version, Position: res[k].Position}, nil
	}
}

// checkProducts refuses, before any stock is touched, lines naming
// products that do not exist or are discontinued, listing all of them;
// then lines whose total (price × quantity) or whose order total would
// exceed domain.MaxCents at the products' prices, each named by its index
// in lines, the client's order. A price raised meanwhile is caught by the
// reservation and by the order's own check.
func (h *Orders) checkProducts(ctx context.Context, lines []order.Line) error {
	var bad domain.Fields
	priced := make([]order.Item, len(lines))
	for i, l := range lines {
		priced[i] = order.Item{ProductID: l.ProductID, Quantity: l.Quantity}
		// A cached product on sale is trusted here: the reservation
		// decides again on the current state.
		if c, ok := h.cache.get(product.Stream(l.ProductID)); ok {
			if p := c.state.(product.State); p.Exists() && !p.Discontinued {
				priced[i].Price = p.Price
				continue
			}
		}
		p, err := load(ctx, h.repository, productKind, product.Stream(l.ProductID))
		if err != nil {
			return wrap("place order", err)
		}
		if !p.state.Exists() || p.state.Discontinued {
			bad.Add("items["+strconv.Itoa(i)+"].product_id", "product %s does not exist or is discontinued", l.ProductID)
		}
		priced[i].Price = p.state.Price
	}
	if len(bad) > 0 {
		err := bad.Err().(*domain.Error)
		err.Reason = "product_unavailable"
		return err
	}
	return order.CheckAmounts(priced)
}

// PayOrder charges card for the order's total and records the payment.
// Only the order's customer or an admin may pay it. The card is validated
// first and never stored: only its last four digits are kept. A charge is
// made with an idempotency key derived from the order, its version and the
// card, so a retried request charges once. If the order changed under the
// payment (cancelled meanwhile), the charge is refunded. Errors:
// CodeNotFound, domain.ErrPreconditionFailed, CodeConflict "order_not_pending",
// CodeInvalid for a bad card, payment.ErrDeclined.
func (h *Orders) PayOrder(ctx context.Context, actor Actor, id string, ifMatch int64, card payment.Card) (order.State, Result, error) {
	return h.PayOrderOnce(ctx, actor, "", id, ifMatch, card)
}

// PayOrderOnce is PayOrder for the idempotent request named key
// (idempotency.RequestKey; "" is PayOrder). The payment records key, so a
// retry whose first attempt paid (and whose answer was lost, say to a
// crash) is answered with the paid order, whatever its If-Match, instead
// of a refusal; a retry with another card gets CodeInvalid
// "idempotency_key_reused".
func (h *Orders) PayOrderOnce(ctx context.Context, actor Actor, key, id string, ifMatch int64, card payment.Card) (order.State, Result, error) {
	o, err := load(ctx, h.repository, orderKind, order.Stream(id))
	if err != nil {
		return order.State{}, Result{}, wrap("pay order", err)
	}
	s := o.state
	if _, err := ownOrder(actor, id, func(order.State) ([]domain.Event, error) { return nil, nil })(s); err != nil {
		return s, Result{}, err
	}
	if p := s.Payment; key != "" && p != nil && p.Request == key {
		if p.Last4 != payment.Last4(card.Number) {
			return order.State{}, Result{}, keyReused()
		}
		return s, Result{Version: s.Version, Position: o.pos}, nil
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
	failpoint.Crash("after-charge") // charged, not recorded: only the provider knows
	// Of concurrent requests with the same card (one charge, by its key),
	// one records the payment; the others find the order paid: 409, as
	// for a request that comes after, and the charge is not refunded.
	st, res, err := execute(ctx, h.repository, orderKind, order.Stream(id), NoVersion, ownOrder(actor, id, func(s order.State) ([]domain.Event, error) {
		return order.DecidePay(s, charge.ID, domain.Cents(charge.AmountCents), charge.Last4, key)
	}))
	if err != nil {
		held, hres, ok := h.compensateCharge(ctx, id, charge)
		var de *domain.Error
		if ok && !errors.As(err, &de) {
			// The store failed, yet the payment was recorded (the append
			// failed only on its way back): the order is paid. A request
			// refused because another one recorded the same charge first
			// stays refused, as one that came after it would be.
			h.freeUnpaid(ctx, held.UserID, id)
			return held, hres, nil
		}
		return st, res, wrap("pay order", err)
	}
	h.freeUnpaid(ctx, st.UserID, id)
	return st, res, nil
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
func (h *Orders) CompleteOrder(ctx context.Context, actor Actor, id string, ifMatch int64) (order.State, Result, error) {
	if !actor.Has(user.RoleAdmin) {
		return order.State{}, Result{}, domain.ErrForbidden
	}
	st, res, err := execute(ctx, h.repository, orderKind, order.Stream(id), ifMatch, order.DecideComplete)
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
func (h *Orders) CancelOrder(ctx context.Context, actor Actor, id string, ifMatch int64, reason string) (order.State, Result, error) {
	st, res, err := execute(ctx, h.repository, orderKind, order.Stream(id), ifMatch, ownOrder(actor, id, func(s order.State) ([]domain.Event, error) {
		return order.DecideCancel(s, reason)
	}))
	if err != nil {
		return st, res, wrap("cancel order", err)
	}
	h.freeUnpaid(ctx, st.UserID, id)
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
