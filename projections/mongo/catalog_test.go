package mongo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	"github.com/eventshop/eventshop/projections/catalogquery"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
)

// TestEveryEventLands: the catalogue holds each product exactly as the
// write side folds it, whatever the batching; a discontinued product is
// kept, flagged, but not served; an abandoned creation leaves nothing.
func TestEveryEventLands(t *testing.T) {
	e := newEnv(t)
	live, discontinued, plain, abandoned := e.scenario(t)
	events := e.log(t)
	types := map[string]bool{}
	for _, ev := range events {
		types[ev.Type] = true
	}
	for _, typ := range []string{"product.created", "product.updated", "product.discontinued", "product.creation_abandoned",
		"inventory.updated", "inventory.reserved", "inventory.released", "inventory.deducted"} {
		if !types[typ] {
			t.Fatalf("the scenario wrote no %s", typ)
		}
	}

	var hashes []string
	for _, size := range []int{1, 3, len(events)} {
		cat := mongoread.NewWithOptions(mongotest.NewDatabase(t), testOptions)
		if err := cat.Projection().Setup(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		applyIn(t, cat.Projection(), events, size)
		for _, id := range []string{live, plain} {
			got, err := cat.Product(ctxT(t), uuid.MustParse(id))
			if err != nil {
				t.Fatalf("batches of %d: product %s: %v", size, id, err)
			}
			if want := e.want(t, id); dump(got) != dump(want) {
				t.Errorf("batches of %d: product %s:\n got %s\nwant %s", size, id, dump(got), dump(want))
			}
		}
		hashes = append(hashes, liveHash(t, cat))
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Errorf("the catalogue depends on the batching: %v", hashes)
	}

	got, err := e.cat.Product(ctxT(t), uuid.MustParse(live))
	if !errors.Is(err, mongoread.ErrNotFound) {
		t.Fatalf("before any event was applied: %v, %v; want ErrNotFound", got, err)
	}
	applyIn(t, e.cat.Projection(), events, 500)
	p, err := e.cat.Product(ctxT(t), uuid.MustParse(live))
	if err != nil {
		t.Fatal(err)
	}
	// The numbers the scenario leads to: 10 + 5 restocked − 3 sold; 4 held.
	if p.Inventory != (resource.Inventory{Quantity: 12, Reserved: 4, Available: 8, Warehouse: "east"}) ||
		p.Price != 3499 || p.Name != "Desk lamp XL" || p.Category != "home" || len(p.Images) != 2 {
		t.Errorf("live product: %s", dump(p))
	}
	var meta map[string]any
	if err := json.Unmarshal(p.Metadata, &meta); err != nil || meta["colour"] != "blue" || !strings.Contains(string(p.Metadata), "12345678901234567890") {
		t.Errorf("metadata %s did not survive intact (%v)", p.Metadata, err)
	}

	if _, err := e.cat.Product(ctxT(t), uuid.MustParse(discontinued)); !errors.Is(err, mongoread.ErrNotFound) {
		t.Errorf("discontinued product: %v, want ErrNotFound", err)
	}
	coll, err := e.cat.LiveCollection(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var flagged struct {
		Discontinued bool  `bson:"discontinued"`
		Version      int64 `bson:"version"`
	}
	if err := coll.FindOne(ctxT(t), bson.D{{Key: "_id", Value: discontinued}}).Decode(&flagged); err != nil || !flagged.Discontinued || flagged.Version != 1 {
		t.Errorf("discontinued product's document: %+v, %v; want it kept, flagged, at version 1", flagged, err)
	}
	if n, err := coll.CountDocuments(ctxT(t), bson.D{{Key: "_id", Value: abandoned}}); err != nil || n != 0 {
		t.Errorf("abandoned creation: %d documents, %v; want none", n, err)
	}
	if _, err := e.cat.Product(ctxT(t), uuid.MustParse(abandoned)); !errors.Is(err, mongoread.ErrNotFound) {
		t.Errorf("abandoned creation: %v, want ErrNotFound", err)
	}
	items, total, err := list(ctxT(t), e.cat, catalogquery.ProductQuery{})
	if err != nil || total != 2 || len(items) != 2 {
		t.Fatalf("listing: %d of %d, %v; want the live and the plain product", len(items), total, err)
	}
	for _, it := range items {
		if it.ID == discontinued || it.ID == abandoned {
			t.Errorf("listing shows %s", it.ID)
		}
	}
}

// TestApplyAgain is the crash between applying a batch and moving the
// checkpoint: applying the batch again, any prefix of it, or everything
// from the start up to it, leaves the catalogue byte-identical.
func TestApplyAgain(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	events := e.log(t)
	sink := e.cat.Projection()
	if err := sink.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	const size = 4
	for i := 0; i < len(events); i += size {
		batch := events[i:min(i+size, len(events))]
		applyIn(t, sink, batch, len(batch))
		want := liveHash(t, e.cat)
		for j := 1; j <= len(batch); j++ {
			applyIn(t, sink, batch[:j], j)
			if got := liveHash(t, e.cat); got != want {
				t.Fatalf("batch at %d: applying its first %d events again changed the catalogue: %s, was %s", i, j, got, want)
			}
		}
		applyIn(t, sink, events[:i+len(batch)], 7)
		if got := liveHash(t, e.cat); got != want {
			t.Fatalf("batch at %d: applying the log up to it again changed the catalogue: %s, was %s", i, got, want)
		}
	}
}

// TestConcurrentWriters: two instances applying the log at once, each in
// its own batches (a runner that lost its lock mid-batch and the one that
// took over), end with the catalogue one instance alone builds.
func TestConcurrentWriters(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	events := e.log(t)

	alone := mongoread.NewWithOptions(mongotest.NewDatabase(t), testOptions)
	applyIn(t, alone.Projection(), events, len(events))
	want := liveHash(t, alone)

	sink := e.cat.Projection()
	if err := sink.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, size := range []int{1, 5} {
		wg.Go(func() {
			for i := 0; i < len(events); i += size {
				// A batch that fails is applied again, as the runner
				// does: a read racing the other writer's upsert on
				// FerretDB can miss a document for a moment.
				var err error
				for range 5 {
					if err = sink.Apply(ctxT(t), events[i:min(i+size, len(events))]); err == nil {
						break
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("apply: %v", err)
	}
	if got := liveHash(t, e.cat); got != want {
		t.Errorf("concurrent writers: %s, alone: %s", got, want)
	}
}

// TestApplyRefuses: a fold that would be wrong stops the projection with
// an error naming the event, and writes nothing.
func TestApplyRefuses(t *testing.T) {
	e := newEnv(t)
	sink := e.cat.Projection()
	if err := sink.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	created, _ := json.Marshal(product.Created{ProductID: id, SKU: "A-1", Name: "A", Price: domain.Cents(100), Quantity: 1})
	event := func(stream string, version int64, typ string, data []byte) eventstore.Event {
		return eventstore.Event{EventData: eventstore.EventData{ID: uuid.New(), Type: typ, Data: data}, StreamID: stream, Version: version}
	}
	for _, c := range []struct {
		name  string
		batch []eventstore.Event
		want  string
	}{
		{"an unknown event type", []eventstore.Event{event(product.Stream(id), 0, "product.renamed", created)},
			`unknown event type "product.renamed"`},
		{"a stream id that is not a UUID", []eventstore.Event{event("product-42", 0, "product.created", created)},
			"not a UUID"},
		{"data that does not decode", []eventstore.Event{event(product.Stream(id), 0, "product.created", []byte(`{"price":"x"}`))},
			"decode product.created"},
	} {
		err := sink.Apply(ctxT(t), c.batch)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), c.batch[len(c.batch)-1].StreamID) {
			t.Errorf("%s: %v does not name the stream", c.name, err)
		}
	}
	var unknown *domain.UnknownEventError
	if err := sink.Apply(ctxT(t), []eventstore.Event{event(product.Stream(id), 0, "product.renamed", created)}); !errors.As(err, &unknown) {
		t.Errorf("unknown event type: %v is not an UnknownEventError", err)
	}
	if n, err := e.cat.Categories(ctxT(t)); err != nil || len(n) != 0 {
		t.Errorf("after refused batches the catalogue holds %v, %v", n, err)
	}
}

// TestApplyAfterSkippedEvent: an event an admin skipped leaves a gap in
// its stream's versions; the fold goes on from the next event, and a
// product whose creation was skipped stays out of the catalogue.
func TestApplyAfterSkippedEvent(t *testing.T) {
	e := newEnv(t)
	sink := e.cat.Projection()
	if err := sink.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	event := func(id string, version int64, ev domain.Event) eventstore.Event {
		data, _ := json.Marshal(ev)
		return eventstore.Event{EventData: eventstore.EventData{ID: uuid.New(), Type: ev.EventType(), Data: data,
			Metadata: eventstore.Metadata{Timestamp: time.Now()}}, StreamID: product.Stream(id), Version: version}
	}
	kept, lost := uuid.NewString(), uuid.NewString()
	batch := []eventstore.Event{
		event(kept, 0, product.Created{ProductID: kept, SKU: "K-1", Name: "Kept", Price: 100, Quantity: 5, Category: "c"}),
		// version 1 was skipped
		event(kept, 2, product.InventoryUpdated{ProductID: kept, Adjustment: 2, Quantity: 7, Reason: "count"}),
		// version 0 of lost (its creation) was skipped
		event(lost, 1, product.InventoryUpdated{ProductID: lost, Adjustment: 2, Quantity: 7, Reason: "count"}),
	}
	if err := sink.Apply(ctxT(t), batch); err != nil {
		t.Fatal(err)
	}
	p, err := e.cat.Product(ctxT(t), uuid.MustParse(kept))
	if err != nil || p.Version != 2 || p.Inventory.Quantity != 7 {
		t.Fatalf("product after a gap: %+v, %v; want version 2 with 7 in stock", p, err)
	}
	if _, err := e.cat.Product(ctxT(t), uuid.MustParse(lost)); !errors.Is(err, mongoread.ErrNotFound) {
		t.Fatalf("a product whose creation was skipped: %v, want ErrNotFound", err)
	}
}

// TestApplyManyReplacements: a batch that replaces many existing
// documents at once completes on the embedded FerretDB, whose update
// commands hold a PostgreSQL connection per document until they end (a
// single command for the whole batch never ended).
func TestApplyManyReplacements(t *testing.T) {
	e := newEnv(t)
	const n = 60
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.create(t, e.vendor, commands.CreateProduct{SKU: fmt.Sprintf("MANY-%d", i), Name: "Many", Price: 100, Quantity: 5})
	}
	created := e.log(t)
	p := e.cat.Projection()
	if err := p.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	applyIn(t, p, created, len(created))
	for _, id := range ids {
		if _, _, err := e.h.Catalog.AdjustInventory(ctxT(t), e.vendor, id, commands.NoVersion,
			product.AdjustInventory{Adjustment: 1, Reason: "restock"}); err != nil {
			t.Fatal(err)
		}
	}
	all := e.log(t)
	ctx, cancel := context.WithTimeout(ctxT(t), 60*time.Second)
	defer cancel()
	if err := p.Apply(ctx, all[len(created):]); err != nil {
		t.Fatalf("apply %d replacements in one batch: %v", len(all)-len(created), err)
	}
	for _, id := range ids {
		if got := e.want(t, id); got.Inventory.Quantity != 6 {
			t.Fatalf("product %s: quantity %d, want 6", id, got.Inventory.Quantity)
		}
	}
}

// TestApplyEventsWrittenBeforeTheBounds: a product written before events
// were validated, with NUL in its description, category and warehouse
// (FerretDB's jsonb refuses NUL) and a price over the money bound, still
// lands in the catalogue; the NULs are kept as U+FFFD.
func TestApplyEventsWrittenBeforeTheBounds(t *testing.T) {
	e := newEnv(t)
	sink := e.cat.Projection()
	if err := sink.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	created := `{"product_id":"` + id + `","sku":"OLD-1","name":"Old","description":"a\u0000b","price":10000000000000.00,` +
		`"category":"c\u0000","vendor_id":"` + uuid.NewString() + `","images":[],"metadata":{},"quantity":10,"warehouse":"w\u0000"}`
	adjusted := `{"product_id":"` + id + `","adjustment":5,"quantity":15,"reason":"r\u0000","warehouse":"x\u0000y"}`
	batch := []eventstore.Event{
		{EventData: eventstore.EventData{ID: uuid.New(), Type: "product.created", SchemaVersion: 1, Data: []byte(created)}, StreamID: product.Stream(id), Version: 0},
		{EventData: eventstore.EventData{ID: uuid.New(), Type: "inventory.updated", SchemaVersion: 1, Data: []byte(adjusted)}, StreamID: product.Stream(id), Version: 1},
	}
	if err := sink.Apply(ctxT(t), batch); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got, err := e.cat.Product(ctxT(t), uuid.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "a\uFFFDb" || got.Category != "c\uFFFD" || got.Inventory.Warehouse != "x\uFFFDy" ||
		got.Price != domain.MaxCents*10_000 || got.Inventory.Quantity != 15 {
		t.Errorf("catalogue holds %s", dump(got))
	}
}

// TestApplyFindsByID: every find the projection makes while applying a
// batch is an equality on _id, the one filter FerretDB 1.x pushes down to
// an index; any other filter ($in, say) makes it read the whole
// collection for every batch, a cost that grows with the catalogue.
func TestApplyFindsByID(t *testing.T) {
	e := newEnv(t)
	var (
		mu      sync.Mutex
		filters []bson.Raw
	)
	mon := &event.CommandMonitor{Started: func(_ context.Context, ev *event.CommandStartedEvent) {
		if ev.CommandName == "find" {
			mu.Lock()
			filters = append(filters, ev.Command.Lookup("filter").Document())
			mu.Unlock()
		}
	}}
	db := mongotest.NewDatabase(t, options.Client().SetMonitor(mon))
	e.cat = mongoread.NewWithOptions(db, testOptions)
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = e.create(t, e.vendor, commands.CreateProduct{SKU: fmt.Sprintf("BYID-%d", i), Name: "By id", Price: 100, Quantity: 5})
	}
	created := e.log(t)
	p := e.cat.Projection()
	if err := p.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	applyIn(t, p, created, len(created))
	e.order(t, ids[1], 2)
	e.order(t, ids[4], 1)
	all := e.log(t)
	mu.Lock()
	filters = nil
	mu.Unlock()
	// A process that has not folded the products itself reads them.
	applyIn(t, mongoread.NewWithOptions(db, testOptions).Projection(), all[len(created):], len(all)-len(created))
	mu.Lock()
	seen := filters
	filters = nil
	mu.Unlock()

	if len(seen) == 0 {
		t.Fatal("applying the orders' events made no find; the test no longer sees the projection's reads")
	}
	for _, f := range seen {
		elems, err := f.Elements()
		if err != nil {
			t.Fatal(err)
		}
		if len(elems) != 1 || elems[0].Key() != "_id" || elems[0].Value().Type != bson.TypeString {
			t.Errorf("find with filter %s: want {_id: <string>}, the equality FerretDB pushes down", f)
		}
	}
	for _, id := range ids {
		got, err := e.cat.Product(ctxT(t), uuid.MustParse(id))
		if err != nil {
			t.Fatal(err)
		}
		if want := e.want(t, id); got.Inventory != want.Inventory {
			t.Fatalf("product %s: the catalogue holds %+v, the write side folds %+v", id, got.Inventory, want.Inventory)
		}
	}
}

// TestApplyFoldsOnWhatItWrote: the projection folds a product's next
// events onto the document it wrote last without reading it back, but
// only when they follow on from it; when another writer has moved the
// product on meanwhile (or events were skipped), it reads the stored
// document, and every document ends as the write side folds the stream.
func TestApplyFoldsOnWhatItWrote(t *testing.T) {
	e := newEnv(t)
	var finds atomic.Int64
	mon := &event.CommandMonitor{Started: func(_ context.Context, ev *event.CommandStartedEvent) {
		coll, _ := ev.Command.Lookup("find").StringValueOK()
		if ev.CommandName == "find" && !strings.HasPrefix(coll, "catalog_meta") && ev.Command.Lookup("filter", "_id").Type == bson.TypeString {
			finds.Add(1) // of a product
		}
	}}
	db := mongotest.NewDatabase(t, options.Client().SetMonitor(mon))
	e.cat = mongoread.NewWithOptions(db, testOptions)
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = e.create(t, e.vendor, commands.CreateProduct{SKU: fmt.Sprintf("FOLD-%d", i), Name: "Folded", Price: 100, Quantity: 50})
	}
	ours := e.cat.Projection()
	if err := ours.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	applied := e.log(t)
	applyIn(t, ours, applied, len(applied))
	check := func(step string) {
		t.Helper()
		for _, id := range ids {
			got, err := e.cat.Product(ctxT(t), uuid.MustParse(id))
			if err != nil {
				t.Fatal(err)
			}
			if want := e.want(t, id); got.Inventory != want.Inventory || got.Version != want.Version {
				t.Fatalf("%s: product %s is %+v at version %d, the write side folds %+v at %d", step, id, got.Inventory, got.Version, want.Inventory, want.Version)
			}
		}
	}
	next := func() []eventstore.Event {
		all := e.log(t)
		news := all[len(applied):]
		applied = all
		return news
	}

	e.order(t, ids[0], 2)
	e.order(t, ids[1], 3)
	before := finds.Load()
	applyIn(t, ours, next(), 100)
	if n := finds.Load() - before; n != 0 {
		t.Errorf("read %d products back to fold events that follow on from what it wrote", n)
	}
	check("events that follow on")

	// Another process applies an order on ids[0]; ours then gets only
	// the order after it: its document of ids[0] is one event behind.
	e.order(t, ids[0], 4)
	theirs := mongoread.NewWithOptions(db, testOptions).Projection()
	applyIn(t, theirs, next(), 100)
	e.order(t, ids[0], 5)
	e.order(t, ids[2], 1)
	before = finds.Load()
	applyIn(t, ours, next(), 100)
	if n := finds.Load() - before; n != 1 {
		t.Errorf("read %d products back, want 1: the one another writer moved on", n)
	}
	check("after another writer")
}

// TestWritesSideBySide: a batch changing many products writes them in
// commands side by side, never more at once than FerretDB's bounded pool
// allows, and every document ends as the write side folds its stream.
func TestWritesSideBySide(t *testing.T) {
	e := newEnv(t)
	var (
		mu             sync.Mutex
		inFlight, most int
	)
	done := func(_ context.Context, ev *event.CommandFinishedEvent) {
		if ev.CommandName == "update" {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}
	}
	mon := &event.CommandMonitor{
		Started: func(_ context.Context, ev *event.CommandStartedEvent) {
			if ev.CommandName == "update" {
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				mu.Unlock()
			}
		},
		Succeeded: func(ctx context.Context, ev *event.CommandSucceededEvent) { done(ctx, &ev.CommandFinishedEvent) },
		Failed:    func(ctx context.Context, ev *event.CommandFailedEvent) { done(ctx, &ev.CommandFinishedEvent) },
	}
	e.cat = mongoread.NewWithOptions(mongotest.NewDatabase(t, options.Client().SetMonitor(mon)), testOptions)
	ids := make([]string, 24)
	for i := range ids {
		ids[i] = e.create(t, e.vendor, commands.CreateProduct{SKU: fmt.Sprintf("SIDE-%d", i), Name: "Side by side", Price: 100, Quantity: 9})
	}
	p := e.cat.Projection()
	if err := p.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	created := e.log(t)
	applyIn(t, p, created, len(created))
	if most != mongoread.WriteConcurrency {
		t.Errorf("at most %d write commands in flight at once, want %d", most, mongoread.WriteConcurrency)
	}
	for _, id := range ids {
		got, err := e.cat.Product(ctxT(t), uuid.MustParse(id))
		if err != nil {
			t.Fatal(err)
		}
		if want := e.want(t, id); got.Version != want.Version || got.Inventory != want.Inventory || got.SKU != want.SKU {
			t.Fatalf("product %s: the catalogue holds %+v, the write side folds %+v", id, got, want)
		}
	}
}
