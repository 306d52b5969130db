package commands_test

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/snapshots"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// readCounter counts the events ReadStream returns.
type readCounter struct {
	eventstore.Store
	n atomic.Int64
}

func (s *readCounter) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from int64, count int) ([]eventstore.Event, error) {
	evs, err := s.Store.ReadStream(ctx, stream, dir, from, count)
	s.n.Add(int64(len(evs)))
	return evs, err
}

// TestSnapshotsBoundTheLoad: a product stream that grows gets snapshots;
// a process that starts afresh (no cache) reads the newest snapshot and
// the events after it, not the whole stream, and decides as the fold of
// the whole stream does. A snapshot that does not match the log is
// passed over.
func TestSnapshotsBoundTheLoad(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	snaps := snapshots.New(pool)
	store := openPG(t, dbURL)
	const every = 50
	withSnapshots := func(c *commands.Config) { c.Snapshots, c.SnapshotEvery = snaps, every }
	e := newEnv(t, store, withSnapshots)
	v := vendor("vendor-1")
	p := e.newProduct(t, v, 1000)
	const adjustments = 260
	for i := range adjustments {
		if _, _, err := e.h.Catalog.AdjustInventory(ctx, v, p.ID, commands.NoVersion,
			product.AdjustInventory{Adjustment: int64(i%3) + 1, Reason: "recount"}); err != nil {
			t.Fatal(err)
		}
	}
	want := e.product(t, p.ID) // folded from the start, with no snapshots
	// One every 50 events from version -1: the newest at 249.
	const newest = 249
	waitFor(t, 10*time.Second, "a snapshot at version 249", func() (bool, string) {
		s, ok, err := snaps.Load(ctx, product.Stream(p.ID), product.SnapshotFormat)
		return ok && s.Version == newest, fmt.Sprintf("%d %v %v", s.Version, ok, err)
	})

	// A fresh process: the snapshot, its last event and those after it.
	counted := &readCounter{Store: store}
	fresh := commands.New(commands.Config{Store: counted, Payments: e.payments, Snapshots: snaps, SnapshotEvery: every})
	got, _, err := fresh.Catalog.Product(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := counted.n.Load(); n != want.Version-newest+1 {
		t.Errorf("a fresh process read %d events of a %d-event stream, want the snapshot's last and the %d after it",
			n, want.Version+1, want.Version-newest)
	}
	if !reflect.DeepEqual(normal(got), normal(want)) {
		t.Errorf("loaded through the snapshot:\n%+v\nfolded:\n%+v", got, want)
	}
	// It decides as the fold does: an adjustment below what is reserved
	// is refused with the same figures, another is applied on top.
	if _, _, err := fresh.Catalog.AdjustInventory(ctx, v, p.ID, commands.NoVersion,
		product.AdjustInventory{Adjustment: 5, Reason: "recount"}); err != nil {
		t.Fatal(err)
	}
	if got := e.product(t, p.ID); got.Quantity != want.Quantity+5 || got.Version != want.Version+1 {
		t.Errorf("after an adjustment through the snapshot: quantity %d version %d, want %d %d", got.Quantity, got.Version, want.Quantity+5, want.Version+1)
	}

	// A snapshot that does not match the log (its last event's position
	// is not the log's) is passed over: the stream is folded whole.
	last := readStream(t, store, product.Stream(p.ID))
	top := last[len(last)-1]
	bogus := want
	bogus.Quantity, bogus.Version = 1, top.Version
	data, err := bogus.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snaps.Save(ctx, snapshots.Snapshot{Stream: product.Stream(p.ID), Format: product.SnapshotFormat, Version: top.Version,
		Position: eventstore.Position{Commit: 1, Prepare: 1}, Data: data}); err != nil {
		t.Fatal(err)
	}
	counted.n.Store(0)
	again, _, err := commands.New(commands.Config{Store: counted, Payments: e.payments, Snapshots: snaps}).Catalog.Product(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Quantity != want.Quantity+5 || counted.n.Load() < int64(len(last)) {
		t.Errorf("with a snapshot that does not match the log: quantity %d after reading %d events, want %d from all %d",
			again.Quantity, counted.n.Load(), want.Quantity+5, len(last))
	}
}

// normal is s with its times in one form, for comparing a state restored
// from JSON with a folded one.
func normal(s product.State) product.State {
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s
}
