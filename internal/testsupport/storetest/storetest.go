// Package storetest gives a test a database of its own (internal/testsupport/pgtest)
// holding a PostgreSQL event store, and a pool on the same database for
// what lives beside the log: checkpoints, read models, locks.
package storetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	pgstore "github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// Postgres returns a pool on a fresh database and an event store in it,
// both closed when tb ends. The store polls every 50 ms besides its
// notifications, and logs nothing.
func Postgres(tb testing.TB) (*pgxpool.Pool, *pgstore.Store) {
	tb.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(tb)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	s, err := pgstore.Open(ctx, url, pgstore.Options{PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return pool, s
}
