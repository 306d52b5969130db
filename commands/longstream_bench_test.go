package commands_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/eventstore/snapshots"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

var longStreamEvents = flag.Int("longstream.events", 1_000_000, "events in BenchmarkFirstCommandOnLongStream's product stream")

// BenchmarkFirstCommandOnLongStream writes one hot product's stream of
// -longstream.events events (reservations of distinct orders, most
// released or deducted again, as a busy product's are) and times the
// first command on it in a process that starts afresh (no cache): folded
// from the start, and read from its snapshot. Next to them, the raw
// baseline: one single-event append to a new stream. Each iteration is one
// fresh start of each kind; the figures are the medians.
func BenchmarkFirstCommandOnLongStream(b *testing.B) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(b)
	store, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	snaps := snapshots.New(pool)
	vendor := benchVendor
	handlers := func(withSnapshots bool) commands.Handlers {
		cfg := commands.Config{Store: store, Payments: payment.NewTestProcessor()}
		if withSnapshots {
			cfg.Snapshots = snaps
		}
		return commands.New(cfg)
	}
	p, _, err := handlers(false).Catalog.CreateProduct(ctx, vendor, commands.CreateProduct{
		SKU: "HOT-" + uuid.NewString()[:8], Name: "Hot", Price: 999, Quantity: 1_000_000_000})
	if err != nil {
		b.Fatal(err)
	}
	stream := product.Stream(p.ID)
	started := time.Now()
	writeLongStream(b, store, p.ID, *longStreamEvents-1)
	b.Logf("wrote %d events in %s", *longStreamEvents, time.Since(started).Round(time.Millisecond))

	// The snapshot a running process leaves: the first load folds the
	// stream and saves one.
	if _, _, err := handlers(true).Catalog.Product(ctx, p.ID); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if s, ok, err := snaps.Load(ctx, stream, product.SnapshotFormat); err == nil && ok && s.Version >= int64(*longStreamEvents-1) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no snapshot saved")
		}
		time.Sleep(10 * time.Millisecond)
	}

	first := func(withSnapshots bool) time.Duration {
		h := handlers(withSnapshots)
		t0 := time.Now()
		if _, _, err := h.Catalog.AdjustInventory(ctx, vendor, p.ID, commands.NoVersion,
			product.AdjustInventory{Adjustment: 1, Reason: "recount"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	var folded, snapped, raw []time.Duration
	b.ResetTimer()
	for range b.N {
		folded = append(folded, first(false))
		snapped = append(snapped, first(true))
		t0 := time.Now()
		if _, err := store.Append(ctx, "bench-raw-"+uuid.NewString(), eventstore.NoStream, eventstore.EventData{
			ID: uuid.Must(uuid.NewV7()), Type: "bench.raw", SchemaVersion: 1, Data: json.RawMessage(`{"n":1}`)}); err != nil {
			b.Fatal(err)
		}
		raw = append(raw, time.Since(t0))
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(folded), "folded-ms")
	b.ReportMetric(med(snapped), "snapshot-ms")
	b.ReportMetric(med(raw), "raw-append-ms")
	fmt.Fprintf(os.Stdout, "first command on a %d-event product stream after a restart (median of %d): "+
		"folded from the start %.1f ms, from its snapshot %.1f ms; raw single-event append %.2f ms\n",
		*longStreamEvents, b.N, med(folded), med(snapped), med(raw))
}

// writeLongStream appends n events to product id's stream in appends of
// eventstore's largest size: reservations for distinct orders, nine in
// ten released or deducted again a few events later.
func writeLongStream(b *testing.B, store eventstore.Store, id string, n int) {
	ctx := context.Background()
	stream := product.Stream(id)
	at := time.Now().UTC().Truncate(time.Microsecond)
	var open []string
	batch := make([]eventstore.EventData, 0, 1000)
	version := int64(0)
	add := func(e domain.Event) {
		data, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), SchemaVersion: 1, Data: data,
			Metadata: eventstore.Metadata{ActorID: "system", Timestamp: at}})
		if len(batch) == cap(batch) {
			if _, err := store.Append(ctx, stream, eventstore.Exact(version), batch...); err != nil {
				b.Fatal(err)
			}
			version += int64(len(batch))
			batch = batch[:0]
		}
	}
	for i := range n {
		if len(open) > 8 {
			o := open[0]
			open = open[1:]
			if i%10 == 0 {
				add(product.Released{ProductID: id, OrderID: o, Quantity: 1, Reason: "order_cancelled"})
			} else {
				add(product.Deducted{ProductID: id, OrderID: o, Quantity: 1})
			}
			continue
		}
		o := fmt.Sprintf("order-%d", i)
		open = append(open, o)
		add(product.Reserved{ProductID: id, OrderID: o, Quantity: 1})
	}
	if len(batch) > 0 {
		if _, err := store.Append(ctx, stream, eventstore.Exact(version), batch...); err != nil {
			b.Fatal(err)
		}
	}
}
