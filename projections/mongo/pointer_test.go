package mongo_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/projections/catalogquery"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
)

// TestSlowPointerReadHonoursContexts: while MongoDB is slow to answer the
// read of the catalogue pointer, a request whose context ends gives up
// then, rather than queue behind the read; the others wait for that one
// read, and no more.
func TestSlowPointerReadHonoursContexts(t *testing.T) {
	opts, name := server(t)
	if err := mongoread.NewWithOptions(connect(t, opts).Database(name), testOptions).Projection().Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	px, through := newProxy(t, opts)
	var reads atomic.Int64
	through.SetMonitor(&event.CommandMonitor{Started: func(_ context.Context, ev *event.CommandStartedEvent) {
		if coll, ok := ev.Command.Lookup("find").StringValueOK(); ok && coll == mongoread.MetaCollection {
			reads.Add(1)
		}
	}})
	s := mongoread.NewWithOptions(connect(t, through).Database(name), mongoread.Options{PointerTTL: time.Hour})

	px.stall()
	first := make(chan error, 1)
	go func() {
		_, _, err := list(ctxT(t), s, catalogquery.ProductQuery{})
		first <- err
	}()
	px.awaitHeld(t)
	ctx, cancel := context.WithTimeout(ctxT(t), 100*time.Millisecond)
	defer cancel()
	short := make(chan error, 1)
	go func() {
		_, err := s.Product(ctx, uuid.New())
		short <- err
	}()
	select {
	case err := <-short:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a request whose deadline passed while the pointer was read: %v, want its context's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("a request with a 100ms deadline still waits after 5s, behind a slow read of the pointer")
	}
	var (
		waiters sync.WaitGroup
		failed  atomic.Int64
	)
	for range 8 {
		waiters.Go(func() {
			if _, err := s.Categories(ctxT(t)); err != nil {
				failed.Add(1)
			}
		})
	}
	px.flow()
	if err := <-first; err != nil {
		t.Errorf("the request that started the read: %v", err)
	}
	waiters.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of the requests waiting for the read failed", n)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("%d reads of the pointer document, want 1", n)
	}
}

// TestRefreshSeesASwapAtOnce is read-your-writes in a read API process
// other than the one that swapped: its cached pointer still names the
// retired collection, and Refresh makes the next query read the live one,
// even when an older read of the pointer is in flight.
func TestRefreshSeesASwapAtOnce(t *testing.T) {
	e := newEnv(t)
	e.scenario(t)
	opts, name := server(t)
	writer := mongoread.NewWithOptions(connect(t, opts).Database(name), testOptions)
	px, through := newProxy(t, opts)
	reader := mongoread.NewWithOptions(connect(t, through).Database(name), mongoread.Options{PointerTTL: time.Hour})
	proj := writer.Projection()
	applyIn(t, proj, e.log(t), 5)
	if _, err := reader.LiveCollection(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// rebuild swaps in a rebuilt catalogue, then lists a product and
	// applies it: the write whose position a client then waits for.
	rebuild := func(sku string) uuid.UUID {
		t.Helper()
		shadow, err := proj.Shadow(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		applyIn(t, shadow, e.log(t), 50)
		if err := proj.Swap(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		id := e.create(t, e.vendor, commands.CreateProduct{SKU: sku, Name: sku, Price: 100})
		events := e.log(t)
		applyIn(t, proj, events[len(events)-1:], 1)
		return uuid.MustParse(id)
	}

	added := rebuild("AFTER-1")
	if _, err := reader.Product(ctxT(t), added); !errors.Is(err, mongoread.ErrNotFound) {
		t.Fatalf("with the pointer cached before the swap: %v; want ErrNotFound, or the test shows nothing", err)
	}
	if err := reader.Refresh(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Product(ctxT(t), added); err != nil {
		t.Fatalf("after Refresh: %v", err)
	}

	// A read of the pointer that began before the swap is in flight when
	// Refresh is called: Refresh must not take its answer.
	px.stall()
	older := make(chan error, 1)
	go func() { older <- reader.Refresh(ctxT(t)) }()
	px.awaitHeld(t) // the server has answered it, with the collection live until now
	added = rebuild("AFTER-2")
	refreshed := make(chan error, 1)
	go func() { refreshed <- reader.Refresh(ctxT(t)) }()
	px.flow()
	for _, ch := range []chan error{older, refreshed} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reader.Product(ctxT(t), added); err != nil {
		t.Errorf("after a Refresh called after the second swap: %v", err)
	}
}
