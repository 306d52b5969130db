package postgres_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/platform/pgmigrate/pgmigratetest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// TestOpenAdoptsTheOldBookkeeping: a database that the runner before
// pgmigrate migrated, in a schema of its own, opens without 001 running
// again (it would fail: its table exists), and keeps its events.
func TestOpenAdoptsTheOldBookkeeping(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = "shop_events"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pgmigratetest.Legacy(t, conn, "shop_events", os.DirFS("."), 1)
	if _, err := conn.Exec(ctx, `INSERT INTO events (event_id, stream_id, version, type, schema_version, data, created_at)
		VALUES (gen_random_uuid(), 'old-1', 0, 'x.a', 1, '{}', now())`); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, db, postgres.Options{Schema: "shop_events"})
	if err != nil {
		t.Fatalf("Open on the old runner's database: %v", err)
	}
	defer s.Close()
	var versions int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM shop_events.schema_migrations").Scan(&versions); err != nil || versions != 1 {
		t.Fatalf("%d versions recorded (%v), want 1", versions, err)
	}
	events := eventstoretest.ReadAllPrefix(t, s, "old-", 10)
	if len(events) != 1 || events[0].StreamID != "old-1" {
		t.Fatalf("events after the upgrade: %v, want the one written before", events)
	}
}

// TestOpenConcurrently: processes opening one fresh database together all
// start, and the migration runs once.
func TestOpenConcurrently(t *testing.T) {
	db := pgtest.NewDatabase(t)
	const n = 6
	stores := make(chan *postgres.Store, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), db, postgres.Options{})
			if err != nil {
				errs <- err
				return
			}
			stores <- s
		})
	}
	wg.Wait()
	close(stores)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var s *postgres.Store
	for each := range stores {
		if s == nil {
			s = each
			continue
		}
		each.Close()
	}
	if s == nil {
		t.FailNow()
	}
	defer s.Close()
	var versions int
	if err := s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM eventstore.schema_migrations").Scan(&versions); err != nil || versions != 1 {
		t.Fatalf("%d versions recorded (%v), want 1", versions, err)
	}
	eventstoretest.MustAppend(t, s, "concurrent-1", eventstore.NoStream, eventstoretest.Ev("x.a", 1))
}
