package ledger_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/notifications/ledger"
)

// holders lists the backends holding advisory locks in the database.
func holders(t *testing.T, pool *pgxpool.Pool) []int32 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// TestHoldEndsWithItsProcess: a row claimed under a hold stays the
// holder's while the hold lives, for claims with and without a hold of
// their own; once the hold is released (its process gone) the next claim
// takes it over at once, long before its lease runs out. A hold whose
// connection is cut takes its lock again, and its rows are its own again.
// A row waiting before a retry keeps its wait when its holder is gone.
func TestHoldEndsWithItsProcess(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	l := ledger.New(pool)
	if err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	a, releaseA, err := l.Hold(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	b, releaseB, err := l.Hold(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseB()
	n := email(uuid.Must(uuid.NewV7()))
	claim(t, a, n, time.Hour, ledger.Won)
	claim(t, b, n, time.Hour, ledger.Busy)
	claim(t, l, n, time.Hour, ledger.Busy)

	releaseA()
	row := claim(t, b, n, time.Hour, ledger.Won)
	if row.Attempts != 2 {
		t.Fatalf("taken over at attempt %d, want 2", row.Attempts)
	}

	// b's lock connection is cut, as a PostgreSQL restart would: it
	// takes the lock again, and then its row is its own again.
	before := holders(t, pool)
	if len(before) != 1 {
		t.Fatalf("lock holders %v, want b's alone", before)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, before[0]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for now := holders(t, pool); len(now) != 1 || now[0] == before[0]; now = holders(t, pool) {
		if time.Now().After(deadline) {
			t.Fatalf("the hold did not take its lock again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	claim(t, l, n, time.Hour, ledger.Busy)

	// A row waiting before a retry keeps waiting when its holder is gone.
	c, releaseC, err := l.Hold(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	m := email(uuid.Must(uuid.NewV7()))
	r := claim(t, c, m, time.Hour, ledger.Won)
	if ok, err := c.MarkRetrying(ctx, r.ID, r.Attempts, "421 try later", time.Hour); err != nil || !ok {
		t.Fatalf("mark retrying: %v %v", ok, err)
	}
	releaseC()
	claim(t, b, m, time.Hour, ledger.Busy)
}
