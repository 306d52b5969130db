package order_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/domaintest"
	"github.com/eventshop/eventshop/domain/order"
)

// t0 and given come from domaintest: histories start at t0, a minute apart.
var (
	t0    = domaintest.T0
	given = domaintest.Given
)

var (
	then   = domaintest.Then
	fields = domaintest.FieldNames
)

var (
	items = []order.Item{
		{ProductID: "p1", SKU: "MUG-1", Name: "Mug", Quantity: 2, Price: 1999},
		{ProductID: "p2", SKU: "PEN-1", Name: "Pen", Quantity: 3, Price: 50},
	}
	created     = order.Created{OrderID: "o1", UserID: "u1", Items: items, Total: 4148}
	paid        = order.Paid{OrderID: "o1", PaymentID: "pay_1", Amount: 4148, Last4: "4242"}
	completed   = order.Completed{OrderID: "o1"}
	cancelled   = order.Cancelled{OrderID: "o1", Reason: "changed my mind"}
	refunded    = order.Cancelled{OrderID: "o1", Reason: "changed my mind", Refunded: true}
	refundDone  = order.Refunded{OrderID: "o1", ChargeID: "pay_1", RefundID: "re_1", Amount: 4148}
	expired     = order.Cancelled{OrderID: "o1", Reason: order.ReasonPaymentTimeout}
	abandonedEv = order.PlacementAbandoned{OrderID: "o1", Reason: "placement_timeout"}
)

// Every status an order stream can be in, by the history that leads to it.
var statuses = []struct {
	name    string
	history []domain.Event
	status  order.Status
}{
	{"none", nil, order.StatusNone},
	{"pending", []domain.Event{created}, order.StatusPending},
	{"paid", []domain.Event{created, paid}, order.StatusPaid},
	{"completed", []domain.Event{created, paid, completed}, order.StatusCompleted},
	{"cancelled while pending", []domain.Event{created, cancelled}, order.StatusCancelled},
	{"cancelled after payment", []domain.Event{created, paid, refunded}, order.StatusCancelled},
	{"expired", []domain.Event{created, expired}, order.StatusCancelled},
	{"abandoned", []domain.Event{abandonedEv}, order.StatusAbandoned},
}

func TestFoldStatus(t *testing.T) {
	for _, s := range statuses {
		st := order.Fold(given(s.history...))
		if st.Status != s.status {
			t.Errorf("%s: status %q, want %q", s.name, st.Status, s.status)
		}
		if st.Version != int64(len(s.history))-1 {
			t.Errorf("%s: version %d, want %d", s.name, st.Version, len(s.history)-1)
		}
		wantExists := s.status != order.StatusNone && s.status != order.StatusAbandoned
		if st.Exists() != wantExists {
			t.Errorf("%s: Exists() = %v", s.name, st.Exists())
		}
	}
}

// The full status machine: pay, complete, cancel, expire, abandon and place
// from every status. Legal: pending → paid → completed, pending | paid →
// cancelled, expiry of a due pending order, abandon of an empty stream,
// place on an empty stream. Everything else is refused or a no-op.
func TestTransitions(t *testing.T) {
	type outcome struct {
		events []domain.Event
		code   domain.Code
		reason string
	}
	ok := func(e ...domain.Event) outcome { return outcome{events: e} }
	noop := outcome{}
	notFound := outcome{code: domain.CodeNotFound, reason: "order_not_found"}
	conflict := func(r string) outcome { return outcome{code: domain.CodeConflict, reason: r} }

	commands := []struct {
		name string
		run  func(order.State) ([]domain.Event, error)
		want map[string]outcome // by status name
	}{
		{
			name: "pay",
			run: func(s order.State) ([]domain.Event, error) {
				return order.DecidePay(s, "pay_2", 4148, "4242", "")
			},
			want: map[string]outcome{
				"none":                    notFound,
				"pending":                 ok(order.Paid{OrderID: "o1", PaymentID: "pay_2", Amount: 4148, Last4: "4242"}),
				"paid":                    conflict("order_not_pending"),
				"completed":               conflict("order_not_pending"),
				"cancelled while pending": conflict("order_not_pending"),
				"cancelled after payment": conflict("order_not_pending"),
				"expired":                 conflict("order_not_pending"),
				"abandoned":               notFound,
			},
		},
		{
			name: "check payable",
			run: func(s order.State) ([]domain.Event, error) {
				return nil, order.CheckPayable(s)
			},
			want: map[string]outcome{
				"none":                    notFound,
				"pending":                 noop,
				"paid":                    conflict("order_not_pending"),
				"completed":               conflict("order_not_pending"),
				"cancelled while pending": conflict("order_not_pending"),
				"cancelled after payment": conflict("order_not_pending"),
				"expired":                 conflict("order_not_pending"),
				"abandoned":               notFound,
			},
		},
		{
			name: "complete",
			run:  order.DecideComplete,
			want: map[string]outcome{
				"none":                    notFound,
				"pending":                 conflict("order_not_paid"),
				"paid":                    ok(order.Completed{OrderID: "o1"}),
				"completed":               conflict("order_not_paid"),
				"cancelled while pending": conflict("order_not_paid"),
				"cancelled after payment": conflict("order_not_paid"),
				"expired":                 conflict("order_not_paid"),
				"abandoned":               notFound,
			},
		},
		{
			name: "cancel",
			run: func(s order.State) ([]domain.Event, error) {
				return order.DecideCancel(s, "too slow")
			},
			want: map[string]outcome{
				"none": notFound,
				// A pending order has nothing to refund.
				"pending":                 ok(order.Cancelled{OrderID: "o1", Reason: "too slow"}),
				"paid":                    ok(order.Cancelled{OrderID: "o1", Reason: "too slow", Refunded: true}),
				"completed":               conflict("order_not_cancellable"),
				"cancelled while pending": conflict("order_not_cancellable"),
				"cancelled after payment": conflict("order_not_cancellable"),
				"expired":                 conflict("order_not_cancellable"),
				"abandoned":               notFound,
			},
		},
		{
			name: "check cancellable",
			run: func(s order.State) ([]domain.Event, error) {
				return nil, order.CheckCancellable(s, "too slow")
			},
			want: map[string]outcome{
				"none":                    notFound,
				"pending":                 noop,
				"paid":                    noop,
				"completed":               conflict("order_not_cancellable"),
				"cancelled while pending": conflict("order_not_cancellable"),
				"cancelled after payment": conflict("order_not_cancellable"),
				"expired":                 conflict("order_not_cancellable"),
				"abandoned":               notFound,
			},
		},
		{
			name: "expire when due",
			run: func(s order.State) ([]domain.Event, error) {
				return order.DecideExpire(s, t0.Add(time.Hour), 15*time.Minute), nil
			},
			want: map[string]outcome{
				"none":                    noop,
				"pending":                 ok(order.Cancelled{OrderID: "o1", Reason: "payment_timeout"}),
				"paid":                    noop,
				"completed":               noop,
				"cancelled while pending": noop,
				"cancelled after payment": noop,
				"expired":                 noop,
				"abandoned":               noop,
			},
		},
		{
			name: "abandon",
			run: func(s order.State) ([]domain.Event, error) {
				return order.DecideAbandon(s, "o1", "placement_timeout"), nil
			},
			want: map[string]outcome{
				"none":                    ok(order.PlacementAbandoned{OrderID: "o1", Reason: "placement_timeout"}),
				"pending":                 noop,
				"paid":                    noop,
				"completed":               noop,
				"cancelled while pending": noop,
				"cancelled after payment": noop,
				"expired":                 noop,
				"abandoned":               noop,
			},
		},
		{
			name: "place",
			run: func(s order.State) ([]domain.Event, error) {
				return order.DecidePlace(s, order.Place{OrderID: "o1", UserID: "u1", Items: items})
			},
			want: map[string]outcome{
				"none":                    ok(created),
				"pending":                 conflict("order_exists"),
				"paid":                    conflict("order_exists"),
				"completed":               conflict("order_exists"),
				"cancelled while pending": conflict("order_exists"),
				"cancelled after payment": conflict("order_exists"),
				"expired":                 conflict("order_exists"),
				// A fenced id can never be placed: the stalled placement lost.
				"abandoned": conflict("order_exists"),
			},
		},
	}
	for _, c := range commands {
		for _, s := range statuses {
			want, listed := c.want[s.name]
			if !listed {
				t.Errorf("%s from %s: no expectation in the table", c.name, s.name)
				continue
			}
			t.Run(c.name+" from "+s.name, func(t *testing.T) {
				events, err := c.run(order.Fold(given(s.history...)))
				then(t, events, err, want.events, want.code, want.reason)
			})
		}
	}
}

func TestDecidePay(t *testing.T) {
	tests := []struct {
		name   string
		given  []domain.Event
		amount domain.Cents
		then   []domain.Event
		code   domain.Code
		reason string
	}{
		{name: "full total", given: []domain.Event{created}, amount: 4148,
			then: []domain.Event{order.Paid{OrderID: "o1", PaymentID: "pay_1", Amount: 4148, Last4: "4242"}}},
		{name: "a cent short", given: []domain.Event{created}, amount: 4147, code: domain.CodeInvalid, reason: "amount_mismatch"},
		{name: "a cent over", given: []domain.Event{created}, amount: 4149, code: domain.CodeInvalid, reason: "amount_mismatch"},
		{name: "zero", given: []domain.Event{created}, amount: 0, code: domain.CodeInvalid, reason: "amount_mismatch"},
		{name: "negative", given: []domain.Event{created}, amount: -4148, code: domain.CodeInvalid, reason: "amount_mismatch"},
		// An order placed before totals were bounded cannot be paid: its
		// payment could not be recorded.
		{name: "a total over the bound", given: []domain.Event{order.Created{OrderID: "o1", UserID: "u1", Items: priced(domain.MaxCents, 10_000),
			Total: domain.MaxCents * 10_000}}, amount: domain.MaxCents * 10_000, code: domain.CodeConflict, reason: "order_total_out_of_range"},
		// The state is checked before the amount.
		{name: "wrong amount on a paid order", given: []domain.Event{created, paid}, amount: 1, code: domain.CodeConflict, reason: "order_not_pending"},
		{name: "wrong amount on no order", amount: 1, code: domain.CodeNotFound, reason: "order_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := order.DecidePay(order.Fold(given(tt.given...)), "pay_1", tt.amount, "4242", "")
			then(t, events, err, tt.then, tt.code, tt.reason)
		})
	}
}

func TestDecideCancel(t *testing.T) {
	long := strings.Repeat("é", order.MaxReasonChars)
	tests := []struct {
		name     string
		given    []domain.Event
		reason   string
		then     []domain.Event
		code     domain.Code
		reasonIs string
		fields   []string
	}{
		{name: "pending, reason kept", given: []domain.Event{created}, reason: "found it cheaper",
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: "found it cheaper"}}},
		{name: "pending, reason trimmed", given: []domain.Event{created}, reason: "  found it cheaper \n",
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: "found it cheaper"}}},
		{name: "pending, no reason", given: []domain.Event{created}, reason: "",
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: "cancelled"}}},
		{name: "pending, blank reason", given: []domain.Event{created}, reason: " \t ",
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: "cancelled"}}},
		{name: "pending, reason at the limit", given: []domain.Event{created}, reason: long,
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: long}}},
		{name: "pending, reason at the limit once trimmed", given: []domain.Event{created}, reason: "  " + long + "  ",
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: long}}},
		{name: "pending, reason too long", given: []domain.Event{created}, reason: long + "x",
			code: domain.CodeInvalid, reasonIs: "validation_failed", fields: []string{"reason"}},
		{name: "paid, refund due", given: []domain.Event{created, paid}, reason: "late",
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: "late", Refunded: true}}},
		{name: "completed", given: []domain.Event{created, paid, completed},
			code: domain.CodeConflict, reasonIs: "order_not_cancellable"},
		{name: "reason too long on a completed order", given: []domain.Event{created, paid, completed}, reason: long + "x",
			code: domain.CodeInvalid, reasonIs: "validation_failed", fields: []string{"reason"}},
		{name: "a reason of several lines", given: []domain.Event{created}, reason: "too late\r\n\tsorry",
			then: []domain.Event{order.Cancelled{OrderID: "o1", Reason: "too late\r\n\tsorry"}}},
		// NUL goes into a PostgreSQL text column, which refuses it.
		{name: "a reason with NUL", given: []domain.Event{created}, reason: "a\x00b",
			code: domain.CodeInvalid, reasonIs: "validation_failed", fields: []string{"reason"}},
		{name: "a reason with a C1 control character", given: []domain.Event{created}, reason: "a\u0085b",
			code: domain.CodeInvalid, reasonIs: "validation_failed", fields: []string{"reason"}},
		{name: "a reason with DEL", given: []domain.Event{created}, reason: "a\x7fb",
			code: domain.CodeInvalid, reasonIs: "validation_failed", fields: []string{"reason"}},
		{name: "a reason that is not UTF-8", given: []domain.Event{created}, reason: "a\xffb",
			code: domain.CodeInvalid, reasonIs: "validation_failed", fields: []string{"reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := order.DecideCancel(order.Fold(given(tt.given...)), tt.reason)
			then(t, events, err, tt.then, tt.code, tt.reasonIs)
			if tt.fields != nil && fmt.Sprint(fields(err)) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v", fields(err), tt.fields)
			}
		})
	}
}

func TestVoidedCharges(t *testing.T) {
	voided := order.PaymentVoided{OrderID: "o1", ChargeID: "ch_x", Amount: 4148}
	if got := order.DecideVoidPayment(order.Fold(given(created)), "ch_x", 4148); len(got) != 1 || got[0] != voided {
		t.Fatalf("void of a pending order's stray charge = %v, want [%v]", got, voided)
	}
	if got := order.DecideVoidPayment(order.Fold(given(created, paid)), "pay_1", 4148); got != nil {
		t.Fatalf("void of the charge the order holds = %v, want nothing", got)
	}
	if got := order.DecideVoidPayment(order.New(), "ch_x", 4148); got != nil {
		t.Fatalf("void on no order = %v, want nothing", got)
	}
	s := order.Fold(given(created, voided))
	if got := order.DecideVoidPayment(s, "ch_x", 4148); got != nil {
		t.Fatalf("a charge voided twice: %v", got)
	}
	// A voided charge never becomes the order's payment.
	_, err := order.DecidePay(s, "ch_x", 4148, "4242", "")
	then(t, nil, err, nil, domain.CodeConflict, "payment_voided")
	if _, err := order.DecidePay(s, "ch_y", 4148, "4242", ""); err != nil {
		t.Fatalf("another charge after a void: %v", err)
	}
	// Its refund is recorded once, and is not the payment's refund.
	refund := order.Refunded{OrderID: "o1", ChargeID: "ch_x", RefundID: "re_x", Amount: 4148}
	if got := order.DecideRecordVoidRefund(s, "ch_x", "re_x"); len(got) != 1 || got[0] != refund {
		t.Fatalf("DecideRecordVoidRefund = %v, want [%v]", got, refund)
	}
	s = order.Fold(given(created, voided, paid, refund))
	if len(s.VoidsDue) != 0 || s.Payment.Refunded || s.Status != order.StatusPaid {
		t.Fatalf("after the void's refund: voids due %v, payment %+v, status %s", s.VoidsDue, s.Payment, s.Status)
	}
	if got := order.DecideRecordVoidRefund(s, "ch_x", "re_x2"); got != nil {
		t.Fatalf("a void's refund recorded twice: %v", got)
	}
}

func TestCancelledStateKeepsPaymentAndRefund(t *testing.T) {
	due := order.Fold(given(created, paid, refunded))
	if !due.RefundPending() || due.Payment.RefundID != "" || !due.Payment.Refunded {
		t.Fatalf("cancelled after payment: refund pending %v, payment %+v", due.RefundPending(), due.Payment)
	}
	if got := order.DecideRecordRefund(due, "re_1"); len(got) != 1 || got[0] != refundDone {
		t.Fatalf("DecideRecordRefund = %v, want [%v]", got, refundDone)
	}
	s := order.Fold(given(created, paid, refunded, refundDone))
	want := order.Payment{ID: "pay_1", Amount: 4148, Last4: "4242", Refunded: true, RefundID: "re_1"}
	if s.Payment == nil || *s.Payment != want || s.RefundPending() {
		t.Fatalf("payment %+v, want %+v", s.Payment, want)
	}
	if got := order.DecideRecordRefund(s, "re_2"); got != nil {
		t.Errorf("a recorded refund is recorded again: %v", got)
	}
	if got := order.DecideRecordRefund(order.Fold(given(created, paid)), "re_1"); got != nil {
		t.Errorf("refund recorded for a paid order: %v", got)
	}
	if s.CancelReason != "changed my mind" {
		t.Errorf("cancel reason %q", s.CancelReason)
	}

	pending := order.Fold(given(created, cancelled))
	if pending.Payment != nil {
		t.Errorf("a pending order cancelled has payment %+v", pending.Payment)
	}

	// Evolve does not change the payment of the state it was given.
	before := order.Fold(given(created, paid))
	_ = order.Evolve(before, domain.Recorded{Event: refunded, Version: 2, At: t0})
	if before.Payment.Refunded {
		t.Error("Evolve changed the payment of an earlier state")
	}
}

func TestFoldPlacedOrder(t *testing.T) {
	s := order.Fold(given(created, paid))
	if s.ID != "o1" || s.UserID != "u1" || s.Total != 4148 || !reflect.DeepEqual(s.Items, items) {
		t.Errorf("state %+v", s)
	}
	if !s.CreatedAt.Equal(t0) || !s.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("created %v updated %v", s.CreatedAt, s.UpdatedAt)
	}
	if s.Payment == nil || s.Payment.ID != "pay_1" || s.Payment.Amount != 4148 || s.Payment.Last4 != "4242" || s.Payment.Refunded {
		t.Errorf("payment %+v", s.Payment)
	}
	empty := order.Fold(nil)
	if empty.Version != -1 || empty.Exists() || !reflect.DeepEqual(empty, order.New()) {
		t.Errorf("empty fold %+v", empty)
	}
	if order.Stream("o1") != "order-o1" {
		t.Errorf("Stream = %q", order.Stream("o1"))
	}
}

func TestDecideExpire(t *testing.T) {
	const timeout = 15 * time.Minute
	due := []domain.Event{order.Cancelled{OrderID: "o1", Reason: order.ReasonPaymentTimeout}}
	tests := []struct {
		name  string
		given []domain.Event
		now   time.Time
		then  []domain.Event
	}{
		{"pending, just created", []domain.Event{created}, t0, nil},
		{"pending, a nanosecond before due", []domain.Event{created}, t0.Add(timeout - time.Nanosecond), nil},
		{"pending, exactly at the timeout", []domain.Event{created}, t0.Add(timeout), due},
		{"pending, long overdue", []domain.Event{created}, t0.Add(48 * time.Hour), due},
		{"pending, clock behind creation", []domain.Event{created}, t0.Add(-time.Hour), nil},
		{"paid, overdue", []domain.Event{created, paid}, t0.Add(time.Hour), nil},
		{"completed, overdue", []domain.Event{created, paid, completed}, t0.Add(time.Hour), nil},
		{"cancelled, overdue", []domain.Event{created, cancelled}, t0.Add(time.Hour), nil},
		{"already expired", []domain.Event{created, expired}, t0.Add(time.Hour), nil},
		{"no order", nil, t0.Add(time.Hour), nil},
		{"abandoned", []domain.Event{abandonedEv}, t0.Add(time.Hour), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := order.DecideExpire(order.Fold(given(tt.given...)), tt.now, timeout)
			then(t, events, nil, tt.then, "", "")
		})
	}
	// An expired order folds to cancelled, not refunded, and cannot be paid.
	s := order.Fold(given(created, due[0]))
	if s.Status != order.StatusCancelled || s.CancelReason != order.ReasonPaymentTimeout || s.Payment != nil {
		t.Errorf("expired state %+v", s)
	}
}

func TestDecidePlace(t *testing.T) {
	tests := []struct {
		name   string
		given  []domain.Event
		cmd    order.Place
		then   []domain.Event
		code   domain.Code
		reason string
		fields []string
	}{
		{
			name: "total is price times quantity summed, prices captured",
			cmd:  order.Place{OrderID: "o1", UserID: "u1", Items: items},
			then: []domain.Event{order.Created{OrderID: "o1", UserID: "u1", Items: items, Total: 2*1999 + 3*50}},
		},
		{
			name: "one line",
			cmd:  order.Place{OrderID: "o2", UserID: "u1", Items: []order.Item{{ProductID: "p1", SKU: "S", Name: "N", Quantity: 1, Price: 1}}},
			then: []domain.Event{order.Created{OrderID: "o2", UserID: "u1", Items: []order.Item{{ProductID: "p1", SKU: "S", Name: "N", Quantity: 1, Price: 1}}, Total: 1}},
		},
		{
			name: "a line of the largest price, once",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: priced(domain.MaxCents, 1)},
			then: []domain.Event{order.Created{OrderID: "o3", UserID: "u1", Items: priced(domain.MaxCents, 1), Total: domain.MaxCents}},
		},
		{
			name: "a line total at the bound",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: priced(domain.MaxCents/order.MaxLineUnits, order.MaxLineUnits)},
			then: []domain.Event{order.Created{OrderID: "o3", UserID: "u1", Items: priced(domain.MaxCents/order.MaxLineUnits, order.MaxLineUnits),
				Total: domain.MaxCents}},
		},
		{
			name: "a line total a cent over the bound",
			cmd: order.Place{OrderID: "o3", UserID: "u1", Items: []order.Item{
				{ProductID: "p1", Quantity: 1, Price: 1}, {ProductID: "p2", Quantity: 2, Price: domain.MaxCents/2 + 1},
			}},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items[1].quantity"},
		},
		{
			// Issue 12: 10,000 units at the largest price.
			name: "the largest price times the most units",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: priced(domain.MaxCents, order.MaxLineUnits)},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items[0].quantity"},
		},
		{
			name: "an order total at the bound",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: halves(0)},
			then: []domain.Event{order.Created{OrderID: "o3", UserID: "u1", Items: halves(0), Total: domain.MaxCents}},
		},
		{
			name: "an order total a cent over the bound",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: halves(1)},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items"},
		},
		{
			name: "the most lines, each at the largest price",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: maxItems(1)},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items"},
		},
		{
			name: "a free line",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: priced(0, 1)},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items[0].price"},
		},
		{
			name: "a captured name with a control character",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: []order.Item{{ProductID: "p1", SKU: "S", Name: "Mu\x00g", Quantity: 1, Price: 1}}},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items[0].name"},
		},
		{
			name: "too many lines",
			cmd:  order.Place{OrderID: "o3", UserID: "u1", Items: cents(order.MaxItems + 1)},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items"},
		},
		{
			name: "no items", cmd: order.Place{OrderID: "o1", UserID: "u1"},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items"},
		},
		{
			name: "bad line",
			cmd:  order.Place{OrderID: "o1", UserID: "u1", Items: []order.Item{{ProductID: "p1", Quantity: 0, Price: 100}}},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"items[0].quantity"},
		},
		{
			name: "no user",
			cmd:  order.Place{OrderID: "o1", Items: items},
			code: domain.CodeInvalid, reason: "validation_failed", fields: []string{"user_id"},
		},
		{
			name: "stream taken", given: []domain.Event{created},
			cmd:  order.Place{OrderID: "o1", UserID: "u1", Items: items},
			code: domain.CodeConflict, reason: "order_exists",
		},
		{
			name: "stream fenced", given: []domain.Event{abandonedEv},
			cmd:  order.Place{OrderID: "o1", UserID: "u1", Items: items},
			code: domain.CodeConflict, reason: "order_exists",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := order.DecidePlace(order.Fold(given(tt.given...)), tt.cmd)
			then(t, events, err, tt.then, tt.code, tt.reason)
			if tt.fields != nil && fmt.Sprint(fields(err)) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v", fields(err), tt.fields)
			}
		})
	}
}

// maxItems is MaxItems lines of quantity units at the largest price.
func maxItems(quantity int64) []order.Item {
	out := make([]order.Item, order.MaxItems)
	for i := range out {
		out[i] = order.Item{ProductID: fmt.Sprintf("p%d", i), Quantity: quantity, Price: domain.MaxCents}
	}
	return out
}

// cents is n lines of one unit at one cent.
func cents(n int) []order.Item {
	out := make([]order.Item, n)
	for i := range out {
		out[i] = order.Item{ProductID: fmt.Sprintf("p%d", i), Quantity: 1, Price: 1}
	}
	return out
}

// priced is one line of quantity units at price.
func priced(price domain.Cents, quantity int64) []order.Item {
	return []order.Item{{ProductID: "p1", SKU: "S", Name: "N", Quantity: quantity, Price: price}}
}

// halves is two lines of half the bound each, plus extra cents on the
// second: the order total is MaxCents + extra.
func halves(extra domain.Cents) []order.Item {
	return []order.Item{
		{ProductID: "p1", Quantity: 1, Price: domain.MaxCents / 2},
		{ProductID: "p2", Quantity: 1, Price: domain.MaxCents/2 + extra},
	}
}

func TestDecidePlaceCapturesItems(t *testing.T) {
	cmdItems := []order.Item{{ProductID: "p1", SKU: "MUG-1", Name: "Mug", Quantity: 1, Price: 1999}}
	events, err := order.DecidePlace(order.New(), order.Place{OrderID: "o1", UserID: "u1", Items: cmdItems})
	if err != nil {
		t.Fatal(err)
	}
	// The caller's slice may be reused; the event keeps what was decided.
	cmdItems[0].Price = 1
	if got := events[0].(order.Created).Items[0].Price; got != 1999 {
		t.Errorf("captured price changed with the command's slice: %d", got)
	}
	// Folding keeps the captured prices even if the event's slice changes.
	s := order.Fold(given(events...))
	events[0].(order.Created).Items[0].Price = 2
	if s.Items[0].Price != 1999 || s.Total != 1999 {
		t.Errorf("state items %+v total %d", s.Items, s.Total)
	}
}

func TestCheckLines(t *testing.T) {
	many := func(n int) []order.Line {
		out := make([]order.Line, n)
		for i := range out {
			out[i] = order.Line{ProductID: fmt.Sprintf("p%d", i), Quantity: 1}
		}
		return out
	}
	tests := []struct {
		name   string
		lines  []order.Line
		fields []string // nil: valid
	}{
		{"one line", []order.Line{{ProductID: "p1", Quantity: 1}}, nil},
		{"several lines", []order.Line{{ProductID: "p1", Quantity: 3}, {ProductID: "p2", Quantity: 1}}, nil},
		{"max items", many(order.MaxItems), nil},
		{"max units", []order.Line{{ProductID: "p1", Quantity: order.MaxLineUnits}}, nil},
		{"nil", nil, []string{"items"}},
		{"empty", []order.Line{}, []string{"items"}},
		{"too many items", many(order.MaxItems + 1), []string{"items"}},
		{"quantity 0", []order.Line{{ProductID: "p1", Quantity: 0}}, []string{"items[0].quantity"}},
		{"quantity negative", []order.Line{{ProductID: "p1", Quantity: -1}}, []string{"items[0].quantity"}},
		{"quantity over max", []order.Line{{ProductID: "p1", Quantity: order.MaxLineUnits + 1}}, []string{"items[0].quantity"}},
		{"duplicate product", []order.Line{{ProductID: "p1", Quantity: 1}, {ProductID: "p2", Quantity: 1}, {ProductID: "p1", Quantity: 2}},
			[]string{"items[2].product_id"}},
		{"empty product id", []order.Line{{ProductID: "", Quantity: 1}}, []string{"items[0].product_id"}},
		{"two empty product ids", []order.Line{{ProductID: "", Quantity: 1}, {ProductID: "", Quantity: 1}},
			[]string{"items[0].product_id", "items[1].product_id"}},
		{"every bad line is listed", []order.Line{
			{ProductID: "p1", Quantity: 1},
			{ProductID: "", Quantity: 0},
			{ProductID: "p1", Quantity: order.MaxLineUnits + 1},
		}, []string{"items[1].product_id", "items[1].quantity", "items[2].product_id", "items[2].quantity"}},
		{"too many items and a bad one", append(many(order.MaxItems), order.Line{ProductID: "p0", Quantity: 0}),
			[]string{"items", "items[100].product_id", "items[100].quantity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := order.CheckLines(tt.lines)
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("CheckLines = %v, want valid", err)
				}
				return
			}
			if !errors.Is(err, &domain.Error{Code: domain.CodeInvalid, Reason: "validation_failed"}) {
				t.Fatalf("CheckLines = %v, want validation_failed", err)
			}
			if got := fields(err); fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v", got, tt.fields)
			}
		})
	}
}

// CheckAmounts names the lines by their index in the client's order, which
// PlaceOrder checks before it sorts the lines and reserves stock.
func TestCheckAmounts(t *testing.T) {
	line := func(price domain.Cents, quantity int64) order.Item {
		return order.Item{ProductID: fmt.Sprintf("p%d-%d", price, quantity), Quantity: quantity, Price: price}
	}
	tests := []struct {
		name   string
		items  []order.Item
		fields []string // nil: within bounds
	}{
		{"one unit at the largest price", []order.Item{line(domain.MaxCents, 1)}, nil},
		{"lines summing to the bound", []order.Item{line(domain.MaxCents-1, 1), line(1, 1)}, nil},
		{"the most units at the price that fits", []order.Item{line(domain.MaxCents/order.MaxLineUnits, order.MaxLineUnits)}, nil},
		{"the second line over", []order.Item{line(1, 1), line(domain.MaxCents, 2)}, []string{"items[1].quantity"}},
		{"two lines over", []order.Item{line(domain.MaxCents, 2), line(1, 1), line(domain.MaxCents, 3)},
			[]string{"items[0].quantity", "items[2].quantity"}},
		{"the sum a cent over", []order.Item{line(domain.MaxCents, 1), line(1, 1)}, []string{"items"}},
		{"issue 12", []order.Item{line(domain.MaxCents, 10_000)}, []string{"items[0].quantity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := order.CheckAmounts(tt.items)
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("CheckAmounts = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, &domain.Error{Code: domain.CodeInvalid, Reason: "validation_failed"}) {
				t.Fatalf("CheckAmounts = %v, want validation_failed", err)
			}
			if got := fields(err); fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v", got, tt.fields)
			}
		})
	}
}
