package payment

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Field names used in CardError, as the client sent them.
const (
	FieldCardNumber = "payment_method.card_number"
	FieldExpMonth   = "payment_method.exp_month"
	FieldExpYear    = "payment_method.exp_year"
	FieldCVC        = "payment_method.cvc"
)

// maxYearsAhead bounds exp_year; providers reject expiries further out.
const maxYearsAhead = 50

// Card is what the client sends. It is never stored or logged: only Last4
// is kept. fmt (every verb, including %#v and %+v) and log/slog print a
// masked form such as "card ****4242". json.Marshal does not mask it, since
// Card is decoded from requests with these tags; never encode one.
type Card struct {
	Number   string `json:"card_number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
}

// String returns "card ****<last 4 digits>", or "card ****" when the number
// is too short or malformed to show even that.
func (c Card) String() string {
	return "card ****" + c.safeLast4()
}

// GoString returns a masked Go-syntax form for %#v.
func (c Card) GoString() string {
	return fmt.Sprintf("payment.Card{Number:%q, ExpMonth:%d, ExpYear:%d, CVC:\"***\"}",
		"****"+c.safeLast4(), c.ExpMonth, c.ExpYear)
}

// Format implements fmt.Formatter so that no verb (%d, %x, %q…) can reach
// the fields: %#v prints GoString, everything else String.
func (c Card) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, c.GoString())
		return
	}
	io.WriteString(f, c.String())
}

// LogValue implements slog.LogValuer: only the last four digits are logged.
func (c Card) LogValue() slog.Value {
	return slog.GroupValue(slog.String("last4", c.safeLast4()))
}

// safeLast4 returns the last four digits only for a plausible card number,
// so that a short or mistyped value is never printed in full.
func (c Card) safeLast4() string {
	n := normalise(c.Number)
	if len(n) < 12 || !allDigits(n) {
		return ""
	}
	return n[len(n)-4:]
}

// Last4 returns the last four characters of number after removing spaces
// and dashes (all of it when shorter).
func Last4(number string) string {
	n := normalise(number)
	if len(n) <= 4 {
		return n
	}
	return n[len(n)-4:]
}

// FieldError names one invalid field and why; Message never contains card
// digits.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// CardError lists every invalid field of a card (HTTP 422). Find it with
// errors.As.
type CardError struct {
	Fields []FieldError
}

// Error returns "payment: invalid card: <field> <message>; …".
func (e *CardError) Error() string {
	var b strings.Builder
	b.WriteString("payment: invalid card: ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + " " + f.Message)
	}
	return b.String()
}

// ValidateCard checks a card before any processor call: the number, with
// spaces and dashes removed, must be 12–19 digits passing the Luhn check;
// exp_month 1–12; exp_year a four-digit year at most 50 years ahead; the
// expiry not before now's month (a card is valid through its expiry month,
// judged in now's location); cvc 3–4 digits. It returns nil or a
// *CardError listing every bad field.
func ValidateCard(c Card, now time.Time) error {
	var e CardError
	add := func(field, msg string) { e.Fields = append(e.Fields, FieldError{Field: field, Message: msg}) }

	switch n := normalise(c.Number); {
	case n == "":
		add(FieldCardNumber, "is required")
	case !allDigits(n):
		add(FieldCardNumber, "must contain only digits")
	case len(n) < 12 || len(n) > 19:
		add(FieldCardNumber, "must have 12 to 19 digits")
	case !luhn(n):
		add(FieldCardNumber, "is not a valid card number")
	}

	monthOK := c.ExpMonth >= 1 && c.ExpMonth <= 12
	if !monthOK {
		add(FieldExpMonth, "must be between 1 and 12")
	}
	switch {
	case c.ExpYear < 1000 || c.ExpYear > 9999:
		add(FieldExpYear, "must be a four-digit year")
	case c.ExpYear < now.Year():
		add(FieldExpYear, "card has expired")
	case c.ExpYear > now.Year()+maxYearsAhead:
		add(FieldExpYear, "is too far in the future")
	case monthOK && c.ExpYear == now.Year() && time.Month(c.ExpMonth) < now.Month():
		add(FieldExpMonth, "card has expired")
	}

	if len(c.CVC) < 3 || len(c.CVC) > 4 || !allDigits(c.CVC) {
		add(FieldCVC, "must be 3 or 4 digits")
	}
	if len(e.Fields) > 0 {
		return &e
	}
	return nil
}

// normalise removes the spaces and dashes people type in card numbers.
func normalise(number string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, number)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// luhn reports whether a digit string passes the Luhn checksum.
func luhn(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
