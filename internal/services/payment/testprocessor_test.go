package payment_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

func validCard(number string) payment.Card {
	return payment.Card{Number: number, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: "123"}
}

func chargeReq(number, key string) payment.ChargeRequest {
	return payment.ChargeRequest{OrderID: "o1", AmountCents: 1999, Currency: "USD", Card: validCard(number), IdempotencyKey: key}
}

func TestTestProcessorCards(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		number, reason string // reason "" means success
	}{
		{payment.TestCardSuccess, ""},
		{"5555 5555 5555 4444", ""},
		{payment.TestCardDeclined, "card_declined"},
		{payment.TestCardInsufficientFunds, "insufficient_funds"},
	} {
		t.Run(c.number, func(t *testing.T) {
			eachProcessor(t, func(t *testing.T, p testProcessor) {
				ch, err := p.Charge(ctx, chargeReq(c.number, "k1"))
				if c.reason == "" {
					if err != nil {
						t.Fatalf("Charge: %v", err)
					}
					if !strings.HasPrefix(ch.ID, "ch_") || ch.AmountCents != 1999 || ch.Last4 != payment.Last4(c.number) {
						t.Errorf("charge = %+v", ch)
					}
					if p.Charges() != 1 {
						t.Errorf("Charges() = %d", p.Charges())
					}
					return
				}
				var de *payment.DeclinedError
				if !errors.Is(err, payment.ErrDeclined) || !errors.As(err, &de) || de.Reason != c.reason {
					t.Fatalf("Charge = %v, want decline %q", err, c.reason)
				}
				if p.Charges() != 0 {
					t.Errorf("Charges() = %d after a decline", p.Charges())
				}
				// A repeated key repeats the decline.
				if _, err := p.Charge(ctx, chargeReq(c.number, "k1")); !errors.As(err, &de) || de.Reason != c.reason {
					t.Errorf("repeat = %v", err)
				}
			})
		})
	}
}

func TestTestProcessorRejectsBadRequests(t *testing.T) {
	ctx := context.Background()
	eachProcessor(t, func(t *testing.T, p testProcessor) {
		expired := chargeReq(payment.TestCardSuccess, "k1")
		expired.Card.ExpYear = time.Now().Year() - 1
		var ce *payment.CardError
		if _, err := p.Charge(ctx, expired); !errors.As(err, &ce) {
			t.Errorf("expired card: %v, want *CardError", err)
		}
		for name, mutate := range map[string]func(*payment.ChargeRequest){
			"no key":      func(r *payment.ChargeRequest) { r.IdempotencyKey = "" },
			"zero amount": func(r *payment.ChargeRequest) { r.AmountCents = 0 },
			"no currency": func(r *payment.ChargeRequest) { r.Currency = "" },
		} {
			req := chargeReq(payment.TestCardSuccess, "k2")
			mutate(&req)
			if _, err := p.Charge(ctx, req); !errors.Is(err, payment.ErrInvalidRequest) {
				t.Errorf("%s: %v, want ErrInvalidRequest", name, err)
			}
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := p.Charge(cancelled, chargeReq(payment.TestCardSuccess, "k3")); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled ctx: %v", err)
		}
		if p.Charges() != 0 {
			t.Errorf("Charges() = %d", p.Charges())
		}
		// The key of a rejected card stays usable.
		if _, err := p.Charge(ctx, chargeReq(payment.TestCardSuccess, "k1")); err != nil {
			t.Errorf("retry after a rejected card: %v", err)
		}
	})
}

func TestTestProcessorChargeIsIdempotent(t *testing.T) {
	ctx := context.Background()
	eachProcessor(t, func(t *testing.T, p testProcessor) {
		first, err := p.Charge(ctx, chargeReq(payment.TestCardSuccess, "k1"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := p.Charge(ctx, chargeReq(payment.TestCardSuccess, "k1"))
		if err != nil || again != first {
			t.Errorf("repeat = %+v, %v; want %+v", again, err, first)
		}
		if p.Charges() != 1 {
			t.Errorf("Charges() = %d, want 1", p.Charges())
		}
		other := chargeReq(payment.TestCardSuccess, "k1")
		other.AmountCents++
		if _, err := p.Charge(ctx, other); !errors.Is(err, payment.ErrKeyReused) {
			t.Errorf("same key, other amount: %v, want ErrKeyReused", err)
		}
		if second, err := p.Charge(ctx, chargeReq(payment.TestCardSuccess, "k2")); err != nil || second.ID == first.ID {
			t.Errorf("new key = %+v, %v", second, err)
		}
		if p.Charges() != 2 {
			t.Errorf("Charges() = %d, want 2", p.Charges())
		}
	})
}

func TestTestProcessorRefunds(t *testing.T) {
	ctx := context.Background()
	eachProcessor(t, func(t *testing.T, p testProcessor) {
		ch, err := p.Charge(ctx, chargeReq(payment.TestCardSuccess, "c1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Refund(ctx, "ch_unknown", 100, "r0"); !errors.Is(err, payment.ErrUnknownCharge) {
			t.Errorf("unknown charge: %v", err)
		}
		if _, err := p.Refund(ctx, ch.ID, ch.AmountCents+1, "r0"); !errors.Is(err, payment.ErrRefundTooLarge) {
			t.Errorf("refund over the charge: %v", err)
		}
		if _, err := p.Refund(ctx, ch.ID, 0, "r0"); !errors.Is(err, payment.ErrInvalidRequest) {
			t.Errorf("zero refund: %v", err)
		}
		if _, err := p.Refund(ctx, ch.ID, 100, ""); !errors.Is(err, payment.ErrInvalidRequest) {
			t.Errorf("no key: %v", err)
		}

		r1, err := p.Refund(ctx, ch.ID, 999, "r1")
		if err != nil || !strings.HasPrefix(r1.ID, "re_") || r1.ChargeID != ch.ID || r1.AmountCents != 999 {
			t.Fatalf("partial refund = %+v, %v", r1, err)
		}
		if again, err := p.Refund(ctx, ch.ID, 999, "r1"); err != nil || again != r1 {
			t.Errorf("repeated refund = %+v, %v; want %+v", again, err, r1)
		}
		if _, err := p.Refund(ctx, ch.ID, 500, "r1"); !errors.Is(err, payment.ErrKeyReused) {
			t.Errorf("same key, other amount: %v", err)
		}
		// The repeat did not count: 1000 of 1999 is still left, and no more.
		if _, err := p.Refund(ctx, ch.ID, 1001, "r2"); !errors.Is(err, payment.ErrRefundTooLarge) {
			t.Errorf("refund over what is left: %v", err)
		}
		if _, err := p.Refund(ctx, ch.ID, 1000, "r2"); err != nil {
			t.Errorf("refund of the rest: %v", err)
		}
		if p.Refunds() != 2 {
			t.Errorf("Refunds() = %d, want 2", p.Refunds())
		}
	})
}

func TestTestProcessorConcurrentSameKey(t *testing.T) {
	const n = 32
	eachProcessor(t, func(t *testing.T, p testProcessor) {
		ids := make(chan string, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				<-start
				ch, err := p.Charge(context.Background(), chargeReq(payment.TestCardSuccess, "same"))
				if err != nil {
					t.Error(err)
				}
				ids <- ch.ID
			})
		}
		close(start)
		wg.Wait()
		close(ids)
		first := <-ids
		for id := range ids {
			if id != first {
				t.Errorf("charge ids differ: %s, %s", first, id)
			}
		}
		if p.Charges() != 1 {
			t.Errorf("Charges() = %d, want 1", p.Charges())
		}
	})
}

// testProcessor is what the tests need of a test processor.
type testProcessor interface {
	payment.Processor
	Charges() int
	Refunds() int
}

// eachProcessor runs fn on a new TestProcessor and on a new
// DurableTestProcessor over a database of its own.
func eachProcessor(t *testing.T, fn func(t *testing.T, p testProcessor)) {
	t.Run("memory", func(t *testing.T) { fn(t, payment.NewTestProcessor()) })
	t.Run("durable", func(t *testing.T) {
		p, err := payment.OpenDurableTestProcessor(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		fn(t, p)
	})
}

// TestChargesOf: an order's successful charges, oldest first; declines
// and other orders' charges are not listed.
func TestChargesOf(t *testing.T) {
	ctx := context.Background()
	eachProcessor(t, func(t *testing.T, p testProcessor) {
		first, err := p.Charge(ctx, chargeReq(payment.TestCardSuccess, "a"))
		if err != nil {
			t.Fatal(err)
		}
		p.Charge(ctx, chargeReq(payment.TestCardDeclined, "b"))
		second, err := p.Charge(ctx, chargeReq("5555555555554444", "c"))
		if err != nil {
			t.Fatal(err)
		}
		other := chargeReq(payment.TestCardSuccess, "d")
		other.OrderID = "o2"
		p.Charge(ctx, other)
		got, err := p.ChargesOf(ctx, "o1")
		if err != nil || len(got) != 2 || got[0] != first || got[1] != second {
			t.Errorf("ChargesOf(o1) = %+v, %v; want %+v then %+v", got, err, first, second)
		}
	})
}
