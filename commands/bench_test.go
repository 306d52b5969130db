package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/testsupport/benchutil"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// Like the event store's own benchmarks, each case alternates rounds of
// PlaceOrder with rounds of the raw baseline (single-event appends with
// NoStream to fresh streams, at the same concurrency), so drift of the
// shared machine hits both alike. Timing is only reported, never judged.

const (
	benchRounds        = 10
	benchPoolSize      = 2000 // products the distinct-product orders draw from
	benchOversellStock = 50   // stock of the bounded oversell check
)

var (
	benchCustomer = commands.Actor{ID: uuid.NewString(), Roles: []string{user.RoleCustomer}}
	benchVendor   = commands.Actor{ID: uuid.NewString(), Roles: []string{user.RoleVendor}}
)

type benchCase struct {
	name      string
	hot       bool // every order on one product, else 2 distinct of benchPoolSize
	serialize bool // commands.Config.Serialize; off means retry with jitter
	saga      bool // placed by the saga (three appends), not one atomic append
	conc      int
}

// BenchmarkPlaceOrder reports orders/s and p50/p99 latency of PlaceOrder
// on the PostgreSQL store, for 2-item orders on distinct products (placed
// by one atomic append, and by the saga that stores without it run) and
// for 1-item orders all on one hot product (with per-aggregate
// serialisation on, and off so conflicts are retried with jitter), next to
// the raw append rate of the same store at the same concurrency. It fails only
// when stock is oversold or the books do not balance.
func BenchmarkPlaceOrder(b *testing.B) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	b.Cleanup(func() { benchPrintSummary(os.Stdout) })
	counted := &benchCountingStore{Store: store}
	handlers := map[bool]commands.Handlers{true: benchHandler(counted, true), false: benchHandler(counted, false)}
	saga := benchHandler(benchSagaStore{counted}, true)
	var (
		poolOnce sync.Once
		pool     *benchProductPool
		checked  = map[string]bool{}
	)
	var cases []benchCase
	for _, c := range []int{1, 8, 32} {
		cases = append(cases, benchCase{name: fmt.Sprintf("distinct/c%d", c), serialize: true, conc: c})
	}
	for _, c := range []int{1, 32} {
		cases = append(cases, benchCase{name: fmt.Sprintf("distinct-saga/c%d", c), serialize: true, saga: true, conc: c})
	}
	for _, c := range []int{1, 8, 32} {
		cases = append(cases, benchCase{name: fmt.Sprintf("hot/c%d", c), hot: true, serialize: true, conc: c})
	}
	for _, c := range []int{8, 32} {
		cases = append(cases, benchCase{name: fmt.Sprintf("hot-retry/c%d", c), hot: true, conc: c})
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			h := handlers[tc.serialize]
			if tc.saga {
				h = saga
			}
			var lines func(*rand.Rand) []order.Line
			var verify func(b *testing.B, placed [][]order.Line)
			if tc.hot {
				id := benchCreateProduct(b, h, product.MaxQuantity)
				lines = func(*rand.Rand) []order.Line { return []order.Line{{ProductID: id, Quantity: 1}} }
				verify = func(b *testing.B, placed [][]order.Line) {
					benchVerifyStock(b, h, map[string]int64{id: int64(len(placed))})
				}
			} else {
				poolOnce.Do(func() { pool = newBenchProductPool(b, h, benchPoolSize) })
				if pool == nil {
					b.Fatal("no product pool: creating it failed")
				}
				lines = pool.pick
				verify = pool.verify
			}
			benchRunCase(b, store, counted, h, tc, lines, verify)
			if tc.hot && !checked[tc.name] {
				checked[tc.name] = true
				benchCheckNoOversell(b, h, tc.name, tc.conc)
			}
		})
	}
}

func benchHandler(store eventstore.Store, serialize bool) commands.Handlers {
	return commands.New(commands.Config{Store: store, Payments: payment.NewTestProcessor(), Serialize: &serialize})
}

// benchRunCase places b.N orders at concurrency tc.conc in rounds, each
// followed by as many raw appends to store, and records the figures; h
// runs on counted, which wraps store.
func benchRunCase(b *testing.B, store eventstore.Store, counted *benchCountingStore, h commands.Handlers, tc benchCase,
	lines func(*rand.Rand) []order.Line, verify func(*testing.B, [][]order.Line)) {
	ctx := context.Background()
	rngs := make([]*rand.Rand, tc.conc)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(rand.Uint64(), uint64(w)))
	}
	var (
		mu        sync.Mutex
		lat       = make([]time.Duration, 0, b.N)
		placed    [][]order.Line
		contended atomic.Int64
	)
	placeOne := func(w int) error {
		ls := lines(rngs[w])
		start := time.Now()
		_, _, err := h.Orders.PlaceOrder(ctx, benchCustomer, ls)
		d := time.Since(start)
		if err != nil && !(errors.Is(err, domain.ErrContention) && !tc.serialize) {
			return fmt.Errorf("place order: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, d)
		if err != nil {
			contended.Add(1)
			return nil
		}
		placed = append(placed, ls)
		return nil
	}
	rawOne := func(int) error {
		_, err := store.Append(ctx, "bench-raw-"+uuid.NewString(), eventstore.NoStream, benchRawEvent())
		return err
	}
	var orderTime, rawTime time.Duration
	per := max(b.N/benchRounds, 1)
	before := counted.snapshot()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(per, b.N-done)
		b.StartTimer()
		orderTime += benchutil.Concurrently(b, tc.conc, n, placeOne)
		b.StopTimer()
		rawTime += benchutil.Concurrently(b, tc.conc, n, rawOne)
		done += n
	}
	calls := counted.snapshot().minus(before)
	if b.Failed() {
		return
	}
	verify(b, placed)
	slices.Sort(lat)
	f := benchFigures{
		what: tc.name, hot: tc.hot, serialize: tc.serialize, conc: tc.conc, n: b.N, failed: int(contended.Load()),
		orders: float64(len(placed)) / orderTime.Seconds(), raw: float64(b.N) / rawTime.Seconds(),
		p50: benchMillis(lat[len(lat)/2]), p99: benchMillis(lat[len(lat)*99/100]), calls: calls,
	}
	b.ReportMetric(f.orders, "orders/s")
	b.ReportMetric(f.p50, "p50_ms")
	b.ReportMetric(f.p99, "p99_ms")
	b.ReportMetric(f.raw, "raw_appends/s")
	b.ReportMetric(f.orders/f.raw, "ratio")
	b.ReportMetric(float64(f.failed), "contention_failures")
	b.ReportMetric(float64(calls.appends)/float64(b.N), "appends/order")
	b.ReportMetric(float64(calls.reads)/float64(b.N), "reads/order")
	b.ReportMetric(float64(calls.conflicts)/float64(b.N), "conflicts/order")
	benchRecord(f)
}

func benchMillis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchRawEvent is a single stock reservation, the event most of an order's
// appends write.
func benchRawEvent() eventstore.EventData {
	e := product.Reserved{ProductID: uuid.NewString(), OrderID: uuid.NewString(), Quantity: 1}
	data, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return eventstore.EventData{
		ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), SchemaVersion: 1, Data: data,
		Metadata: eventstore.Metadata{CorrelationID: uuid.NewString(), CausationID: uuid.NewString(), ActorID: benchCustomer.ID},
	}
}

func benchCreateProduct(b *testing.B, h commands.Handlers, quantity int64) string {
	id, err := benchTryCreateProduct(h, quantity)
	if err != nil {
		b.Fatal(err)
	}
	return id
}

func benchTryCreateProduct(h commands.Handlers, quantity int64) (string, error) {
	p, _, err := h.Catalog.CreateProduct(context.Background(), benchVendor, commands.CreateProduct{
		SKU: "BENCH-" + uuid.NewString(), Name: "Bench mug", Price: 1250, Quantity: quantity,
	})
	if err != nil {
		return "", fmt.Errorf("create product: %w", err)
	}
	return p.ID, nil
}

// benchProductPool is the distinct-product case's catalogue and the units its
// successful orders reserved on each product, across every run.
type benchProductPool struct {
	h        commands.Handlers
	ids      []string
	reserved map[string]int64
}

func newBenchProductPool(b *testing.B, h commands.Handlers, n int) *benchProductPool {
	p := &benchProductPool{h: h, reserved: map[string]int64{}}
	var mu sync.Mutex
	benchutil.Concurrently(b, 8, n, func(int) error {
		id, err := benchTryCreateProduct(h, product.MaxQuantity)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		p.ids = append(p.ids, id)
		p.reserved[id] = 0
		return nil
	})
	if len(p.ids) != n {
		b.FailNow()
	}
	return p
}

// pick is a 2-line order of distinct products, 1 unit each.
func (p *benchProductPool) pick(r *rand.Rand) []order.Line {
	i := r.IntN(len(p.ids))
	j := r.IntN(len(p.ids) - 1)
	if j >= i {
		j++
	}
	return []order.Line{{ProductID: p.ids[i], Quantity: 1}, {ProductID: p.ids[j], Quantity: 1}}
}

func (p *benchProductPool) verify(b *testing.B, placed [][]order.Line) {
	for _, ls := range placed {
		for _, l := range ls {
			p.reserved[l.ProductID] += l.Quantity
		}
	}
	benchVerifyStock(b, p.h, p.reserved)
}

// benchVerifyStock fails b unless each product holds exactly the units its
// successful orders reserved, one reservation per order, and nothing is
// oversold.
func benchVerifyStock(b *testing.B, h commands.Handlers, want map[string]int64) {
	for id, units := range want {
		p, _, err := h.Catalog.Product(context.Background(), id)
		if err != nil {
			b.Fatalf("load product: %v", err)
		}
		if p.Reserved != units || int64(len(p.Reservations)) != units || p.Available() < 0 {
			b.Fatalf("product %s: reserved %d in %d reservations, available %d; successful orders reserved %d",
				id, p.Reserved, len(p.Reservations), p.Available(), units)
		}
	}
}

// benchCheckNoOversell races 4×benchOversellStock orders for one unit each against a
// product with benchOversellStock units, at concurrency conc: exactly
// benchOversellStock must succeed (fewer only if orders gave up on contention),
// the rest must fail with insufficient_stock, and stock must balance.
func benchCheckNoOversell(b *testing.B, h commands.Handlers, name string, conc int) {
	id := benchCreateProduct(b, h, benchOversellStock)
	var ok, short, contended atomic.Int64
	benchutil.Concurrently(b, conc, 4*benchOversellStock, func(int) error {
		_, _, err := h.Orders.PlaceOrder(context.Background(), benchCustomer, []order.Line{{ProductID: id, Quantity: 1}})
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, &domain.Error{Reason: "insufficient_stock"}):
			short.Add(1)
		case errors.Is(err, domain.ErrContention):
			contended.Add(1)
		default:
			return fmt.Errorf("oversell check: %w", err)
		}
		return nil
	})
	if ok.Load() > benchOversellStock || ok.Load()+contended.Load() < benchOversellStock {
		b.Fatalf("oversell check: %d orders succeeded, %d out of stock, %d gave up on contention; stock was %d",
			ok.Load(), short.Load(), contended.Load(), benchOversellStock)
	}
	benchVerifyStock(b, h, map[string]int64{id: ok.Load()})
	benchRecordOversell(fmt.Sprintf("%s: %d of %d orders got the %d units (%d out of stock, %d gave up)",
		name, ok.Load(), 4*benchOversellStock, benchOversellStock, short.Load(), contended.Load()))
}
