package benchmarks_test

import (
	"context"
	"fmt"
	"github.com/eventshop/eventshop/internal/testsupport/benchutil"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/projections"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/published"
)

const (
	lagOrders   = 4_000 // orders placed per iteration
	lagConc     = 8     // goroutines placing them
	lagProducts = 500   // products the 2-line orders draw from
	// lagGoal is the p99 an order may take to show in a read model or
	// reach a consumer.
	lagGoal = 100 * time.Millisecond
	// lagRawTopic carries the raw baseline's messages.
	lagRawTopic = "bench.raw.order-created"
)

// BenchmarkProjectionLag places orders through the command layer from
// lagConc goroutines, with the orders.v1 runner and the Kafka publisher's
// runner (the two under test, with the runtime's default options) running
// beside, and measures for each order.created, from the moment its append
// returned:
//   - until the orders.v1 checkpoint has passed it (the runner's status,
//     set once the batch's transaction committed: the row is visible);
//   - until a kafka-go reader of ecommerce.order.events fetched its
//     message (matched by event id).
//
// The raw baseline, in the same run and on the same events: a bare
// subscription to the store delivering the event, and that same event,
// handed by the bare subscription to a plain kafka-go writer (acks=all,
// as the publisher writes) and fetched back by a plain reader. It is what
// the runtime's batching, transactions and checkpoints add to.
func BenchmarkProjectionLag(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(b, false)
	clock := &appendClock{Store: e.store}
	h := commands.New(commands.Config{Store: clock, Payments: payment.NewTestProcessor()})
	products := lagCatalogue(b, h)

	broker := kafkatest.Start(b)
	pub, err := kafkapub.New(kafkapub.Config{Brokers: broker.Addrs(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	if err := pub.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	opts := projections.Options{Logger: quietLogger()}
	orders := start(b, projections.NewRunner(e.pool, e.store, pgread.OrdersProjection{}, opts))
	publishing := start(b, projections.NewSinkRunner(e.pool, e.store, pub, opts))
	for _, r := range []*running{orders, publishing} {
		if err := waitApplied(r.r, products.last, time.Minute); err != nil {
			b.Fatal(err)
		}
	}

	paths := lagPaths{readModel: newSightings(), kafka: newSightings(), rawSub: newSightings(), rawKafka: newSightings()}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { watchCheckpoint(ctx, orders.r, clock, paths.readModel) })
	for p := range kafkatest.Partitions(b, broker.Addrs(), published.TopicOrders) {
		wg.Go(func() { consume(ctx, broker.Addrs(), published.TopicOrders, p, paths.kafka, envelopeID) })
	}
	createTopic(b, broker.Addrs(), lagRawTopic)
	wg.Go(func() { consume(ctx, broker.Addrs(), lagRawTopic, 0, paths.rawKafka, plainID) })
	sub, err := e.store.SubscribeAll(ctx, eventstore.Start, eventstore.Filter{
		StreamPrefixes: []string{order.StreamPrefix}, EventTypePrefixes: []string{order.Created{}.EventType()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	wg.Go(func() { relay(ctx, sub, broker.Addrs(), paths.rawSub) })

	// Warm up: connections, statement caches, topic metadata.
	warm := placeOrders(b, h, clock, products, 100)
	paths.await(b, warm)
	var (
		ids      []uuid.UUID
		placedIn time.Duration
	)
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		ids = append(ids, placeOrders(b, h, clock, products, lagOrders)...)
		placedIn += time.Since(began)
		b.StopTimer()
		paths.await(b, ids)
		b.StartTimer()
	}
	b.StopTimer()
	rate := float64(len(ids)) / placedIn.Seconds()
	at := clock.times(ids)
	rm, kf, rs, rk := paths.readModel.lags(at, ids), paths.kafka.lags(at, ids), paths.rawSub.lags(at, ids), paths.rawKafka.lags(at, ids)
	b.ReportMetric(rate, "orders/s")
	b.ReportMetric(millis(percentile(rm, 50)), "readmodel_p50_ms")
	b.ReportMetric(millis(percentile(rm, 99)), "readmodel_p99_ms")
	b.ReportMetric(millis(percentile(kf, 50)), "kafka_p50_ms")
	b.ReportMetric(millis(percentile(kf, 99)), "kafka_p99_ms")
	b.ReportMetric(millis(percentile(rs, 99)), "raw_sub_p99_ms")
	b.ReportMetric(millis(percentile(rk, 99)), "raw_kafka_p99_ms")
	lagLine("append → orders.v1 row visible", rm, "bare subscription", rs)
	lagLine("append → fetched from "+published.TopicOrders, kf, "bare subscription → plain writer → reader", rk)
	note("lag: %d orders placed at concurrency %d (%.0f orders/s, 2 distinct products of %d each) with the orders.v1 and kafka.v1 runners "+
		"running (runtime defaults: batches of up to 500, 5 ms batch wait); times start when the order.created append returned",
		len(ids), lagConc, rate, lagProducts)
}

func lagLine(what string, lags []time.Duration, rawWhat string, raw []time.Duration) {
	p99 := percentile(lags, 99)
	record(line{
		group: "lag", what: what,
		measured: fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", millis(percentile(lags, 50)), millis(p99)),
		raw:      fmt.Sprintf("%s: p50 %.1f ms, p99 %.1f ms", rawWhat, millis(percentile(raw, 50)), millis(percentile(raw, 99))),
		ratio:    fmt.Sprintf("p99 ×%.1f", float64(p99)/float64(max(percentile(raw, 99), time.Microsecond))),
		goal:     fmt.Sprintf("p99 ≤ %d ms %s", lagGoal.Milliseconds(), verdict(p99 <= lagGoal)),
	})
}

// lagProductPool is the catalogue the orders draw from, and the position
// of its last product's creation.
type lagProductPool struct {
	ids  []string
	last eventstore.Position
}

func lagCatalogue(tb testing.TB, h commands.Handlers) lagProductPool {
	tb.Helper()
	vendor := commands.Actor{ID: uuid.NewString(), Roles: []string{user.RoleVendor}}
	var (
		mu   sync.Mutex
		pool lagProductPool
	)
	benchutil.Concurrently(tb, 8, lagProducts, func(int) error {
		p, res, err := h.Catalog.CreateProduct(context.Background(), vendor, commands.CreateProduct{
			SKU: "LAG-" + uuid.NewString()[:13], Name: "Lag mug", Price: 1250, Quantity: product.MaxQuantity,
		})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		pool.ids = append(pool.ids, p.ID)
		if pool.last.Less(res.Position) {
			pool.last = res.Position
		}
		return nil
	})
	if len(pool.ids) != lagProducts {
		tb.FailNow()
	}
	return pool
}

// placeOrders places n 2-line orders from lagConc goroutines and returns
// the ids of their order.created events.
func placeOrders(tb testing.TB, h commands.Handlers, clock *appendClock, products lagProductPool, n int) []uuid.UUID {
	customer := commands.Actor{ID: uuid.NewString(), Roles: []string{user.RoleCustomer}}
	var (
		mu  sync.Mutex
		ids []uuid.UUID
	)
	benchutil.Concurrently(tb, lagConc, n, func(int) error {
		i := rand.IntN(len(products.ids))
		j := (i + 1 + rand.IntN(len(products.ids)-1)) % len(products.ids)
		st, _, err := h.Orders.PlaceOrder(context.Background(), customer, []order.Line{
			{ProductID: products.ids[i], Quantity: 1}, {ProductID: products.ids[j], Quantity: 1},
		})
		if err != nil {
			return fmt.Errorf("place order: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, clock.created(st.ID))
		return nil
	})
	return ids
}
