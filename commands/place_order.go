package commands

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
)

// PlaceOrder places an order for actor: it reserves stock on every
// product's stream (each reservation names the order), then records the
// order with the prices captured from the products. If any reservation
// fails, those already made are released and no order is recorded. A
// crash part-way leaves reservations whose order never appeared; the
// process manager fences the order id and releases them after the grace
// period. Errors: domain.ErrForbidden (no customer or admin role), CodeInvalid
// (bad lines, unknown or discontinued product, a line or the order total
// over domain.MaxCents: nothing is reserved), CodeConflict
// "insufficient_stock" naming the product and what is available,
// CodeConflict stream_unreadable.
func (h *Handler) PlaceOrder(ctx context.Context, actor Actor, lines []order.Line) (order.State, Result, error) {
	if !actor.Has(user.RoleCustomer) && !actor.Has(user.RoleAdmin) {
		return order.State{}, Result{}, domain.ErrForbidden
	}
	if err := order.CheckLines(lines); err != nil {
		return order.State{}, Result{}, err
	}
	if err := h.checkProducts(ctx, lines); err != nil {
		return order.State{}, Result{}, err
	}
	lines = slices.Clone(lines)
	slices.SortFunc(lines, func(a, b order.Line) int { return strings.Compare(a.ProductID, b.ProductID) })
	id := h.newID()
	items, err := h.reserveAll(ctx, id, lines)
	if err != nil {
		return order.State{}, Result{}, err
	}
	fresh(h, orderKind, order.Stream(id))
	st, res, err := execute(ctx, h, orderKind, order.Stream(id), NoVersion, func(s order.State) ([]domain.Event, error) {
		return order.DecidePlace(s, order.Place{OrderID: id, UserID: actor.ID, Items: items})
	})
	if err != nil {
		// The order id was fenced (this placement stalled past the grace
		// period), or the store failed — perhaps after the order was
		// written. Fence it and give the stock back only if it does not
		// exist; if that fails too, the process manager does it after the
		// grace period.
		actx, cancel := detached(ctx)
		defer cancel()
		if exists, aerr := h.AbandonPlacement(actx, id, productIDs(items)); aerr != nil {
			h.log.WarnContext(ctx, "abandon placement; the process manager will retry", "order_id", id, "err", aerr)
		} else if exists {
			st, res, lerr := h.Order(actx, actor, id)
			if lerr == nil {
				return st, res, nil
			}
		}
		return order.State{}, Result{}, wrap("place order", err)
	}
	return st, res, nil
}

// checkProducts refuses, before any stock is touched, lines naming
// products that do not exist or are discontinued, listing all of them;
// then lines whose total (price × quantity) or whose order total would
// exceed domain.MaxCents at the products' prices, each named by its index
// in lines, the client's order. A price raised meanwhile is caught by the
// reservation and by the order's own check.
func (h *Handler) checkProducts(ctx context.Context, lines []order.Line) error {
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
		p, err := load(ctx, h, productKind, product.Stream(l.ProductID))
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

// reserveAll reserves every line for orderID, concurrently, and returns
// the order items with captured SKU, name and price. On any failure it
// releases what it reserved and returns the most telling error: bad input
// before a stock conflict before an infrastructure failure.
func (h *Handler) reserveAll(ctx context.Context, orderID string, lines []order.Line) ([]order.Item, error) {
	items := make([]order.Item, len(lines))
	errs := make([]error, len(lines))
	var wg sync.WaitGroup
	for i, l := range lines {
		wg.Go(func() {
			p, _, err := execute(ctx, h, productKind, product.Stream(l.ProductID), NoVersion, func(s product.State) ([]domain.Event, error) {
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
		if failed == nil || rank(err) < rank(failed) {
			failed = err
		}
	}
	if failed == nil {
		return items, nil
	}
	h.releaseAll(ctx, orderID, reserved, "placement_failed")
	return nil, wrap("reserve stock", failed)
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

func productIDs(items []order.Item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ProductID
	}
	return ids
}

// releaseAll ends orderID's holds on products and returns the position of
// the last event it wrote (Start when none). Failures are logged, not
// returned: the process manager retries them.
func (h *Handler) releaseAll(ctx context.Context, orderID string, products []string, reason string) eventstore.Position {
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
func (h *Handler) ReleaseStock(ctx context.Context, orderID string, products []string, reason string) (eventstore.Position, error) {
	return h.eachProduct(ctx, products, func(s product.State) []domain.Event {
		return product.DecideRelease(s, orderID, reason)
	})
}

// DeductStock turns orderID's holds into sales; safe to repeat. It returns
// the latest position among the product streams it touched.
func (h *Handler) DeductStock(ctx context.Context, orderID string, products []string) (eventstore.Position, error) {
	return h.eachProduct(ctx, products, func(s product.State) []domain.Event {
		return product.DecideDeduct(s, orderID)
	})
}

// eachProduct runs decide on each product in parallel, and returns the
// latest position of the products' streams after it: what a reader must
// have seen to see the outcome.
func (h *Handler) eachProduct(ctx context.Context, products []string, decide func(product.State) []domain.Event) (eventstore.Position, error) {
	errs := make([]error, len(products))
	positions := make([]eventstore.Position, len(products))
	var wg sync.WaitGroup
	for i, id := range products {
		wg.Go(func() {
			_, res, err := execute(ctx, h, productKind, product.Stream(id), NoVersion, func(s product.State) ([]domain.Event, error) {
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
