package product_test

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
)

// TestStockInvariants runs a long random sequence of reserve, release,
// deduct and adjust commands for random orders against one product,
// folding as it goes, and checks after every step that available stock
// never goes below zero, reserved is the sum of the reservations, and
// every decision matches a plain model of the stock rules.
func TestStockInvariants(t *testing.T) {
	const (
		steps         = 5000
		discontinueAt = 4200 // the last steps run on a discontinued product
		orders        = 25
	)
	rng := rand.New(rand.NewSource(20260301))

	var history []domain.Recorded
	s := product.New()
	record := func(events []domain.Event) {
		for _, e := range events {
			r := domain.Recorded{Event: e, Version: int64(len(history)), At: t0}
			history = append(history, r)
			s = product.Evolve(s, r)
		}
	}
	record([]domain.Event{product.Created{ProductID: "p1", SKU: "S-1", Name: "N", Price: 100, VendorID: "v1", Quantity: 20, Warehouse: "main"}})

	// The model of the rules, kept apart from the aggregate.
	quantity, holds, off := int64(20), map[string]int64{}, false
	reserved := func() int64 {
		var n int64
		for _, q := range holds {
			n += q
		}
		return n
	}
	counts := map[string]int{}
	isErr := func(err error, code domain.Code, reason string) bool {
		return errors.Is(err, &domain.Error{Code: code, Reason: reason})
	}

	for step := 0; step < steps; step++ {
		if step == discontinueAt {
			events, err := product.DecideDiscontinue(s)
			if err != nil {
				t.Fatal(err)
			}
			record(events)
			off = true
		}
		order := fmt.Sprintf("o%d", rng.Intn(orders))
		var (
			events  []domain.Event
			err     error
			outcome string
			want    string
		)
		switch op := rng.Intn(10); {
		case op < 4:
			q := rng.Int63n(10) // 0 is invalid on purpose
			events, err = product.DecideReserve(s, order, q)
			_, held := holds[order]
			switch {
			case off:
				want = "unavailable"
			case held:
				want = "reserve no-op"
			case q < 1:
				want = "invalid quantity"
			case quantity-reserved() < q:
				want = "insufficient"
			default:
				want = "reserved"
				holds[order] = q
			}
			switch {
			case isErr(err, domain.CodeInvalid, "product_unavailable"):
				outcome = "unavailable"
			case isErr(err, domain.CodeInvalid, "validation_failed"):
				outcome = "invalid quantity"
			case isErr(err, domain.CodeConflict, "insufficient_stock"):
				outcome = "insufficient"
				var de *domain.Error
				errors.As(err, &de)
				if de.Extra["available"] != quantity-reserved() || de.Extra["requested"] != q {
					t.Fatalf("step %d: insufficient_stock extra %v, model available %d", step, de.Extra, quantity-reserved())
				}
			case err == nil && len(events) == 0:
				outcome = "reserve no-op"
			case err == nil && reflect.DeepEqual(events, []domain.Event{product.Reserved{ProductID: "p1", OrderID: order, Quantity: q}}):
				outcome = "reserved"
			}
		case op < 6:
			events = product.DecideRelease(s, order, "test")
			if q, held := holds[order]; held {
				want = "released"
				if reflect.DeepEqual(events, []domain.Event{product.Released{ProductID: "p1", OrderID: order, Quantity: q, Reason: "test"}}) {
					outcome = want
				}
				delete(holds, order)
			} else if want = "release no-op"; len(events) == 0 {
				outcome = want
			}
		case op < 8:
			events = product.DecideDeduct(s, order)
			if q, held := holds[order]; held {
				want = "deducted"
				if reflect.DeepEqual(events, []domain.Event{product.Deducted{ProductID: "p1", OrderID: order, Quantity: q}}) {
					outcome = want
				}
				delete(holds, order)
				quantity -= q
			} else if want = "deduct no-op"; len(events) == 0 {
				outcome = want
			}
		default:
			a := rng.Int63n(31) - 15
			events, err = product.DecideAdjustInventory(s, product.AdjustInventory{Adjustment: a, Reason: "recount"})
			switch {
			case off:
				want = "adjust discontinued"
			case a == 0:
				want = "invalid adjustment"
			case quantity+a < reserved():
				want = "below reserved"
			default:
				want = "adjusted"
				quantity += a
			}
			switch {
			case isErr(err, domain.CodeConflict, "product_discontinued"):
				outcome = "adjust discontinued"
			case isErr(err, domain.CodeInvalid, "validation_failed"):
				outcome = "invalid adjustment"
			case isErr(err, domain.CodeConflict, "below_reserved"):
				outcome = "below reserved"
			case err == nil && len(events) == 1 && events[0].(product.InventoryUpdated).Quantity == quantity:
				outcome = "adjusted"
			}
		}
		if outcome != want {
			t.Fatalf("step %d (%s): decided %q (%v, %#v), the model says %q", step, order, outcome, err, events, want)
		}
		counts[outcome]++
		record(events)

		if s.Available() < 0 || s.Quantity < 0 || s.Reserved < 0 {
			t.Fatalf("step %d: quantity %d reserved %d available %d", step, s.Quantity, s.Reserved, s.Available())
		}
		var sum int64
		for o, q := range s.Reservations {
			if q < 1 {
				t.Fatalf("step %d: order %s holds %d", step, o, q)
			}
			sum += q
		}
		if sum != s.Reserved {
			t.Fatalf("step %d: reserved %d, reservations sum to %d", step, s.Reserved, sum)
		}
		if s.Quantity != quantity || s.Reserved != reserved() || len(s.Reservations) != len(holds) {
			t.Fatalf("step %d: state quantity %d reserved %d (%d holds), model %d %d (%d holds)",
				step, s.Quantity, s.Reserved, len(s.Reservations), quantity, reserved(), len(holds))
		}
	}

	// Folding the whole history from scratch gives the state built step
	// by step.
	if again := product.Fold(history); !reflect.DeepEqual(again, s) {
		t.Errorf("fold of %d events differs from the incremental state:\n%+v\n%+v", len(history), again, s)
	}
	for _, kind := range []string{"reserved", "reserve no-op", "invalid quantity", "insufficient", "unavailable",
		"released", "release no-op", "deducted", "deduct no-op",
		"adjusted", "invalid adjustment", "below reserved", "adjust discontinued"} {
		if counts[kind] == 0 {
			t.Errorf("the random run never hit %q; change the seed or the mix: %v", kind, counts)
		}
	}
	t.Logf("%d events; outcomes %v", len(history), counts)
}
