package commands_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// TestOversell: N concurrent orders against stock S never reserve more
// than S units, refuse only for insufficient stock, and, once every order
// is cancelled, completed or expired by the process manager, leave no
// reservation behind and exactly the completed units sold. It runs with
// the in-process per-aggregate lock and without it (the pure retry path).
func TestOversell(t *testing.T) {
	t.Parallel()
	all := stores(t)
	for _, name := range sortedKeys(all) {
		for _, ser := range []bool{true, false} {
			for _, random := range []bool{false, true} {
				qty := "one"
				if random {
					qty = "random"
				}
				t.Run(fmt.Sprintf("%s/serialize=%v/qty=%s", name, ser, qty), func(t *testing.T) {
					testOversell(t, all[name](t), ser, random)
				})
			}
		}
	}
}

func testOversell(t *testing.T, s eventstore.Store, ser, random bool) {
	const stock, n = 10, 40
	ctx := context.Background()
	e := newEnv(t, s, serialize(ser))
	p := e.newProduct(t, vendor("vendor-1"), stock)
	runPM(t, e.h, 20*time.Millisecond)

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	want := make([]int64, n)
	for i := range want {
		want[i] = 1
		if random {
			want[i] = 1 + rng.Int64N(3)
		}
	}
	t.Logf("quantities (seed %d): %v", seed, want)

	type result struct {
		o   order.State
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			o, _, err := e.h.Orders.PlaceOrder(ctx, customer("customer-"+strconv.Itoa(i)), []order.Line{{ProductID: p.ID, Quantity: want[i]}})
			results[i] = result{o, err}
		})
	}
	close(start)
	wg.Wait()

	var placed []int
	var units int64
	var refused []int64
	for i, r := range results {
		if r.err == nil {
			placed = append(placed, i)
			units += want[i]
			if r.o.Status != order.StatusPending || len(r.o.Items) != 1 || r.o.Items[0].Quantity != want[i] || r.o.Items[0].ProductID != p.ID {
				t.Errorf("order %d: got %+v, want pending with %d of %s", i, r.o, want[i], p.ID)
			}
			continue
		}
		de := domainErr(r.err)
		if !isReason(r.err, domain.CodeConflict, "insufficient_stock") || de == nil {
			t.Errorf("order %d (%d units): got %v, want CodeConflict insufficient_stock", i, want[i], r.err)
			continue
		}
		if de.Extra["product_id"] != p.ID {
			t.Errorf("order %d: refusal names product %v, want %s", i, de.Extra["product_id"], p.ID)
		}
		if avail := extraInt(t, de, "available"); avail >= want[i] {
			t.Errorf("order %d refused %d units while %d were available", i, want[i], avail)
		}
		refused = append(refused, want[i])
	}
	if units > stock {
		t.Fatalf("oversold: %d units reserved by %d orders against stock %d", units, len(placed), stock)
	}
	if !random && len(placed) != min(n, stock) {
		t.Errorf("%d orders placed, want exactly %d", len(placed), min(n, stock))
	}

	got := e.product(t, p.ID)
	if got.Reserved != units || got.Quantity != stock || got.Available() < 0 {
		t.Fatalf("after placing: %s; want reserved=%d quantity=%d", describe(got), units, stock)
	}
	if len(got.Reservations) != len(placed) {
		t.Errorf("product holds %d reservations, want %d", len(got.Reservations), len(placed))
	}
	for _, i := range placed {
		if q := got.Reservations[results[i].o.ID]; q != want[i] {
			t.Errorf("order %d holds %d units, want %d", i, q, want[i])
		}
	}
	// Stock only went down while orders were placed, so every refusal
	// asked for more than what is left now: nobody was refused stock
	// that was in fact free.
	for _, q := range refused {
		if q <= got.Available() {
			t.Errorf("an order of %d units was refused, yet %d units are still available", q, got.Available())
		}
	}

	// Settle: a quarter are cancelled, a quarter paid and completed, a
	// quarter paid only, the rest left to expire; cancellations, payments
	// and completions run concurrently.
	var completedUnits, pendingUnits, paidUnits int64
	final := map[string]order.Status{}
	reason := map[string]string{}
	var paidOnly []int
	for k, i := range placed {
		id, c := results[i].o.ID, customer("customer-"+strconv.Itoa(i))
		switch k % 4 {
		case 0:
			final[id], reason[id] = order.StatusCancelled, "changed_mind"
			wg.Go(func() {
				if _, _, err := e.h.Orders.CancelOrder(ctx, c, id, commands.NoVersion, "changed_mind"); err != nil {
					t.Errorf("cancel %s: %v", id, err)
				}
			})
		case 1:
			final[id] = order.StatusCompleted
			completedUnits += want[i]
			wg.Go(func() {
				if _, _, err := e.h.Orders.PayOrder(ctx, c, id, commands.NoVersion, goodCard); err != nil {
					t.Errorf("pay %s: %v", id, err)
					return
				}
				if _, _, err := e.h.Orders.CompleteOrder(ctx, admin, id, commands.NoVersion); err != nil {
					t.Errorf("complete %s: %v", id, err)
				}
			})
		case 2:
			final[id], reason[id] = order.StatusCancelled, "admin_cancelled"
			paidUnits += want[i]
			paidOnly = append(paidOnly, i)
			wg.Go(func() {
				if _, _, err := e.h.Orders.PayOrder(ctx, c, id, commands.NoVersion, goodCard); err != nil {
					t.Errorf("pay %s: %v", id, err)
				}
			})
		default:
			final[id], reason[id] = order.StatusCancelled, order.ReasonPaymentTimeout
			pendingUnits += want[i]
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	got = e.product(t, p.ID)
	if got.Reserved != pendingUnits+paidUnits || got.Quantity != stock-completedUnits {
		t.Fatalf("after cancelling, paying and completing: %s; want reserved=%d (live orders: %d pending, %d paid) quantity=%d",
			describe(got), pendingUnits+paidUnits, pendingUnits, paidUnits, stock-completedUnits)
	}

	// The unpaid expire; the paid do not.
	e.clock.Advance(2 * e.cfg.PaymentTimeout)
	waitFor(t, 10*time.Second, "pending orders to expire and release their stock", func() (bool, string) {
		got = e.product(t, p.ID)
		return got.Reserved == paidUnits, describe(got)
	})
	for _, i := range paidOnly {
		if o := e.order(t, results[i].o.ID); o.Status != order.StatusPaid {
			t.Errorf("paid order %s is %s (%q) after the payment timeout, want paid", o.ID, o.Status, o.CancelReason)
		}
	}
	// An admin cancels the paid ones: refunded, stock back.
	refunds := e.payments.Refunds()
	for _, i := range paidOnly {
		if _, _, err := e.h.Orders.CancelOrder(ctx, admin, results[i].o.ID, commands.NoVersion, "admin_cancelled"); err != nil {
			t.Errorf("admin cancels paid order: %v", err)
		}
	}
	if n := e.payments.Refunds() - refunds; n != len(paidOnly) {
		t.Errorf("%d refunds for %d cancelled paid orders", n, len(paidOnly))
	}
	got = e.product(t, p.ID)
	if got.Reserved != 0 || got.Quantity != stock-completedUnits || got.Available() < 0 || len(got.Reservations) != 0 {
		t.Errorf("settled: %s; want quantity=%d reserved=0", describe(got), stock-completedUnits)
	}
	for id, st := range final {
		o := e.order(t, id)
		if o.Status != st || (reason[id] != "" && o.CancelReason != reason[id]) {
			t.Errorf("order %s is %s (%q), want %s (%q)", id, o.Status, o.CancelReason, st, reason[id])
		}
	}
	checkInventoryLedger(t, s, p.ID, final)
}

// checkInventoryLedger checks the product's stream: each placed order
// reserved once and was released (cancelled) or deducted (completed)
// exactly once, and no other order touched the stock.
func checkInventoryLedger(t *testing.T, s eventstore.Store, productID string, final map[string]order.Status) {
	t.Helper()
	type count struct{ reserved, released, deducted int }
	seen := map[string]*count{}
	for _, ev := range readStream(t, s, product.Stream(productID)) {
		var d struct {
			OrderID string `json:"order_id"`
		}
		decodeData(t, ev, &d)
		if d.OrderID == "" {
			continue
		}
		c := seen[d.OrderID]
		if c == nil {
			c = &count{}
			seen[d.OrderID] = c
		}
		switch ev.Type {
		case "inventory.reserved":
			c.reserved++
		case "inventory.released":
			c.released++
		case "inventory.deducted":
			c.deducted++
		}
	}
	for id, c := range seen {
		st, ok := final[id]
		switch {
		case !ok:
			t.Errorf("order %s touched stock but was never placed: %+v", id, *c)
		case c.reserved != 1:
			t.Errorf("order %s reserved %d times", id, c.reserved)
		case st == order.StatusCompleted && (c.deducted != 1 || c.released != 0):
			t.Errorf("completed order %s: %+v, want one deduction", id, *c)
		case st == order.StatusCancelled && (c.released != 1 || c.deducted != 0):
			t.Errorf("cancelled order %s: %+v, want one release", id, *c)
		}
	}
	if len(seen) != len(final) {
		t.Errorf("%d orders touched stock, %d were placed", len(seen), len(final))
	}
}

// TestTwoProcessesShareStock: two handlers (two processes, each with its
// own cache and lock) over the same store take turns and race on one
// product; the caches never cause a lost update, a stale read or an
// oversell.
func TestTwoProcessesShareStock(t *testing.T) {
	t.Parallel()
	all := stores(t)
	for _, name := range sortedKeys(all) {
		t.Run(name, func(t *testing.T) {
			var s1, s2 eventstore.Store
			if name == "postgres" {
				url := pgtest.NewDatabase(t)
				s1, s2 = openPG(t, url), openPG(t, url)
			} else {
				s1 = all[name](t)
				s2 = s1
			}
			testTwoProcesses(t, s1, s2)
		})
	}
}

func testTwoProcesses(t *testing.T, s1, s2 eventstore.Store) {
	const stock = 10
	ctx := context.Background()
	e := newEnv(t, s1)
	h1 := e.h
	cfg := e.cfg
	cfg.Store = s2
	h2 := commands.New(cfg)
	hs := []commands.Handlers{h1, h2}
	v := vendor("vendor-1")

	p := e.newProduct(t, v, stock)
	for _, h := range hs { // warm both caches
		if _, _, err := h.Catalog.Product(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}

	// Turns: each handler's cache is one write behind every time.
	placed := 0
	var first order.State
	for i := range stock + 4 {
		h := hs[i%2]
		o, _, err := h.Orders.PlaceOrder(ctx, customer("c"+strconv.Itoa(i)), []order.Line{{ProductID: p.ID, Quantity: 1}})
		switch {
		case i < stock && err != nil:
			t.Fatalf("turn %d: %v", i, err)
		case i >= stock && !isReason(err, domain.CodeConflict, "insufficient_stock"):
			t.Fatalf("turn %d: got %v, want insufficient_stock", i, err)
		case err == nil:
			if placed == 0 {
				first = o
			}
			placed++
			if o.Items[0].Price != p.Price {
				t.Errorf("turn %d captured price %v, want %v", i, o.Items[0].Price, p.Price)
			}
		}
		fresh := e.product(t, p.ID)
		for j, hh := range hs {
			got, res, err := hh.Catalog.Product(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != fresh.Version || res.Version != fresh.Version || got.Reserved != fresh.Reserved || got.Reserved != int64(placed) {
				t.Fatalf("turn %d, handler %d: %s (result version %d); the stream says %s with %d placed",
					i, j+1, describe(got), res.Version, describe(fresh), placed)
			}
		}
	}

	// Both caches now say the product is sold out. Another process frees
	// a unit: a refusal decided on a stale cache must not stand.
	if _, _, err := h2.Orders.CancelOrder(ctx, customer("c0"), first.ID, commands.NoVersion, ""); err != nil {
		t.Fatal(err)
	}
	if got := e.product(t, p.ID); got.Reserved != stock-1 {
		t.Fatalf("after the cancellation: %s", describe(got))
	}
	if _, _, err := h1.Orders.PlaceOrder(ctx, customer("c-after"), []order.Line{{ProductID: p.ID, Quantity: 1}}); err != nil {
		t.Errorf("ordering the unit another process freed: %v", err)
	}
	if got := e.product(t, p.ID); got.Reserved != stock || got.Available() != 0 {
		t.Errorf("after re-ordering the freed unit: %s", describe(got))
	}

	// A price change through one handler is what the other captures
	// next, though its cache holds the old price.
	q := e.newProduct(t, v, stock)
	if _, _, err := h1.Catalog.Product(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	newPrice := domain.Cents(999)
	if _, _, err := h2.Catalog.UpdateProduct(ctx, v, q.ID, commands.NoVersion, product.Update{Price: &newPrice}); err != nil {
		t.Fatal(err)
	}
	o, _, err := h1.Orders.PlaceOrder(ctx, customer("c-price"), []order.Line{{ProductID: q.ID, Quantity: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if o.Items[0].Price != newPrice || o.Total != 2*newPrice {
		t.Errorf("order captured price %v total %v, want %v and %v", o.Items[0].Price, o.Total, newPrice, 2*newPrice)
	}
	// An If-Match update through h1 with the version h2 produced works;
	// with the version h1 cached before it fails.
	name := "Renamed"
	if _, _, err := h1.Catalog.UpdateProduct(ctx, v, q.ID, q.Version, product.Update{Name: &name}); !errors.Is(err, domain.ErrPreconditionFailed) {
		t.Errorf("update with the version before another process's write: got %v, want domain.ErrPreconditionFailed", err)
	}
	cur := e.product(t, q.ID)
	if _, _, err := h1.Catalog.UpdateProduct(ctx, v, q.ID, cur.Version, product.Update{Name: &name}); err != nil {
		t.Errorf("update with the current version: %v", err)
	}
	// h1's cache is current; h2 moves on; the client sends the version
	// h1 has cached, which is stale all the same.
	seen := e.product(t, q.ID).Version
	desc := "changed elsewhere"
	if _, _, err := h2.Catalog.UpdateProduct(ctx, v, q.ID, commands.NoVersion, product.Update{Description: &desc}); err != nil {
		t.Fatal(err)
	}
	before := len(readStream(t, s1, product.Stream(q.ID)))
	other := "Other"
	if _, _, err := h1.Catalog.UpdateProduct(ctx, v, q.ID, seen, product.Update{Name: &other}); !errors.Is(err, domain.ErrPreconditionFailed) {
		t.Errorf("update with the version the handler has cached, after another process wrote: got %v, want domain.ErrPreconditionFailed", err)
	}
	if after := len(readStream(t, s1, product.Stream(q.ID))); after != before {
		t.Errorf("the stale update wrote %d events", after-before)
	}
	// Discontinued by another process, while h1's cache has it on sale:
	// h1 refuses the order and holds nothing.
	if _, _, err := h1.Catalog.Product(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h2.Catalog.DiscontinueProduct(ctx, v, q.ID, commands.NoVersion); err != nil {
		t.Fatal(err)
	}
	held := e.product(t, q.ID).Reserved
	if _, _, err := h1.Orders.PlaceOrder(ctx, customer("c-gone"), []order.Line{{ProductID: q.ID, Quantity: 1}}); !isReason(err, domain.CodeInvalid, "product_unavailable") {
		t.Errorf("ordering a product another process discontinued: got %v, want product_unavailable", err)
	}
	if got := e.product(t, q.ID); got.Reserved != held {
		t.Errorf("the refused order holds the discontinued product: %s", describe(got))
	}

	// Orders too: h1 placed the order and caches it pending; h2 takes the
	// payment; h1's cancellation must see the payment and refund it.
	live := e.newProduct(t, v, stock)
	o2, _, err := h1.Orders.PlaceOrder(ctx, customer("c-pay"), []order.Line{{ProductID: live.ID, Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h2.Orders.PayOrder(ctx, customer("c-pay"), o2.ID, commands.NoVersion, goodCard); err != nil {
		t.Fatal(err)
	}
	refundsBefore := e.payments.Refunds()
	st, _, err := h1.Orders.CancelOrder(ctx, customer("c-pay"), o2.ID, commands.NoVersion, "")
	if err != nil {
		t.Fatalf("cancel through the process that cached the order pending: %v", err)
	}
	if got := e.order(t, o2.ID); got.Status != order.StatusCancelled || got.Payment == nil || !got.Payment.Refunded || e.payments.Refunds() != refundsBefore+1 {
		t.Errorf("cancelled a paid order through a stale cache: returned %+v, stored %s payment %+v, %d new refunds; want it refunded once",
			st.Payment, got.Status, got.Payment, e.payments.Refunds()-refundsBefore)
	}

	// Race: both handlers at once on a fresh product.
	r := e.newProduct(t, v, stock)
	var mu sync.Mutex
	var ok, refused int
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 40 {
		wg.Go(func() {
			<-start
			_, _, err := hs[i%2].Orders.PlaceOrder(ctx, customer("r"+strconv.Itoa(i)), []order.Line{{ProductID: r.ID, Quantity: 1}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case isReason(err, domain.CodeConflict, "insufficient_stock"):
				refused++
			default:
				t.Errorf("order %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	got := e.product(t, r.ID)
	if ok != stock || refused != 40-stock || got.Reserved != stock || got.Available() != 0 {
		t.Errorf("race: %d placed, %d refused, product %s; want %d placed, reserved=%d", ok, refused, describe(got), stock, stock)
	}
	for j, h := range hs {
		viaCache, _, err := h.Catalog.Product(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if viaCache.Version != got.Version || viaCache.Reserved != got.Reserved {
			t.Errorf("handler %d sees %s, the stream says %s", j+1, describe(viaCache), describe(got))
		}
	}
}

// TestAdjustmentsRaceOrders: stock taken away by the vendor while orders
// reserve it never leaves quantity below reserved, and nothing is refused
// while a unit is free.
func TestAdjustmentsRaceOrders(t *testing.T) {
	t.Parallel()
	all := stores(t)
	for _, name := range sortedKeys(all) {
		for _, ser := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/serialize=%v", name, ser), func(t *testing.T) {
				const stock = 20
				ctx := context.Background()
				e := newEnv(t, all[name](t), serialize(ser))
				v := vendor("vendor-1")
				p := e.newProduct(t, v, stock)
				var mu sync.Mutex
				var orders, adjusts, refused int
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range 2 * stock {
					wg.Go(func() {
						<-start
						var err error
						if i%2 == 0 {
							_, _, err = e.h.Orders.PlaceOrder(ctx, customer("c"+strconv.Itoa(i)), []order.Line{{ProductID: p.ID, Quantity: 1}})
						} else {
							_, _, err = e.h.Catalog.AdjustInventory(ctx, v, p.ID, commands.NoVersion, product.AdjustInventory{Adjustment: -1, Reason: "damaged"})
						}
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil && i%2 == 0:
							orders++
						case err == nil:
							adjusts++
						case isReason(err, domain.CodeConflict, "insufficient_stock") && i%2 == 0,
							isReason(err, domain.CodeConflict, "below_reserved") && i%2 == 1:
							refused++
						default:
							t.Errorf("contender %d: %v", i, err)
						}
					})
				}
				close(start)
				wg.Wait()
				got := e.product(t, p.ID)
				if got.Quantity != stock-int64(adjusts) || got.Reserved != int64(orders) || got.Available() < 0 {
					t.Errorf("%d orders and %d adjustments went through; product %s", orders, adjusts, describe(got))
				}
				if refused > 0 && got.Available() != 0 {
					t.Errorf("%d refused while %d units are still free: %s", refused, got.Available(), describe(got))
				}
			})
		}
	}
}

// TestOversellMultiProduct: concurrent orders for a plentiful and a scarce
// product; the refused ones give back what they reserved on the plentiful
// one before PlaceOrder returns.
func TestOversellMultiProduct(t *testing.T) {
	t.Parallel()
	all := stores(t)
	for _, name := range sortedKeys(all) {
		for _, ser := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/serialize=%v", name, ser), func(t *testing.T) {
				const scarce, n = 5, 24
				ctx := context.Background()
				s := all[name](t)
				e := newEnv(t, s, serialize(ser))
				v := vendor("vendor-1")
				a := e.newProduct(t, v, 1000)
				b := e.newProduct(t, v, scarce)
				ids := make([]string, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Go(func() {
						<-start
						o, _, err := e.h.Orders.PlaceOrder(ctx, customer("c"+strconv.Itoa(i)), []order.Line{{ProductID: a.ID, Quantity: 2}, {ProductID: b.ID, Quantity: 1}})
						ids[i], errs[i] = o.ID, err
					})
				}
				close(start)
				wg.Wait()
				final := map[string]order.Status{}
				for i, err := range errs {
					switch {
					case err == nil:
						final[ids[i]] = order.StatusPending
					case isReason(err, domain.CodeConflict, "insufficient_stock"):
						if de := domainErr(err); de.Extra["product_id"] != b.ID {
							t.Errorf("order %d refused naming %v, want the scarce product %s", i, de.Extra["product_id"], b.ID)
						}
					default:
						t.Errorf("order %d: %v", i, err)
					}
				}
				if len(final) != scarce {
					t.Errorf("%d orders placed, want %d", len(final), scarce)
				}
				ga, gb := e.product(t, a.ID), e.product(t, b.ID)
				if ga.Reserved != 2*int64(len(final)) || gb.Reserved != int64(len(final)) {
					t.Errorf("plentiful %s, scarce %s; want %d and %d reserved", describe(ga), describe(gb), 2*len(final), len(final))
				}
				for id := range ga.Reservations {
					if _, ok := final[id]; !ok {
						t.Errorf("refused placement %s still holds the plentiful product", id)
					}
				}
				orders := 0
				for _, ev := range readAll(t, s) {
					if ev.Type == "order.created" {
						orders++
					}
				}
				if orders != len(final) {
					t.Errorf("%d order.created events, %d orders placed", orders, len(final))
				}
			})
		}
	}
}
