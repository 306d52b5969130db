package order

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eventshop/eventshop/domain"
)

// Status of an order.
type Status string

// The statuses of API.md, plus Abandoned for a placement that never
// finished (such an order does not exist for clients).
const (
	StatusNone      Status = ""
	StatusPending   Status = "pending"
	StatusPaid      Status = "paid"
	StatusCompleted Status = "completed"
	StatusCancelled Status = "cancelled"
	StatusAbandoned Status = "abandoned"
)

// ReasonPaymentTimeout is the cancel reason of an expired order.
const ReasonPaymentTimeout = "payment_timeout"

// Payment is the captured payment of an order.
type Payment struct {
	ID       string
	Amount   domain.Cents
	Last4    string
	Request  string // the idempotent request that paid, if it had a key
	Refunded bool
	RefundID string
}

// State is an order as folded from its stream. Version is -1 before the
// first event.
type State struct {
	ID      string
	UserID  string
	Status  Status
	Items   []Item
	Total   domain.Cents
	Payment *Payment
	// Voided holds the charges voided on the order; VoidsDue those whose
	// refund is not recorded yet, with their amounts.
	Voided       map[string]bool
	VoidsDue     map[string]domain.Cents
	CancelReason string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Version      int64
}

// New is the state of a stream with no events.
func New() State { return State{Version: -1} }

// Exists reports whether the order was placed.
func (s State) Exists() bool { return s.Status != StatusNone && s.Status != StatusAbandoned }

// Evolve applies one recorded event and never fails.
func Evolve(s State, r domain.Recorded) State {
	s.Version = r.Version
	s.UpdatedAt = r.At
	switch e := r.Event.(type) {
	case Created:
		s.ID, s.UserID, s.Items, s.Total = e.OrderID, e.UserID, slices.Clone(e.Items), e.Total
		s.Status, s.CreatedAt = StatusPending, r.At
	case Paid:
		s.Status = StatusPaid
		s.Payment = &Payment{ID: e.PaymentID, Amount: e.Amount, Last4: e.Last4, Request: e.Request}
	case Completed:
		s.Status = StatusCompleted
	case Cancelled:
		s.Status, s.CancelReason = StatusCancelled, e.Reason
		if e.Refunded && s.Payment != nil {
			p := *s.Payment
			p.Refunded = true
			s.Payment = &p
		}
	case Refunded:
		if _, due := s.VoidsDue[e.ChargeID]; due {
			s.VoidsDue = maps.Clone(s.VoidsDue)
			delete(s.VoidsDue, e.ChargeID)
		} else if s.Payment != nil && (e.ChargeID == "" || e.ChargeID == s.Payment.ID) {
			p := *s.Payment
			p.Refunded, p.RefundID = true, e.RefundID
			s.Payment = &p
		}
	case PaymentVoided:
		// Copied, not changed in place: states are shared read-only.
		s.Voided = maps.Clone(s.Voided)
		if s.Voided == nil {
			s.Voided = map[string]bool{}
		}
		s.Voided[e.ChargeID] = true
		s.VoidsDue = maps.Clone(s.VoidsDue)
		if s.VoidsDue == nil {
			s.VoidsDue = map[string]domain.Cents{}
		}
		s.VoidsDue[e.ChargeID] = e.Amount
	case PlacementAbandoned:
		s.ID, s.Status = e.OrderID, StatusAbandoned
	}
	return s
}

// Fold folds history from New.
func Fold(history []domain.Recorded) State { return domain.Fold(New(), Evolve, history) }

// Line is what a client asks for: a product and a quantity.
type Line struct {
	ProductID string
	Quantity  int64
}

// CheckLines validates the lines of a new order before any stock is
// touched: at least one, at most MaxItems, each quantity 1..MaxLineUnits,
// no product twice. Errors: CodeInvalid listing every bad line.
func CheckLines(lines []Line) error {
	var f domain.Fields
	checkLines(&f, lines)
	return f.Err()
}

// CheckAmounts bounds the totals of lines priced as items (in the order
// the client sent them) before any stock is touched: every line total
// (price × quantity) and the order total within domain.MaxCents. Errors:
// CodeInvalid naming items[i].quantity for a line, items for the total.
func CheckAmounts(items []Item) error {
	var f domain.Fields
	amounts(&f, items)
	return f.Err()
}

// Place is the command to record an order whose items are already
// reserved, with prices captured.
type Place struct {
	OrderID string
	UserID  string
	Items   []Item
}

// DecidePlace records a new order, its total the sum of its lines.
// Errors: CodeConflict "order_exists" when the id is taken or fenced,
// CodeInvalid (Created.Validate: bad lines, no user, a line or the order
// total over domain.MaxCents).
func DecidePlace(s State, c Place) ([]domain.Event, error) {
	if s.Version >= 0 {
		return nil, domain.Conflict("order_exists", "order %s already exists or was abandoned", c.OrderID)
	}
	e := Created{OrderID: c.OrderID, UserID: c.UserID, Items: slices.Clone(c.Items)}
	var sum domain.Fields // Validate reports what amounts finds
	e.Total = amounts(&sum, e.Items)
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return []domain.Event{e}, nil
}

// DecidePay records a captured payment of the full total, made by the
// idempotent request named request ("" for none). Errors:
// CodeNotFound, CodeConflict "order_not_pending", CodeInvalid
// "amount_mismatch".
func DecidePay(s State, paymentID string, amount domain.Cents, last4, request string) ([]domain.Event, error) {
	if err := CheckPayable(s); err != nil {
		return nil, err
	}
	if s.Voided[paymentID] {
		return nil, domain.Conflict("payment_voided", "charge %s was voided and refunded; pay again", paymentID)
	}
	if amount != s.Total {
		return nil, &domain.Error{Code: domain.CodeInvalid, Reason: "amount_mismatch",
			Detail: "payment of " + amount.String() + " does not match the order total " + s.Total.String()}
	}
	return []domain.Event{Paid{OrderID: s.ID, PaymentID: paymentID, Amount: amount, Last4: last4, Request: request}}, nil
}

// CheckPayable says whether the order can be paid now, before the card is
// charged. Errors: CodeNotFound, CodeConflict "order_not_pending" or
// "order_total_out_of_range" (an order placed before totals were bounded).
func CheckPayable(s State) error {
	if !s.Exists() {
		return domain.NotFound("order", s.ID)
	}
	if s.Status != StatusPending {
		return domain.Conflict("order_not_pending", "order %s is %s; only a pending order can be paid", s.ID, s.Status)
	}
	if s.Total < 0 || s.Total > domain.MaxCents {
		// Placed before totals were bounded: a payment of it could not be
		// recorded (nor voided), so no card is charged for it.
		return domain.Conflict("order_total_out_of_range", "order %s totals %s, over the limit of %s; it cannot be paid, only cancelled",
			s.ID, s.Total, domain.MaxCents)
	}
	return nil
}

// DecideComplete fulfils a paid order. Errors: CodeNotFound, CodeConflict
// "order_not_paid".
func DecideComplete(s State) ([]domain.Event, error) {
	if !s.Exists() {
		return nil, domain.NotFound("order", s.ID)
	}
	if s.Status != StatusPaid {
		return nil, domain.Conflict("order_not_paid", "order %s is %s; only a paid order can be completed", s.ID, s.Status)
	}
	return []domain.Event{Completed{OrderID: s.ID}}, nil
}

// CheckCancellable says whether the order can be cancelled now, before a
// refund is made. Errors: CodeInvalid for a reason out of bounds (too
// long, control characters), CodeNotFound, CodeConflict
// "order_not_cancellable".
func CheckCancellable(s State, reason string) error {
	var f domain.Fields
	if checkCancelReason(&f, reason); len(f) > 0 {
		return f.Err()
	}
	if !s.Exists() {
		return domain.NotFound("order", s.ID)
	}
	if s.Status != StatusPending && s.Status != StatusPaid {
		return domain.Conflict("order_not_cancellable", "order %s is %s; only a pending or paid order can be cancelled", s.ID, s.Status)
	}
	return nil
}

// RefundPending reports whether the order was cancelled after payment and
// the provider's refund is not recorded yet.
func (s State) RefundPending() bool {
	return s.Status == StatusCancelled && s.Payment != nil && s.Payment.Refunded && s.Payment.RefundID == ""
}

// DecideCancel cancels a pending or paid order; a paid order's payment is
// to be refunded (Cancelled.Refunded), which DecideRecordRefund records.
// Errors: those of CheckCancellable.
func DecideCancel(s State, reason string) ([]domain.Event, error) {
	reason = strings.TrimSpace(reason)
	if err := CheckCancellable(s, reason); err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "cancelled"
	}
	e := Cancelled{OrderID: s.ID, Reason: reason, Refunded: s.Status == StatusPaid}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return []domain.Event{e}, nil
}

// DecideRecordRefund records the provider's refund of a cancelled order's
// payment; nothing happens when no refund is pending.
func DecideRecordRefund(s State, refundID string) []domain.Event {
	if !s.RefundPending() {
		return nil
	}
	return []domain.Event{Refunded{OrderID: s.ID, ChargeID: s.Payment.ID, RefundID: refundID, Amount: s.Payment.Amount}}
}

// DecideExpire cancels a pending order left unpaid for timeout or longer,
// with reason payment_timeout; for any other order, or one not yet due,
// nothing happens.
func DecideExpire(s State, now time.Time, timeout time.Duration) []domain.Event {
	if s.Status != StatusPending || now.Sub(s.CreatedAt) < timeout {
		return nil
	}
	return []domain.Event{Cancelled{OrderID: s.ID, Reason: ReasonPaymentTimeout}}
}

// DecideVoidPayment records that chargeID (of amount) will be refunded
// because it could not become the order's payment; nothing happens when
// the order holds that charge after all (then it must not be refunded),
// already voided it, or does not exist.
func DecideVoidPayment(s State, chargeID string, amount domain.Cents) []domain.Event {
	if !s.Exists() || (s.Payment != nil && s.Payment.ID == chargeID) || s.Voided[chargeID] {
		return nil
	}
	return []domain.Event{PaymentVoided{OrderID: s.ID, ChargeID: chargeID, Amount: amount}}
}

// DecideRecordVoidRefund records the provider's refund of a voided charge;
// nothing happens when that refund is recorded already.
func DecideRecordVoidRefund(s State, chargeID, refundID string) []domain.Event {
	amount, due := s.VoidsDue[chargeID]
	if !due {
		return nil
	}
	return []domain.Event{Refunded{OrderID: s.ID, ChargeID: chargeID, RefundID: refundID, Amount: amount}}
}

// DecideAbandon fences an order id whose placement never recorded the
// order; nothing happens for an order that exists or is already fenced.
func DecideAbandon(s State, orderID, reason string) []domain.Event {
	if s.Version >= 0 {
		return nil
	}
	return []domain.Event{PlacementAbandoned{OrderID: orderID, Reason: reason}}
}
