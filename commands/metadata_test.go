package commands_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/correlation"
)

// TestEventMetadata: every event a command writes carries the request's
// correlation id, causation id and actor id, the handler's clock, and a
// fresh UUIDv7 event id.
func TestEventMetadata(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		e := newEnv(t, s)
		v, c := vendor("vendor-7"), customer("cust-7")
		type step struct {
			ids correlation.IDs
			run func(ctx context.Context) error
		}
		var steps []step
		var productID, orderID string
		steps = append(steps,
			step{correlation.IDs{Correlation: "corr-create", Causation: "req-create", Actor: v.ID}, func(ctx context.Context) error {
				p, _, err := e.h.Catalog.CreateProduct(ctx, v, commands.CreateProduct{SKU: "META-1", Name: "Meta", Price: 500, Quantity: 5})
				productID = p.ID
				return err
			}},
			step{correlation.IDs{Correlation: "corr-order", Causation: "req-order", Actor: c.ID}, func(ctx context.Context) error {
				o, _, err := e.h.Orders.PlaceOrder(ctx, c, []order.Line{{ProductID: productID, Quantity: 2}})
				orderID = o.ID
				return err
			}},
			step{correlation.IDs{Correlation: "corr-pay", Causation: "req-pay", Actor: c.ID}, func(ctx context.Context) error {
				_, _, err := e.h.Orders.PayOrder(ctx, c, orderID, commands.NoVersion, goodCard)
				return err
			}},
			step{correlation.IDs{Correlation: "corr-complete", Causation: "req-complete", Actor: admin.ID}, func(ctx context.Context) error {
				_, _, err := e.h.Orders.CompleteOrder(ctx, admin, orderID, commands.NoVersion)
				return err
			}},
		)

		seen := map[string]bool{}
		var from eventstore.Position
		for i, st := range steps {
			e.clock.Advance(time.Minute)
			ctx := correlation.With(context.Background(), st.ids)
			if err := st.run(ctx); err != nil {
				t.Fatalf("step %s: %v", st.ids.Correlation, err)
			}
			var evs []eventstore.Event
			evs, from = readAllSince(t, s, from)
			if len(evs) == 0 {
				t.Fatalf("step %s wrote nothing", st.ids.Correlation)
			}
			for _, ev := range evs {
				m := ev.Metadata
				if m.CorrelationID != st.ids.Correlation || m.CausationID != st.ids.Causation || m.ActorID != st.ids.Actor {
					t.Errorf("step %d, %s in %s: metadata %+v, want correlation %q causation %q actor %q",
						i, ev.Type, ev.StreamID, m, st.ids.Correlation, st.ids.Causation, st.ids.Actor)
				}
				if !m.Timestamp.Equal(e.clock.Now()) {
					t.Errorf("%s: timestamp %v, want the handler's clock %v", ev.Type, m.Timestamp, e.clock.Now())
				}
				if ev.ID.Version() != 7 {
					t.Errorf("%s: event id %s is UUID version %d, want 7", ev.Type, ev.ID, ev.ID.Version())
				}
				if seen[ev.ID.String()] {
					t.Errorf("event id %s used twice", ev.ID)
				}
				seen[ev.ID.String()] = true
				if ev.SchemaVersion != 1 {
					t.Errorf("%s: schema version %d, want 1", ev.Type, ev.SchemaVersion)
				}
			}
			t.Logf("step %s wrote %v", st.ids.Correlation, types(evs))
		}

		// The process manager acts for the order it finishes: its events
		// carry the order's correlation id, the order.created event as
		// their cause, and the system as actor.
		ctx := correlation.With(context.Background(), correlation.IDs{Correlation: "corr-late", Causation: "req-late", Actor: c.ID})
		late, _, err := e.h.Orders.PlaceOrder(ctx, c, []order.Line{{ProductID: productID, Quantity: 1}})
		if err != nil {
			t.Fatal(err)
		}
		created := readStream(t, s, order.Stream(late.ID))[0]
		runPM(t, e.h, 20*time.Millisecond)
		e.clock.Advance(2 * e.cfg.PaymentTimeout)
		waitFor(t, 10*time.Second, "the late order to expire", func() (bool, string) {
			o := e.order(t, late.ID)
			return o.Status == order.StatusCancelled, string(o.Status)
		})
		waitFor(t, 10*time.Second, "its stock to be released", func() (bool, string) {
			p := e.product(t, productID)
			return p.Reserved == 0, describe(p)
		})
		evs, _ := readAllSince(t, s, from)
		var byPM []string
		for _, ev := range evs {
			if ev.Metadata.CorrelationID == "corr-late" && ev.Metadata.CausationID == "req-late" {
				continue // the placement itself
			}
			byPM = append(byPM, ev.Type)
			if m := ev.Metadata; m.CorrelationID != "corr-late" || m.CausationID != created.ID.String() || m.ActorID != "system" {
				t.Errorf("%s by the process manager: metadata %+v, want correlation corr-late, causation %s, actor system", ev.Type, m, created.ID)
			}
		}
		if len(byPM) != 2 {
			t.Errorf("the process manager wrote %v, want order.cancelled and inventory.released", byPM)
		}
	})
}
