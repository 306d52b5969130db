package payment

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Card numbers with a fixed outcome at the TestProcessor.
const (
	TestCardSuccess           = "4242424242424242"
	TestCardDeclined          = "4000000000000002" // reason "card_declined"
	TestCardInsufficientFunds = "4000000000009995" // reason "insufficient_funds"
)

var _ Processor = (*TestProcessor)(nil)

// TestProcessor is the built-in Processor for local runs and tests. Card
// TestCardDeclined is declined with reason "card_declined",
// TestCardInsufficientFunds with "insufficient_funds"; any other valid card
// succeeds. Charges and refunds live in memory keyed by idempotency key: a
// repeated key returns the first result (a charge or a decline) and
// charges once. Card numbers are not kept, only their last four digits.
// It is safe for concurrent use.
type TestProcessor struct {
	now func() time.Time // judges card expiry, as a provider would

	mu       sync.Mutex
	byKey    map[string]chargeOutcome // charge idempotency key → first outcome
	byID     map[string]*chargeState
	byOrder  map[string][]string // order id → its charges' ids, oldest first
	refunds  map[string]Refund   // refund idempotency key → first refund
	nCharges int
}

// chargeParams is what a repeated charge key must match.
type chargeParams struct {
	orderID  string
	amount   int64
	currency string
	last4    string
}

type chargeOutcome struct {
	params chargeParams
	charge Charge
	err    error
}

type chargeState struct {
	charge   Charge
	refunded int64
}

// NewTestProcessor returns an empty TestProcessor that checks card expiry
// against the wall clock.
func NewTestProcessor() *TestProcessor {
	return &TestProcessor{
		now:     time.Now,
		byKey:   map[string]chargeOutcome{},
		byID:    map[string]*chargeState{},
		byOrder: map[string][]string{},
		refunds: map[string]Refund{},
	}
}

// Charge charges req.Card once per req.IdempotencyKey. It returns
// ErrInvalidRequest for a missing key or currency or a non-positive amount,
// a *CardError for an invalid card, a *DeclinedError (ErrDeclined) for the
// decline test cards, ErrKeyReused when the key was used for another order,
// amount, currency or card, and ctx's error when ctx is done.
func (p *TestProcessor) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	params, err := checkCharge(ctx, req)
	if err != nil {
		return Charge{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.byKey[req.IdempotencyKey]; ok {
		if prev.params != params {
			return Charge{}, fmt.Errorf("charge order %s: %w", req.OrderID, ErrKeyReused)
		}
		return prev.charge, prev.err
	}
	// An invalid card is rejected before the charge starts, so, as at real
	// providers, the outcome is not kept and the key stays usable.
	if err := ValidateCard(req.Card, p.now()); err != nil {
		return Charge{}, err
	}

	out := testOutcome(req, params)
	if out.err == nil {
		p.byID[out.charge.ID] = &chargeState{charge: out.charge}
		p.byOrder[req.OrderID] = append(p.byOrder[req.OrderID], out.charge.ID)
		p.nCharges++
	}
	p.byKey[req.IdempotencyKey] = out
	return out.charge, out.err
}

// Refund refunds amountCents of chargeID once per idempotencyKey; a
// repeated key returns the first refund. It returns ErrInvalidRequest for
// a missing key or a non-positive amount, ErrKeyReused when the key was
// used for another charge or amount, ErrUnknownCharge, ErrRefundTooLarge
// when the refunds would exceed the charge, and ctx's error when ctx is
// done.
func (p *TestProcessor) Refund(ctx context.Context, chargeID string, amountCents int64, idempotencyKey string) (Refund, error) {
	if err := checkRefund(ctx, chargeID, amountCents, idempotencyKey); err != nil {
		return Refund{}, err
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.refunds[idempotencyKey]; ok {
		if prev.ChargeID != chargeID || prev.AmountCents != amountCents {
			return Refund{}, fmt.Errorf("refund %s: %w", chargeID, ErrKeyReused)
		}
		return prev, nil
	}
	st, ok := p.byID[chargeID]
	if !ok {
		return Refund{}, fmt.Errorf("refund %s: %w", chargeID, ErrUnknownCharge)
	}
	if left := st.charge.AmountCents - st.refunded; amountCents > left {
		return Refund{}, fmt.Errorf("refund %s: %w: %d cents requested, %d left", chargeID, ErrRefundTooLarge, amountCents, left)
	}
	st.refunded += amountCents
	r := Refund{ID: "re_" + uuid.NewString(), ChargeID: chargeID, AmountCents: amountCents}
	p.refunds[idempotencyKey] = r
	return r, nil
}

// ChargesOf returns the successful charges made for orderID, oldest
// first, refunded or not; ctx's error when ctx is done.
func (p *TestProcessor) ChargesOf(ctx context.Context, orderID string) ([]Charge, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Charge
	for _, id := range p.byOrder[orderID] {
		out = append(out, p.byID[id].charge)
	}
	return out, nil
}

// checkCharge refuses a charge request no processor would take (or ctx's
// error) and returns the parameters a repeated key must match.
func checkCharge(ctx context.Context, req ChargeRequest) (chargeParams, error) {
	if err := ctx.Err(); err != nil {
		return chargeParams{}, err
	}
	switch {
	case req.IdempotencyKey == "":
		return chargeParams{}, fmt.Errorf("charge order %s: %w: idempotency key is required", req.OrderID, ErrInvalidRequest)
	case req.AmountCents <= 0:
		return chargeParams{}, fmt.Errorf("charge order %s: %w: amount must be positive", req.OrderID, ErrInvalidRequest)
	case req.Currency == "":
		return chargeParams{}, fmt.Errorf("charge order %s: %w: currency is required", req.OrderID, ErrInvalidRequest)
	}
	return chargeParams{req.OrderID, req.AmountCents, req.Currency, Last4(req.Card.Number)}, nil
}

// testOutcome is what the test processors make of a valid card: a
// decline for the decline test cards, a new charge for any other.
func testOutcome(req ChargeRequest, params chargeParams) chargeOutcome {
	out := chargeOutcome{params: params}
	switch normalise(req.Card.Number) {
	case TestCardDeclined:
		out.err = &DeclinedError{Reason: "card_declined"}
	case TestCardInsufficientFunds:
		out.err = &DeclinedError{Reason: "insufficient_funds"}
	default:
		out.charge = Charge{ID: "ch_" + uuid.NewString(), AmountCents: req.AmountCents, Last4: params.last4}
	}
	return out
}

// checkRefund refuses a refund request no processor would take (or ctx's
// error).
func checkRefund(ctx context.Context, chargeID string, amountCents int64, idempotencyKey string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case idempotencyKey == "":
		return fmt.Errorf("refund %s: %w: idempotency key is required", chargeID, ErrInvalidRequest)
	case amountCents <= 0:
		return fmt.Errorf("refund %s: %w: amount must be positive", chargeID, ErrInvalidRequest)
	}
	return nil
}

// Charges returns how many distinct successful charges were made.
func (p *TestProcessor) Charges() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nCharges
}

// Refunds returns how many distinct refunds were made.
func (p *TestProcessor) Refunds() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.refunds)
}
