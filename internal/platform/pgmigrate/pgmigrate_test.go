package pgmigrate_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/platform/pgmigrate"
	"github.com/eventshop/eventshop/internal/platform/pgmigrate/pgmigratetest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// migrations are three versions of schema "shop". Each records that it
// ran in shop.ran, and would fail if it ran twice (its table or its row
// exists already).
var migrations = fstest.MapFS{
	"migrations/001_ran.sql": {Data: []byte("-- +goose Up\nCREATE TABLE shop.ran (version integer PRIMARY KEY);\nINSERT INTO shop.ran VALUES (1);\n")},
	"migrations/002_a.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE shop.a (id integer);\nINSERT INTO shop.ran VALUES (2);\n")},
	"migrations/003_b.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE shop.b (id integer);\nINSERT INTO shop.ran VALUES (3);\n")},
}

var shop = pgmigrate.Set{Schema: "shop", Files: migrations, LockKey: 0x73686f70}

func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// versions returns the versions in shop.schema_migrations, and in
// shop.ran the versions whose SQL ran, each in order.
func versions(t *testing.T, pool *pgxpool.Pool) (recorded, ran []int) {
	t.Helper()
	for _, q := range []struct {
		sql string
		out *[]int
	}{{"SELECT version FROM shop.schema_migrations ORDER BY version", &recorded}, {"SELECT version FROM shop.ran ORDER BY version", &ran}} {
		rows, _ := pool.Query(context.Background(), q.sql)
		v, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		*q.out = v
	}
	return recorded, ran
}

func TestUpFreshAndAgain(t *testing.T) {
	pool := newPool(t, pgtest.NewDatabase(t))
	for range 2 {
		if err := pgmigrate.Up(context.Background(), pool, shop); err != nil {
			t.Fatal(err)
		}
	}
	recorded, ran := versions(t, pool)
	if want := []int{1, 2, 3}; !slices.Equal(recorded, want) || !slices.Equal(ran, want) {
		t.Fatalf("recorded %v, ran %v; want each of %v once, and no version 0 recorded", recorded, ran, want)
	}
}

// TestAdoptsTheOldBookkeeping: a database the runners before pgmigrate
// brought to version 2 goes on from there: 1 and 2 do not run again,
// 3 does.
func TestAdoptsTheOldBookkeeping(t *testing.T) {
	pool := newPool(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	pgmigratetest.Legacy(t, pool, "shop", migrations, 2)
	if err := pgmigrate.Up(ctx, pool, shop); err != nil {
		t.Fatalf("Up on the old runners' database: %v", err)
	}
	recorded, ran := versions(t, pool)
	if want := []int{1, 2, 3}; !slices.Equal(recorded, want) || !slices.Equal(ran, want) {
		t.Fatalf("recorded %v, ran %v; want each of %v once", recorded, ran, want)
	}
}

// TestUpConcurrently: processes starting together on a fresh database
// all succeed, and each version runs once.
func TestUpConcurrently(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 8
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		pools[i] = newPool(t, url)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, pool := range pools {
		wg.Go(func() { errs <- pgmigrate.Up(context.Background(), pool, shop) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	recorded, ran := versions(t, pools[0])
	if want := []int{1, 2, 3}; !slices.Equal(recorded, want) || !slices.Equal(ran, want) {
		t.Fatalf("recorded %v, ran %v; want each of %v once", recorded, ran, want)
	}
}

// TestFailedMigrationIsRolledBack: a migration that fails leaves neither
// its changes nor its version, and the ones before it stay applied.
func TestFailedMigrationIsRolledBack(t *testing.T) {
	pool := newPool(t, pgtest.NewDatabase(t))
	broken := fstest.MapFS{
		"migrations/001_ran.sql": migrations["migrations/001_ran.sql"],
		"migrations/002_a.sql":   {Data: []byte("-- +goose Up\nINSERT INTO shop.ran VALUES (2);\nSELECT no_such_function();\n")},
	}
	if err := pgmigrate.Up(context.Background(), pool, pgmigrate.Set{Schema: "shop", Files: broken, LockKey: shop.LockKey}); err == nil {
		t.Fatal("Up with a failing migration succeeded")
	}
	recorded, ran := versions(t, pool)
	if want := []int{1}; !slices.Equal(recorded, want) || !slices.Equal(ran, want) {
		t.Fatalf("recorded %v, ran %v; want %v", recorded, ran, want)
	}
}
