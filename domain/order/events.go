// Package order is the Order aggregate: placement, payment, completion,
// cancellation and expiry, as pure decide/evolve functions over the stream
// "order-<id>".
//
// Status: pending → paid → completed; pending | paid → cancelled. Every
// other transition is a CodeConflict domain error.
package order

import "github.com/eventshop/eventshop/domain"

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
