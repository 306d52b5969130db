// Package payment is the port to a card payment provider, with a built-in
// TestProcessor for local runs and tests.
//
// # Mapping a real provider
//
// An adapter for a Stripe-like provider implements Processor:
//
//   - Idempotency. ChargeRequest.IdempotencyKey and Refund's idempotencyKey
//     are sent as the provider's Idempotency-Key header, and the provider
//     answers a repeated key with the first result (a charge or a decline).
//     Callers derive the key from the operation they must not do twice, so
//     that a retried command, a redelivered event or a crash between
//     charging and recording the charge never charges twice: one payment
//     attempt (for example the order id plus the client's Idempotency-Key),
//     one refund ("order-<id>-refund"). A new attempt after a decline, with
//     another card, needs a new key: under the old one the provider replays
//     the decline, or rejects the other parameters (ErrKeyReused).
//   - Declines. A card error (HTTP 402, type "card_error") becomes a
//     *DeclinedError whose Reason is the provider's decline code
//     ("card_declined", "insufficient_funds", …); errors.Is(err, ErrDeclined)
//     holds. The order stays unpaid and the client may try another card.
//   - Invalid input the provider rejects (400 invalid_request_error) wraps
//     ErrInvalidRequest; a reused key with other parameters wraps
//     ErrKeyReused; an unknown charge id wraps ErrUnknownCharge; refunding
//     more than is left wraps ErrRefundTooLarge.
//   - Everything else (timeouts, connection resets, 5xx, 429) is returned
//     wrapped but otherwise as is. Callers must treat such an error as
//     "outcome unknown": the charge may have happened. They retry with the
//     same idempotency key, which is safe, rather than report failure.
//
// Card numbers and CVCs go to the provider and nowhere else: Card masks
// itself in fmt and log/slog output, and only Last4 is kept.
package payment

import (
	"context"
	"errors"
	"log/slog"
)

// Errors returned by processors. Wrapped errors keep these for errors.Is.
var (
	// ErrDeclined means the card was declined (HTTP 402). A *DeclinedError
	// carries the reason and matches it with errors.Is.
	ErrDeclined = errors.New("payment: card declined")
	// ErrInvalidRequest means the request cannot be sent as it is: a
	// non-positive amount, a missing currency or idempotency key.
	ErrInvalidRequest = errors.New("payment: invalid request")
	// ErrKeyReused means an idempotency key was used before for a different
	// charge or refund.
	ErrKeyReused = errors.New("payment: idempotency key reused with different parameters")
	// ErrUnknownCharge means a refund named a charge the processor does not know.
	ErrUnknownCharge = errors.New("payment: unknown charge")
	// ErrRefundTooLarge means a refund exceeds what is left of the charge.
	ErrRefundTooLarge = errors.New("payment: refund exceeds the charge")
)

// DeclinedError is a decline with the provider's reason, such as
// "card_declined" or "insufficient_funds". errors.Is(err, ErrDeclined)
// holds for it.
type DeclinedError struct {
	Reason string
}

// Error returns "payment: card declined: <reason>".
func (e *DeclinedError) Error() string {
	if e.Reason == "" {
		return ErrDeclined.Error()
	}
	return ErrDeclined.Error() + ": " + e.Reason
}

// Is reports whether target is ErrDeclined.
func (e *DeclinedError) Is(target error) bool { return target == ErrDeclined }

// ChargeRequest asks for one charge. Printing or logging it masks the card.
type ChargeRequest struct {
	OrderID     string
	AmountCents int64
	Currency    string // ISO 4217, e.g. "USD"
	Card        Card
	// IdempotencyKey is required: a processor treats a repeated key as the
	// same charge, returning the first result and charging once.
	IdempotencyKey string
}

// LogValue lets log/slog print the request with the card masked; without
// it a JSON handler would marshal Card's number and CVC.
func (r ChargeRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("order_id", r.OrderID),
		slog.Int64("amount_cents", r.AmountCents),
		slog.String("currency", r.Currency),
		slog.Any("card", r.Card),
	)
}

// Charge is a successful charge.
type Charge struct {
	ID          string // e.g. "ch_<uuid>"
	AmountCents int64
	Last4       string
}

// Refund is a successful (partial or full) refund of a charge.
type Refund struct {
	ID          string // e.g. "re_<uuid>"
	ChargeID    string
	AmountCents int64
}

// Processor is the port a payment provider adapter implements. See the
// package documentation for how a real provider maps onto it.
type Processor interface {
	// Charge charges req.Card once per req.IdempotencyKey. It returns a
	// *DeclinedError (ErrDeclined) for a declined card, a *CardError for a
	// card the processor finds invalid, ErrInvalidRequest or ErrKeyReused
	// for a bad request, and any other error when the outcome is unknown
	// (retry with the same key).
	Charge(ctx context.Context, req ChargeRequest) (Charge, error)
	// Refund refunds amountCents of chargeID once per idempotencyKey. It
	// returns ErrUnknownCharge, ErrRefundTooLarge, ErrInvalidRequest or
	// ErrKeyReused, or any other error when the outcome is unknown.
	Refund(ctx context.Context, chargeID string, amountCents int64, idempotencyKey string) (Refund, error)
	// ChargesOf lists the successful charges made for orderID, so that a
	// charge the shop failed to record (it crashed, or its store was down,
	// right after charging) is found and given back. A Stripe-like adapter
	// keeps the order id in each charge's metadata and searches by it.
	ChargesOf(ctx context.Context, orderID string) ([]Charge, error)
}
