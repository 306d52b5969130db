package commands_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
)

// pricedProduct lists a product of vendor v at price with qty units.
func (e *env) pricedProduct(t *testing.T, v commands.Actor, price domain.Cents, qty int64) product.State {
	t.Helper()
	p, _, err := e.h.Catalog.CreateProduct(context.Background(), v, commands.CreateProduct{
		SKU: "SKU-" + uuid.NewString()[:8], Name: "Gold", Price: price, Quantity: qty,
	})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	return p
}

// TestPlaceOrderOverTheMoneyBound: an order whose line total or total
// would exceed MaxCents at the products' prices is refused before any
// stock is held, naming the line by its index as the client sent it
// (PlaceOrder sorts the lines afterwards), and writes nothing (issue 12).
func TestPlaceOrderOverTheMoneyBound(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		v, c := vendor("vendor-1"), customer("cust-1")
		gold := e.pricedProduct(t, v, domain.MaxCents, 10_000)
		pen := e.pricedProduct(t, v, 1, 10)
		half := e.pricedProduct(t, v, domain.MaxCents/2, 10)
		halfAndACent := e.pricedProduct(t, v, domain.MaxCents/2+1, 10)

		// The over line is placed where sorting by product id moves it.
		lines, at := []order.Line{{ProductID: pen.ID, Quantity: 1}, {ProductID: gold.ID, Quantity: 10_000}}, "items[1].quantity"
		if pen.ID < gold.ID {
			lines, at = []order.Line{lines[1], lines[0]}, "items[0].quantity"
		}
		for _, tc := range []struct {
			name  string
			lines []order.Line
			field string
		}{
			{"a line total over the bound", lines, at},
			{"an order total a cent over the bound", []order.Line{{ProductID: half.ID, Quantity: 1}, {ProductID: halfAndACent.ID, Quantity: 1}}, "items"},
		} {
			_, _, err := e.h.Orders.PlaceOrder(ctx, c, tc.lines)
			de := domainErr(err)
			if !isReason(err, domain.CodeInvalid, "validation_failed") || len(de.Fields) != 1 || de.Fields[0].Field != tc.field {
				t.Errorf("%s: got %v, want validation_failed naming %s", tc.name, err, tc.field)
			}
		}
		for _, p := range []product.State{gold, pen, half, halfAndACent} {
			if got := e.product(t, p.ID); got.Version != 0 || got.Reserved != 0 {
				t.Errorf("a refused order touched product %s: %s", p.ID, describe(got))
			}
		}
		for _, ev := range readAll(t, s) {
			if ev.Type == "order.created" || ev.Type == "inventory.reserved" || ev.Type == "order.placement_abandoned" {
				t.Errorf("a refused order wrote %s: %s", ev.Type, ev.Data)
			}
		}
		// At the bound, it is an order.
		o := e.placeOrder(t, c, order.Line{ProductID: gold.ID, Quantity: 1})
		if o.Total != domain.MaxCents {
			t.Errorf("total %s, want %s", o.Total, domain.MaxCents)
		}
		o = e.placeOrder(t, c, order.Line{ProductID: half.ID, Quantity: 2})
		if o.Total != domain.MaxCents {
			t.Errorf("total %s, want %s", o.Total, domain.MaxCents)
		}
	})
}

// TestEncodeRefusesEventsOutOfBounds: the last guard. A system-written
// event out of bounds (here a release reason with NUL) is refused with
// CodeInvalid and nothing is appended.
func TestEncodeRefusesEventsOutOfBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, memory.New())
	p := e.newProduct(t, vendor("vendor-1"), 10)
	o := e.placeOrder(t, customer("cust-1"), order.Line{ProductID: p.ID, Quantity: 2})
	before := len(readStream(t, e.store, product.Stream(p.ID)))
	_, err := e.h.Orders.ReleaseStock(context.Background(), o.ID, []string{p.ID}, "reason\x00with NUL")
	if !isReason(err, domain.CodeInvalid, "validation_failed") {
		t.Fatalf("ReleaseStock = %v, want validation_failed", err)
	}
	if after := readStream(t, e.store, product.Stream(p.ID)); len(after) != before {
		t.Errorf("the refused release wrote %v", types(after[before:]))
	}
	if got := e.product(t, p.ID); got.Reserved != 2 {
		t.Errorf("stock after the refused release: %s", describe(got))
	}
}

// TestStreamUnreadable: an order stream holding an event that does not
// decode answers stream_unreadable, naming the stream and the event, to
// every command on it; other orders keep working, and so does the process
// manager, which passes over the event.
func TestStreamUnreadable(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s, func(c *commands.Config) { c.PaymentTimeout = time.Minute })
		c := customer("cust-1")
		p := e.newProduct(t, vendor("vendor-1"), 10)
		broken := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
		bad := uuid.Must(uuid.NewV7())
		if _, err := s.Append(ctx, order.Stream(broken.ID), eventstore.Exact(0), eventstore.EventData{
			ID: bad, Type: "order.paid", SchemaVersion: 1, Data: json.RawMessage(`{"order_id": 5}`),
			Metadata: eventstore.Metadata{Timestamp: e.clock.Now()},
		}); err != nil {
			t.Fatal(err)
		}
		runPM(t, e.h, 20*time.Millisecond)

		for name, run := range map[string]func() error{
			"order": func() error { _, _, err := e.h.Orders.Order(ctx, c, broken.ID); return err },
			"cancel": func() error {
				_, _, err := e.h.Orders.CancelOrder(ctx, c, broken.ID, commands.NoVersion, "")
				return err
			},
			"pay": func() error {
				_, _, err := e.h.Orders.PayOrder(ctx, c, broken.ID, commands.NoVersion, goodCard)
				return err
			},
			"complete": func() error {
				_, _, err := e.h.Orders.CompleteOrder(ctx, admin, broken.ID, commands.NoVersion)
				return err
			},
		} {
			err := run()
			de := domainErr(err)
			if !isReason(err, domain.CodeConflict, domain.ReasonStreamUnreadable) {
				t.Errorf("%s: got %v, want stream_unreadable", name, err)
				continue
			}
			if de.Extra["stream"] != order.Stream(broken.ID) || de.Extra["event_id"] != bad.String() {
				t.Errorf("%s: extra %v, want the stream and event %s", name, de.Extra, bad)
			}
		}
		if n := e.payments.Charges(); n != 0 {
			t.Errorf("%d cards charged for an unreadable order", n)
		}

		// Another order, placed after the unreadable event, is still
		// served, and the process manager still expires it.
		other := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
		e.clock.Advance(2 * time.Minute)
		waitFor(t, 10*time.Second, "the later order to expire", func() (bool, string) {
			o := e.order(t, other.ID)
			return o.Status == order.StatusCancelled, string(o.Status)
		})
	})
}
