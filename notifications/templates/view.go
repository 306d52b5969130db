package templates

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/published"
)

// view is what every template renders: the fields of one event, with
// amounts already formatted. Fields an event does not have stay empty.
type view struct {
	Shop    string
	BaseURL string
	To      Recipient
	Subject string // rendered from the text template, for the HTML title

	OrderID  string
	OrderRef string // the short form, for subjects and headings

	Items []item // order.created
	Total string

	Amount    string // order.paid
	PaymentID string
	Last4     string

	Why      string // order.cancelled: the reason in words, after "cancelled"
	Given    string // or the reason as someone typed it
	Refunded bool
}

type item struct {
	Name, SKU, Price, LineTotal string
	Quantity                    int64
}

// view decodes env's data into its domain event and builds the view.
// Errors: ErrInvalidData.
func (r *Renderer) view(env published.Envelope, to Recipient) (view, error) {
	v := view{Shop: r.opts.ShopName, BaseURL: r.opts.BaseURL, To: to}
	switch env.Type {
	case user.Registered{}.EventType():
		var e user.Registered
		if err := decode(env.Data, &e); err != nil {
			return view{}, err
		}
		if e.UserID == "" {
			return view{}, fmt.Errorf("%w: no user_id", ErrInvalidData)
		}
		if v.To.Name == "" {
			v.To.Name = e.FullName
		}
	case order.Created{}.EventType():
		var e order.Created
		if err := decodeOrder(env.Data, &e, &e.OrderID); err != nil {
			return view{}, err
		}
		for _, it := range e.Items {
			v.Items = append(v.Items, item{Name: it.Name, SKU: it.SKU, Quantity: it.Quantity,
				Price: r.money(it.Price.String()), LineTotal: r.money(lineTotal(it))})
		}
		v.OrderID, v.Total = e.OrderID, r.money(e.Total.String())
	case order.Paid{}.EventType():
		var e order.Paid
		if err := decodeOrder(env.Data, &e, &e.OrderID); err != nil {
			return view{}, err
		}
		v.OrderID, v.Amount, v.PaymentID, v.Last4 = e.OrderID, r.money(e.Amount.String()), e.PaymentID, e.Last4
	case order.Completed{}.EventType():
		var e order.Completed
		if err := decodeOrder(env.Data, &e, &e.OrderID); err != nil {
			return view{}, err
		}
		v.OrderID = e.OrderID
	case order.Cancelled{}.EventType():
		var e order.Cancelled
		if err := decodeOrder(env.Data, &e, &e.OrderID); err != nil {
			return view{}, err
		}
		v.OrderID, v.Refunded = e.OrderID, e.Refunded
		v.Why, v.Given = reasonInWords(e.Reason)
	}
	v.OrderRef = shortRef(v.OrderID)
	return v, nil
}

// decode reads data leniently: encoding/json ignores unknown fields,
// which is what a consumer of a growing contract wants. Errors:
// ErrInvalidData.
func decode(data json.RawMessage, into any) error {
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidData, err)
	}
	return nil
}

// decodeOrder decodes an order event and requires its order id: "null"
// and "{}" decode without error but say nothing a mail could be about.
// Errors: ErrInvalidData.
func decodeOrder(data json.RawMessage, into any, orderID *string) error {
	if err := decode(data, into); err != nil {
		return err
	}
	if *orderID == "" {
		return fmt.Errorf("%w: no order_id", ErrInvalidData)
	}
	return nil
}

// lineTotal is price × quantity, formatted. It is computed exactly,
// whatever the stored event holds: the bounds are the writer's business,
// and a line written before they existed (or beyond int64) still renders.
func lineTotal(it order.Item) string {
	return domain.FormatCents(new(big.Int).Mul(big.NewInt(int64(it.Price)), big.NewInt(it.Quantity)))
}

// money puts the configured currency symbol in an amount formatted as
// domain.Cents formats it, the sign first: "-€1.50".
func (r *Renderer) money(amount string) string {
	if rest, neg := strings.CutPrefix(amount, "-"); neg {
		return "-" + r.opts.Currency + rest
	}
	return r.opts.Currency + amount
}

// shortRef is the short form of an order id, "#" and its last 8
// alphanumerics. Order ids are UUIDv7s, whose leading digits are a
// timestamp shared by every order of the same minute; the trailing ones
// are random.
func shortRef(id string) string {
	if id == "" {
		return ""
	}
	s := strings.Map(func(r rune) rune {
		if (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, id)
	if len(s) > 8 {
		s = s[len(s)-8:]
	}
	if s == "" {
		return "#" + id // nothing alphanumeric: show it whole rather than nothing
	}
	return "#" + strings.ToUpper(s)
}

// reasonInWords says why an order was cancelled: the reason codes the
// system writes become words to follow "has been cancelled"; anything
// else was typed by a customer or an admin and is returned as given.
func reasonInWords(reason string) (why, given string) {
	switch reason {
	case order.ReasonPaymentTimeout:
		return "because it was not paid in time", ""
	case "", "cancelled": // DecideCancel's reason when none was given
		return "on request", ""
	}
	return "", reason
}
