package commands_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/projections"
)

// failureList is the process manager's failure list in a database of the
// test's own.
func failureList(t *testing.T) projections.Failures {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return projections.Failures{Pool: pool, Worker: "saga.orders"}
}

// failuresByKey lists the failures, by key.
func failuresByKey(t *testing.T, l projections.Failures) map[string]projections.Failure {
	t.Helper()
	list, _, err := l.List(context.Background(), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]projections.Failure{}
	for _, f := range list {
		out[f.Key] = f
	}
	return out
}

// TestProcessManagerIsolatesAnOrder: an order whose stream holds an event
// the process manager cannot read, and whose actions therefore fail, is
// listed with its errors, durably, while every other order is still
// expired, refunded and released; an order whose action fails for a while
// leaves the list once the action succeeds.
func TestProcessManagerIsolatesAnOrder(t *testing.T) {
	ctx := context.Background()
	tp := payment.NewTestProcessor()
	e := newEnv(t, memory.New(), func(c *commands.Config) {
		c.PaymentTimeout = time.Minute
		c.Payments = &flakyRefunds{TestProcessor: tp, n: 3}
	})
	e.payments = tp
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 20)
	poisoned := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
	healthy := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
	refunded := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 3})
	if _, _, err := e.h.Orders.PayOrder(ctx, c, refunded.ID, commands.NoVersion, goodCard); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Orders.CancelOrder(ctx, c, refunded.ID, commands.NoVersion, ""); err != nil {
		t.Logf("cancel while refunds fail: %v", err)
	}
	// An event no build of this code wrote: order_id is no string.
	bad := eventstore.EventData{Type: order.Paid{}.EventType(), Data: json.RawMessage(`{"order_id":5}`)}
	if _, err := e.store.Append(ctx, order.Stream(poisoned.ID), eventstore.Exact(0), bad); err != nil {
		t.Fatal(err)
	}

	failures := failureList(t)
	runPMWith(t, e.h, 20*time.Millisecond, failures)
	e.clock.Advance(time.Minute)
	waitFor(t, 10*time.Second, "the healthy order expired and its stock released", func() (bool, string) {
		o, got := e.order(t, healthy.ID), e.product(t, p.ID)
		_, held := got.Reservations[healthy.ID]
		return o.Status == order.StatusCancelled && !held, string(o.Status) + " " + describe(got)
	})
	waitFor(t, 10*time.Second, "the cancelled order refunded once refunds work again", func() (bool, string) {
		e.clock.Advance(time.Second) // retries are due a few ticks later
		got := e.order(t, refunded.ID)
		return got.Payment.RefundID != "", fmt.Sprintf("payment %+v", got.Payment)
	})
	waitFor(t, 10*time.Second, "the poisoned order listed, the refunded one not", func() (bool, string) {
		e.clock.Advance(time.Second)
		list := failuresByKey(t, failures)
		f, ok := list[poisoned.ID]
		_, stale := list[refunded.ID]
		return ok && f.Attempts >= 2 && !stale, fmt.Sprintf("%+v", list)
	})
	f := failuresByKey(t, failures)[poisoned.ID]
	if f.StreamID != order.Stream(poisoned.ID) || f.Error == "" || f.FirstSeen.IsZero() || f.LastSeen.Before(f.FirstSeen) {
		t.Fatalf("failure of the poisoned order: %+v", f)
	}
	if len(failuresByKey(t, failures)) != 1 {
		t.Fatalf("failures %+v, want the poisoned order only", failuresByKey(t, failures))
	}
	if !strings.Contains(f.Action, "order") && f.Action != "read event" {
		t.Fatalf("failure action %q", f.Action)
	}

	// A process manager starting anew (another process taking over)
	// knows the list: the entry stays, and would go once the order
	// recovers.
	keys, err := failures.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0] != poisoned.ID {
		t.Fatalf("keys %v, %v", keys, err)
	}
}
