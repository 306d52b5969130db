package payment_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/services/payment"
)

func TestValidateCard(t *testing.T) {
	now := time.Date(2026, time.May, 15, 12, 0, 0, 0, time.UTC)
	good := payment.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, CVC: "123"}
	with := func(f func(*payment.Card)) payment.Card { c := good; f(&c); return c }
	for _, c := range []struct {
		name string
		card payment.Card
		want []string // invalid fields, in order
	}{
		{"good card", good, nil},
		{"spaces and dashes", with(func(c *payment.Card) { c.Number = "4242 4242-4242 4242" }), nil},
		{"other network", with(func(c *payment.Card) { c.Number = "5555555555554444" }), nil},
		{"four-digit cvc", with(func(c *payment.Card) { c.CVC = "1234" }), nil},
		{"current month", with(func(c *payment.Card) { c.ExpMonth, c.ExpYear = 5, 2026 }), nil},
		{"bad luhn", with(func(c *payment.Card) { c.Number = "4242424242424241" }), []string{payment.FieldCardNumber}},
		{"letters", with(func(c *payment.Card) { c.Number = "4242abcd42424242" }), []string{payment.FieldCardNumber}},
		{"short", with(func(c *payment.Card) { c.Number = "42424242426" }), []string{payment.FieldCardNumber}},
		{"too long", with(func(c *payment.Card) { c.Number = strings.Repeat("0", 20) }), []string{payment.FieldCardNumber}},
		{"empty number", with(func(c *payment.Card) { c.Number = "" }), []string{payment.FieldCardNumber}},
		{"month 0", with(func(c *payment.Card) { c.ExpMonth = 0 }), []string{payment.FieldExpMonth}},
		{"month 13", with(func(c *payment.Card) { c.ExpMonth = 13 }), []string{payment.FieldExpMonth}},
		{"expired last year", with(func(c *payment.Card) { c.ExpYear = 2025 }), []string{payment.FieldExpYear}},
		{"expired last month", with(func(c *payment.Card) { c.ExpMonth, c.ExpYear = 4, 2026 }), []string{payment.FieldExpMonth}},
		{"two-digit year", with(func(c *payment.Card) { c.ExpYear = 30 }), []string{payment.FieldExpYear}},
		{"far future", with(func(c *payment.Card) { c.ExpYear = 2100 }), []string{payment.FieldExpYear}},
		{"cvc 2 digits", with(func(c *payment.Card) { c.CVC = "12" }), []string{payment.FieldCVC}},
		{"cvc 5 digits", with(func(c *payment.Card) { c.CVC = "12345" }), []string{payment.FieldCVC}},
		{"cvc letters", with(func(c *payment.Card) { c.CVC = "12a" }), []string{payment.FieldCVC}},
		{"everything wrong", payment.Card{Number: "1234", ExpMonth: 13, ExpYear: 2020, CVC: ""},
			[]string{payment.FieldCardNumber, payment.FieldExpMonth, payment.FieldExpYear, payment.FieldCVC}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := payment.ValidateCard(c.card, now)
			if c.want == nil {
				if err != nil {
					t.Fatalf("ValidateCard = %v, want nil", err)
				}
				return
			}
			var ce *payment.CardError
			if !errors.As(err, &ce) {
				t.Fatalf("ValidateCard = %v, want *CardError", err)
			}
			var got []string
			for _, f := range ce.Fields {
				got = append(got, f.Field)
				if f.Message == "" {
					t.Errorf("%s has no message", f.Field)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("fields = %v, want %v", got, c.want)
			}
			for _, secret := range []string{c.card.Number, payment.Last4(c.card.Number), c.card.CVC} {
				if len(secret) >= 3 && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains card data %q", err, secret)
				}
			}
		})
	}
}

func TestLast4(t *testing.T) {
	for in, want := range map[string]string{
		"4242424242424242": "4242", "4000 0000 0000 9995": "9995", "5555-5555-5555-4444": "4444", "12": "12",
	} {
		if got := payment.Last4(in); got != want {
			t.Errorf("Last4(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCardIsMaskedInOutput(t *testing.T) {
	const number, cvc = "4000000000009995", "987"
	card := payment.Card{Number: "4000 0000 0000 9995", ExpMonth: 12, ExpYear: 2030, CVC: cvc}
	req := payment.ChargeRequest{OrderID: "o1", AmountCents: 100, Currency: "USD", Card: card, IdempotencyKey: "k"}

	var out bytes.Buffer
	fmt.Fprintf(&out, "%v %+v %#v %s %d %x %q %v|", card, card, card, card, card, card, card, &card)
	fmt.Fprintf(&out, "%v %+v %#v %v|", req, req, req, []payment.Card{card})
	fmt.Fprint(&out, card, "|")
	fmt.Fprintln(&out, card)

	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	for _, h := range []slog.Handler{
		slog.NewJSONHandler(&out, &slog.HandlerOptions{ReplaceAttr: noTime}),
		slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: noTime}),
	} {
		log := slog.New(h)
		log.Info("pay", "card", card, "req", req, slog.Any("card_ptr", &card))
		log.Info("pay", slog.Group("g", "card", card))
	}

	s := out.String()
	for _, secret := range []string{number, card.Number, cvc} {
		if strings.Contains(s, secret) {
			t.Errorf("output contains %q:\n%s", secret, s)
		}
	}
	if !strings.Contains(s, "card ****9995") || !strings.Contains(s, `"last4":"9995"`) {
		t.Errorf("masked form missing:\n%s", s)
	}
}
