// Package order is the Order aggregate: placement, payment, completion,
// cancellation and expiry, as pure decide/evolve functions over the stream
// "order-<id>".
//
// Status: pending → paid → completed; pending | paid → cancelled. Every
// other transition is a CodeConflict domain error.
package order

import (
	"strconv"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
)

// StreamPrefix starts every order stream.
const StreamPrefix = "order-"

// Stream is the stream of order id.
func Stream(id string) string { return StreamPrefix + id }

// Item is an order line, with the SKU, name and price captured from the
// product when the order was placed.
type Item struct {
	ProductID string       `json:"product_id"`
	SKU       string       `json:"sku"`
	Name      string       `json:"name"`
	Quantity  int64        `json:"quantity"`
	Price     domain.Cents `json:"price"`
}

// Created: a customer placed the order and its stock is reserved.
type Created struct {
	OrderID string       `json:"order_id"`
	UserID  string       `json:"user_id"`
	Items   []Item       `json:"items"`
	Total   domain.Cents `json:"total"`
}

// Paid: the payment was captured.
type Paid struct {
	OrderID   string       `json:"order_id"`
	PaymentID string       `json:"payment_id"`
	Amount    domain.Cents `json:"amount"`
	Last4     string       `json:"last4"`
	// Request identifies the idempotent request that paid (a digest of
	// its caller, route and Idempotency-Key), so that a retry of it can
	// be answered with the payment; empty for a request without a key.
	Request string `json:"request,omitempty"`
}

// Completed: an admin fulfilled the order; its held stock is deducted.
type Completed struct {
	OrderID string `json:"order_id"`
}

// Cancelled: the order ended without a sale; its stock is released.
// Refunded says the order was paid and its payment is refunded: the refund
// is made right after the cancellation is recorded (so a cancellation that
// loses a race with completion never refunds) and Refunded follows it.
type Cancelled struct {
	OrderID  string `json:"order_id"`
	Reason   string `json:"reason"`
	Refunded bool   `json:"refunded"`
}

// Refunded: the payment provider refunded a charge of the order — the
// payment of a cancelled order, or (ChargeID naming it) a voided charge.
type Refunded struct {
	OrderID  string       `json:"order_id"`
	ChargeID string       `json:"charge_id,omitempty"`
	RefundID string       `json:"refund_id"`
	Amount   domain.Cents `json:"amount"`
}

// PaymentVoided: a charge made for the order could not be recorded as its
// payment and is to be refunded (Refunded with its ChargeID follows). It
// moves the order's version on, so a retried payment makes a new charge
// instead of getting the refunded one back, and the charge can never
// become the order's payment afterwards.
type PaymentVoided struct {
	OrderID  string       `json:"order_id"`
	ChargeID string       `json:"charge_id"`
	Amount   domain.Cents `json:"amount"`
}

// PlacementAbandoned fences an order id whose placement never finished
// (stock was reserved but the order was never recorded): once it is in the
// stream, that placement can no longer record the order, and its
// reservations are released.
type PlacementAbandoned struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

func (Created) EventType() string            { return "order.created" }
func (Paid) EventType() string               { return "order.paid" }
func (Completed) EventType() string          { return "order.completed" }
func (Cancelled) EventType() string          { return "order.cancelled" }
func (Refunded) EventType() string           { return "order.refunded" }
func (PaymentVoided) EventType() string      { return "order.payment_voided" }
func (PlacementAbandoned) EventType() string { return "order.placement_abandoned" }

// Limits on an order.
const (
	MaxItems       = 100
	MaxLineUnits   = 10_000
	MaxReasonChars = domain.MaxReasonLength
)

// Validate checks a new order: its ids, its lines (as CheckLines), each
// line's captured SKU, name and price, every line total and the order
// total within domain.MaxCents, and the total the sum of the lines. A line
// total over the bound names the line's quantity; an order total over it
// names items. Errors: CodeInvalid.
func (e Created) Validate() error {
	var f domain.Fields
	f.CheckID("order_id", e.OrderID)
	f.CheckID("user_id", e.UserID)
	lines := make([]Line, len(e.Items))
	for i, it := range e.Items {
		lines[i] = Line{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	checkLines(&f, lines)
	for i, it := range e.Items {
		field := itemField(i)
		f.CheckText(field+".sku", it.SKU, product.MaxSKULength, false)
		f.CheckText(field+".name", it.Name, product.MaxNameLength, false)
		f.CheckCents(field+".price", it.Price, true)
	}
	before := len(f)
	if total := amounts(&f, e.Items); len(f) == before && total != e.Total {
		f.Add("total", "must be %s, the sum of the lines", total)
	}
	return f.Err()
}

// checkLines checks the lines of an order: at least one, at most
// MaxItems, each naming a product once, each quantity 1..MaxLineUnits.
func checkLines(f *domain.Fields, lines []Line) {
	switch {
	case len(lines) == 0:
		f.Add("items", "must hold at least one item")
	case len(lines) > MaxItems:
		f.Add("items", "must hold at most %d items", MaxItems)
	}
	seen := map[string]bool{}
	for i, l := range lines {
		field := itemField(i)
		f.CheckID(field+".product_id", l.ProductID)
		if l.ProductID != "" && seen[l.ProductID] {
			f.Add(field+".product_id", "names a product already in the order; send one line per product")
		}
		seen[l.ProductID] = true
		f.CheckRange(field+".quantity", l.Quantity, 1, MaxLineUnits)
	}
}

// amounts bounds every line total (price × quantity) and the order total
// by domain.MaxCents, naming a line by its index in items, and returns the
// order total, which means nothing once f holds an error from it.
func amounts(f *domain.Fields, items []Item) domain.Cents {
	var total domain.Cents
	lineOver, totalOver := false, false
	for i, it := range items {
		line, ok := it.Price.Times(it.Quantity)
		if !ok {
			f.Add(itemField(i)+".quantity", "%d × %s is over the limit of %s for one line", it.Quantity, it.Price, domain.MaxCents)
			lineOver = true
			continue
		}
		// Each line is within ±MaxCents and the sum stops growing once
		// beyond it, so it cannot overflow.
		if !totalOver {
			total += line
			totalOver = total > domain.MaxCents || total < -domain.MaxCents
		}
	}
	if totalOver && !lineOver {
		f.Add("items", "the order total is over the limit of %s", domain.MaxCents)
	}
	return total
}

func itemField(i int) string { return "items[" + strconv.Itoa(i) + "]" }

// Validate checks a payment: its ids, an amount of 0..domain.MaxCents and
// the card's last digits. Errors: CodeInvalid.
func (e Paid) Validate() error {
	var f domain.Fields
	f.CheckID("order_id", e.OrderID)
	f.CheckID("payment_id", e.PaymentID)
	f.CheckCents("amount", e.Amount, false)
	f.CheckText("last4", e.Last4, 4, false)
	f.CheckText("request", e.Request, 64, false)
	return f.Err()
}

// Validate checks the order id. Errors: CodeInvalid.
func (e Completed) Validate() error {
	var f domain.Fields
	f.CheckID("order_id", e.OrderID)
	return f.Err()
}

// Validate checks a cancellation: its order and a reason (multiline, at
// most MaxReasonChars). Errors: CodeInvalid.
func (e Cancelled) Validate() error {
	var f domain.Fields
	f.CheckID("order_id", e.OrderID)
	if f.Require("reason", e.Reason) {
		checkCancelReason(&f, e.Reason)
	}
	return f.Err()
}

// checkCancelReason is the bound of a cancellation's reason, which
// CheckCancellable applies too, before any refund is made.
func checkCancelReason(f *domain.Fields, reason string) {
	f.CheckText("reason", reason, MaxReasonChars, true)
}

// Validate checks a refund: its ids (the charge's may be empty: the
// order's payment) and an amount of 0..domain.MaxCents. Errors:
// CodeInvalid.
func (e Refunded) Validate() error {
	var f domain.Fields
	f.CheckID("order_id", e.OrderID)
	f.CheckText("charge_id", e.ChargeID, domain.MaxIDLength, false)
	f.CheckID("refund_id", e.RefundID)
	f.CheckCents("amount", e.Amount, false)
	return f.Err()
}

// Validate checks a voided charge: its ids and an amount of
// 0..domain.MaxCents. Errors: CodeInvalid.
func (e PaymentVoided) Validate() error {
	var f domain.Fields
	f.CheckID("order_id", e.OrderID)
	f.CheckID("charge_id", e.ChargeID)
	f.CheckCents("amount", e.Amount, false)
	return f.Err()
}

// Validate checks the fenced order id and a reason (one line). Errors:
// CodeInvalid.
func (e PlacementAbandoned) Validate() error {
	var f domain.Fields
	f.CheckID("order_id", e.OrderID)
	f.CheckName("reason", e.Reason, MaxReasonChars)
	return f.Err()
}

// Registry decodes every event of this package.
func Registry() domain.Registry {
	r := domain.Registry{}
	domain.Register[Created](r)
	domain.Register[Paid](r)
	domain.Register[Completed](r)
	domain.Register[Cancelled](r)
	domain.Register[Refunded](r)
	domain.Register[PaymentVoided](r)
	domain.Register[PlacementAbandoned](r)
	return r
}
