package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/testsupport/testwait"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/projections/catalogquery"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
)

// collections lists the catalogue generations in the database.
func collections(t *testing.T, s *mongoread.Store) []string {
	t.Helper()
	coll, err := s.LiveCollection(ctxT(t))
	if err != nil || coll == nil {
		t.Fatalf("live collection: %v, %v", coll, err)
	}
	all, err := coll.Database().ListCollectionNames(ctxT(t), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(n string) bool { return n == mongoread.MetaCollection })
}

// TestShadowSwap: a shadow built from the log while the live catalogue
// keeps serving is, once swapped in, equal to it byte for byte; readers
// see the old complete catalogue until the swap and the new one after it;
// the retired collection is dropped after its grace.
func TestShadowSwap(t *testing.T) {
	e := newEnv(t)
	live, _, _, _ := e.scenario(t)
	events := e.log(t)
	proj := e.cat.Projection()
	if err := proj.Swap(ctxT(t)); !errors.Is(err, mongoread.ErrNoShadow) {
		t.Fatalf("swap with no shadow: %v, want ErrNoShadow", err)
	}
	for range 2 { // Setup is idempotent
		if err := proj.Setup(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	applyIn(t, proj, events, 5)
	before := liveHash(t, e.cat)
	old, err := e.cat.LiveCollection(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	listing := func() string {
		items, total, err := list(ctxT(t), e.cat, catalogquery.ProductQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return dump(items) + dump(total)
	}
	wantListing := listing()

	// An abandoned rebuild leaves a shadow behind; the next one drops it.
	stale, err := proj.Shadow(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	applyIn(t, stale, events[:3], 3)
	shadow, err := proj.Shadow(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if shadow.Name() != mongoread.ProjectionName {
		t.Errorf("shadow's name %q", shadow.Name())
	}
	if err := shadow.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := proj.Setup(ctxT(t)); err != nil { // a runner restarting mid-rebuild
		t.Fatal(err)
	}
	if n := len(collections(t, e.cat)); n != 2 {
		t.Errorf("with a rebuild under way: %d catalogue collections %v, want the live one and the shadow", n, collections(t, e.cat))
	}
	for i := 0; i < len(events); i += 4 {
		applyIn(t, shadow, events[i:min(i+4, len(events))], 4)
		if got := listing(); got != wantListing {
			t.Fatalf("during the rebuild, after %d events, readers see %s, want the old catalogue %s", i+4, got, wantListing)
		}
	}
	// A reader in another process, and its projection, which did not
	// build this shadow and may not swap it in.
	other := mongoread.NewWithOptions(old.Database(), testOptions)
	if err := other.Projection().Swap(ctxT(t)); !errors.Is(err, mongoread.ErrNoShadow) {
		t.Errorf("another process's swap: %v, want ErrNoShadow", err)
	}
	if err := proj.Swap(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	now, err := e.cat.LiveCollection(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if now.Name() == old.Name() {
		t.Fatalf("still reading %s after the swap", old.Name())
	}
	if after := liveHash(t, e.cat); after != before {
		t.Errorf("rebuilt catalogue %s, live one was %s", after, before)
	}
	if got := listing(); got != wantListing {
		t.Errorf("after the swap readers see %s, want %s", got, wantListing)
	}
	if err := proj.Swap(ctxT(t)); !errors.Is(err, mongoread.ErrNoShadow) {
		t.Errorf("a second swap: %v, want ErrNoShadow", err)
	}
	testwait.Until(t, 5*time.Second, func() string {
		coll, err := other.LiveCollection(ctxT(t))
		switch {
		case err != nil:
			return err.Error()
		case coll == nil || coll.Name() != now.Name():
			return "the other process does not read " + now.Name() + " yet"
		}
		return ""
	})

	// The live projection now writes the new collection, and drops the
	// old one once its grace is over.
	price := 1234
	if _, _, err := e.h.Catalog.UpdateProduct(ctxT(t), e.vendor, live, commands.NoVersion, product.Update{Price: centsPtr(price)}); err != nil {
		t.Fatal(err)
	}
	events = e.log(t)
	applyIn(t, proj, events[len(events)-1:], 1)
	if p, err := e.cat.Product(ctxT(t), uuid.MustParse(live)); err != nil || p.Price != 1234 {
		t.Errorf("an update after the swap: %s, %v", dump(p), err)
	}
	testwait.Until(t, 10*time.Second, func() string {
		applyIn(t, proj, events[len(events)-1:], 1) // a no-op batch, as a live runner sends
		if got := collections(t, e.cat); !slices.Equal(got, []string{now.Name()}) {
			return "catalogue collections " + dump(got) + ", want only " + now.Name()
		}
		return ""
	})
}

func centsPtr(c int) *domain.Cents { v := domain.Cents(c); return &v }

// TestRunner: the catalogue projection under the projections runner,
// through a crash between apply and checkpoint and a rebuild, with a
// reader that never sees a product missing.
func TestRunner(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	events := e.log(t)
	proj := e.cat.Projection()
	// The crash: the whole log was applied but no checkpoint was saved, so
	// the runner starts from the beginning and applies it all again.
	applyIn(t, proj, events, 6)
	crashed := liveHash(t, e.cat)

	ctx, cancel := context.WithCancel(context.Background())
	runner := projections.NewSinkRunner(e.pool, e.store, proj, projections.Options{BatchSize: 5,
		LockPoll: 50 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: quiet()})
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the runner did not stop within 10s")
		}
	})
	last := events[len(events)-1].Position
	caughtUp := func() func() string {
		return func() string {
			cp, err := projections.Checkpoint(ctxT(t), e.pool, mongoread.ProjectionName)
			if err != nil {
				return err.Error()
			}
			if cp.Less(last) {
				return "checkpoint " + cp.String() + " before " + last.String()
			}
			if st := runner.Status(); st.Failing != nil {
				return "failing: " + st.LastError
			}
			return ""
		}
	}
	testwait.Until(t, 20*time.Second, caughtUp())
	if got := liveHash(t, e.cat); got != crashed {
		t.Fatalf("after the runner re-applied the log: %s, want %s", got, crashed)
	}

	// New products reach the catalogue through the runner.
	for i := range 3 {
		e.create(t, e.vendor, commands.CreateProduct{SKU: "NEW-" + string(rune('A'+i)), Name: "New", Price: 100, Category: "new"})
	}
	events = e.log(t)
	last = events[len(events)-1].Position
	testwait.Until(t, 20*time.Second, caughtUp())
	_, total, err := list(ctxT(t), e.cat, catalogquery.ProductQuery{})
	if err != nil || total != 5 {
		t.Fatalf("after three more products: %d listed, %v; want 5", total, err)
	}
	before := liveHash(t, e.cat)
	old, _ := e.cat.LiveCollection(ctxT(t))

	// The rebuild, with a reader watching all along.
	var (
		short   atomic.Int64
		reads   atomic.Int64
		readers sync.WaitGroup
		stop    = make(chan struct{})
	)
	readers.Go(func() {
		ctx := ctxT(t)
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			reads.Add(1)
			if _, total, err := list(ctx, e.cat, catalogquery.ProductQuery{}); err != nil || total != 5 {
				short.Add(1)
			}
		}
	})
	if err := projections.RequestRebuild(ctxT(t), e.pool, mongoread.ProjectionName); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 30*time.Second, func() string {
		reps, err := projections.Reports(ctxT(t), e.pool, []string{mongoread.ProjectionName})
		if err != nil {
			return err.Error()
		}
		if reps[0].RebuiltAt.IsZero() || reps[0].Rebuild != "" {
			return "rebuild " + dump(reps[0])
		}
		return ""
	})
	close(stop)
	readers.Wait()
	if n := short.Load(); n > 0 || reads.Load() == 0 {
		t.Errorf("%d of %d reads during the rebuild saw an incomplete catalogue or failed", n, reads.Load())
	}
	now, _ := e.cat.LiveCollection(ctxT(t))
	if now.Name() == old.Name() {
		t.Errorf("the rebuild did not swap in a new collection")
	}
	if got := liveHash(t, e.cat); got != before {
		t.Errorf("rebuilt catalogue %s, live one was %s", got, before)
	}

	// The runner goes on in the new collection, and the old one goes once
	// its grace is over (at the first batch after it).
	after := e.create(t, e.vendor, commands.CreateProduct{SKU: "AFTER-1", Name: "After", Price: 100})
	testwait.Until(t, 20*time.Second, func() string {
		if _, total, err := list(ctxT(t), e.cat, catalogquery.ProductQuery{}); err != nil || total != 6 {
			return "after the rebuild, a new product: " + dump(total) + " listed"
		}
		return ""
	})
	testwait.Until(t, 20*time.Second, func() string {
		if got := collections(t, e.cat); !slices.Equal(got, []string{now.Name()}) {
			if _, _, err := e.h.Catalog.AdjustInventory(ctxT(t), e.vendor, after, commands.NoVersion,
				product.AdjustInventory{Adjustment: 1, Reason: "a batch for the runner"}); err != nil {
				t.Fatal(err)
			}
			return "catalogue collections " + dump(got) + ", want only " + now.Name()
		}
		return ""
	})
}

// TestShadowFlushesAlong: a shadow that writes its documents out whenever
// a few are waiting (a catalogue larger than it keeps in memory) and goes
// on from them still swaps in a catalogue equal to the live one.
func TestShadowFlushesAlong(t *testing.T) {
	mongoread.SetShadowFlushAt(t, 2)
	e := newEnv(t)
	e.scenario(t)
	for i := range 5 {
		e.create(t, e.vendor, commands.CreateProduct{SKU: fmt.Sprintf("FLUSH-%d", i), Name: "Flushed", Price: 100, Quantity: 3})
	}
	events := e.log(t)
	proj := e.cat.Projection()
	if err := proj.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	applyIn(t, proj, events, 5)
	want := liveHash(t, e.cat)
	shadow, err := proj.Shadow(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := shadow.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	applyIn(t, shadow, events, 3)
	if err := proj.Swap(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := liveHash(t, e.cat); got != want {
		t.Fatalf("swapped-in catalogue %s, want the live one %s", got, want)
	}
}
