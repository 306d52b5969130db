package mongo_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
)

// shadowName is the catalogue collection beside the live one: the shadow
// of the rebuild under way.
func shadowName(t *testing.T, s *mongoread.Store) string {
	t.Helper()
	live, err := s.LiveCollection(ctxT(t))
	if err != nil || live == nil {
		t.Fatalf("live collection: %v, %v", live, err)
	}
	others := slices.DeleteFunc(collections(t, s), func(n string) bool { return n == live.Name() })
	if len(others) != 1 {
		t.Fatalf("catalogue collections besides the live %s: %v, want one shadow", live.Name(), others)
	}
	return others[0]
}

// indexCount is how many indexes collection name of s's database has; 0
// when it does not exist.
func indexCount(t *testing.T, s *mongoread.Store, name string) int {
	t.Helper()
	live, _ := s.LiveCollection(ctxT(t))
	db := live.Database()
	if names, err := db.ListCollectionNames(ctxT(t), map[string]any{"name": name}); err != nil || len(names) == 0 {
		return 0
	}
	specs, err := db.Collection(name).Indexes().ListSpecifications(ctxT(t))
	if err != nil {
		t.Fatalf("indexes of %s: %v", name, err)
	}
	return len(specs)
}

// TestSetupSparesAConcurrentShadow: a Setup in another process (a runner
// or read API starting) that read the pointer before a rebuild recorded
// its shadow does not drop that shadow while it is being filled, and the
// swapped-in catalogue is complete.
func TestSetupSparesAConcurrentShadow(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	events := e.log(t)
	opts, name := server(t)
	a := mongoread.NewWithOptions(connect(t, opts).Database(name), testOptions)
	proj := a.Projection()
	if err := proj.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	applyIn(t, proj, events, 5)
	want := liveHash(t, a)

	// The other process stops before it lists the collections to drop,
	// until the rebuild has made its shadow and begun to fill it.
	var armed atomic.Bool
	listing, resume := make(chan struct{}), make(chan struct{})
	monitored := *opts
	monitored.SetMonitor(&event.CommandMonitor{Started: func(_ context.Context, ev *event.CommandStartedEvent) {
		if ev.CommandName == "listCollections" && armed.CompareAndSwap(true, false) {
			close(listing)
			<-resume
		}
	}})
	b := mongoread.NewWithOptions(connect(t, &monitored).Database(name), testOptions)
	armed.Store(true)
	setup := make(chan error, 1)
	go func() { setup <- b.Projection().Setup(ctxT(t)) }()
	select {
	case <-listing:
	case err := <-setup:
		t.Fatalf("the other Setup listed no collections: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the other Setup did not list the collections within 10s")
	}
	shadow, err := proj.Shadow(ctxT(t))
	if err != nil {
		close(resume)
		t.Fatal(err)
	}
	if err := shadow.Setup(ctxT(t)); err != nil {
		close(resume)
		t.Fatal(err)
	}
	half := len(events) / 2
	applyIn(t, shadow, events[:half], 5)
	name = shadowName(t, a)
	indexes := indexCount(t, a, name)
	close(resume)
	if err := <-setup; err != nil {
		t.Fatalf("the other Setup: %v", err)
	}
	if got := indexCount(t, a, name); got != indexes {
		t.Fatalf("after the other Setup the shadow %s has %d indexes, had %d: it was dropped", name, got, indexes)
	}
	applyIn(t, shadow, events[half:], 5)
	if err := proj.Swap(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := liveHash(t, a); got != want {
		t.Errorf("swapped-in catalogue %s, want %s", got, want)
	}
}

// TestSwapRefusesALostShadow: Swap refuses a shadow collection that is
// gone, or that was dropped and then written again (so lacks its indexes
// and the documents written before), and leaves the live catalogue
// serving; a new shadow then swaps in.
func TestSwapRefusesALostShadow(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	events := e.log(t)
	proj := e.cat.Projection()
	applyIn(t, proj, events, 5)
	want := liveHash(t, e.cat)
	live, _ := e.cat.LiveCollection(ctxT(t))

	shadow, err := proj.Shadow(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	applyIn(t, shadow, events, 5)
	lost := live.Database().Collection(shadowName(t, e.cat))
	if err := lost.Drop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := proj.Swap(ctxT(t)); !errors.Is(err, mongoread.ErrNoShadow) {
		t.Errorf("swap of a dropped shadow: %v, want ErrNoShadow", err)
	}
	applyIn(t, shadow, events[:1], 1) // recreates it, without indexes
	if err := proj.Swap(ctxT(t)); !errors.Is(err, mongoread.ErrNoShadow) {
		t.Errorf("swap of a shadow recreated by a write: %v, want ErrNoShadow", err)
	}
	if now, _ := e.cat.LiveCollection(ctxT(t)); now.Name() != live.Name() {
		t.Fatalf("a refused swap moved the catalogue to %s", now.Name())
	}
	if got := liveHash(t, e.cat); got != want {
		t.Fatalf("after refused swaps the catalogue serves %s, want %s", got, want)
	}

	// What the runner does after failed swaps: build a new shadow.
	shadow, err = proj.Shadow(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	applyIn(t, shadow, events, 5)
	if err := proj.Swap(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := liveHash(t, e.cat); got != want {
		t.Errorf("rebuilt catalogue %s, want %s", got, want)
	}
}

// TestApplyFollowsASwapElsewhere: two runners both active (one lost its
// lock): when one swaps a rebuilt catalogue in, the other's next batch
// lands in the new live collection, not in the retired one it set up
// with, and its process's readers follow.
func TestApplyFollowsASwapElsewhere(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	events := e.log(t)
	db := mongotest.NewDatabase(t)
	a := mongoread.NewWithOptions(db, testOptions)
	b := mongoread.NewWithOptions(db, mongoread.Options{PointerTTL: time.Hour})
	c := mongoread.NewWithOptions(db, mongoread.Options{PointerTTL: time.Hour})
	for _, s := range []*mongoread.Store{a, b, c} {
		if err := s.Projection().Setup(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	applyIn(t, b.Projection(), events, 5)
	old, _ := b.LiveCollection(ctxT(t))

	shadow, err := a.Projection().Shadow(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	applyIn(t, shadow, events, 5)
	if err := a.Projection().Swap(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	now, _ := a.LiveCollection(ctxT(t))

	added := e.create(t, e.vendor, commands.CreateProduct{SKU: "LATE-1", Name: "Late", Price: 100})
	events = e.log(t)
	applyIn(t, b.Projection(), events[len(events)-1:], 1)
	for who, s := range map[string]*mongoread.Store{"the swapping process": a, "the other process": b} {
		if _, err := s.Product(ctxT(t), uuid.MustParse(added)); err != nil {
			t.Errorf("%s: a product the other runner applied after the swap: %v", who, err)
		}
	}
	if got, _ := b.LiveCollection(ctxT(t)); got.Name() != now.Name() {
		t.Errorf("the other process reads %s after its runner wrote, want %s", got.Name(), now.Name())
	}
	if old.Name() == now.Name() {
		t.Fatalf("the swap did not change the live collection")
	}

	// A third runner, idle since the swap, whose retired collection was
	// dropped meanwhile (its grace was over): its batch continues a product
	// that collection no longer holds, and must land in the live one too.
	if err := old.Drop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.h.Catalog.AdjustInventory(ctxT(t), e.vendor, added, commands.NoVersion,
		product.AdjustInventory{Adjustment: 2, Reason: "restock"}); err != nil {
		t.Fatal(err)
	}
	events = e.log(t)
	applyIn(t, c.Projection(), events[len(events)-1:], 1)
	if p, err := a.Product(ctxT(t), uuid.MustParse(added)); err != nil || p.Inventory.Quantity != 2 {
		t.Errorf("a batch the third runner applied after the swap: %s, %v; want 2 in stock", dump(p), err)
	}
}

// TestFerretDBKeepsOnlyTheIndexesItUses: on FerretDB 1.x, which serves
// no query from a field's btree index, the catalogue's collections keep
// only _id's index and the SKU's (what tells a lost shadow); those an
// earlier version created are dropped at Setup, on the live collection,
// and a rebuild's shadow gets no others. The catalogue still answers as
// the log says, and the shadow still swaps in.
func TestFerretDBKeepsOnlyTheIndexesItUses(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	events := e.log(t)
	proj := e.cat.Projection()
	if err := proj.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	live, _ := e.cat.LiveCollection(ctxT(t))
	keys := func(name string) []string {
		t.Helper()
		specs, err := live.Database().Collection(name).Indexes().ListSpecifications(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range specs {
			out = append(out, s.KeysDocument.String())
		}
		slices.Sort(out)
		return out
	}
	want := []string{`{"_id": {"$numberInt":"1"}}`, `{"sku": {"$numberInt":"1"}}`}
	if got := keys(live.Name()); !slices.Equal(got, want) {
		t.Fatalf("a new catalogue's indexes: %v, want %v", got, want)
	}

	// What an earlier version made on FerretDB: every index MongoDB needs.
	for _, k := range []bson.D{
		{{Key: "created_us", Value: -1}, {Key: "_id", Value: -1}},
		{{Key: "price_cents", Value: 1}, {Key: "_id", Value: 1}},
		{{Key: "category", Value: 1}},
	} {
		if _, err := live.Indexes().CreateOne(ctxT(t), mongo.IndexModel{Keys: k}); err != nil {
			t.Fatal(err)
		}
	}
	if got := keys(live.Name()); len(got) != 5 {
		t.Fatalf("indexes made as an earlier version did: %v", got)
	}
	if err := proj.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := keys(live.Name()); !slices.Equal(got, want) {
		t.Fatalf("after Setup the live catalogue's indexes are %v, want %v", got, want)
	}

	applyIn(t, proj, events, 5)
	built := liveHash(t, e.cat)
	shadow, err := proj.Shadow(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	applyIn(t, shadow, events, 5)
	if got := keys(shadowName(t, e.cat)); !slices.Equal(got, want) {
		t.Fatalf("a shadow's indexes: %v, want %v", got, want)
	}
	if err := proj.Swap(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := liveHash(t, e.cat); got != built {
		t.Errorf("swapped-in catalogue %s, want %s as built live", got, built)
	}
}
