package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/notifications/ledger"
)

// TestBatchStatementsReadByKeyAsTheLedgerGrows: the statements that mark
// and give back a batch find its rows by their ids however the ledger
// has grown since the connection first ran them. A process starts on an
// empty ledger, so a plan its connection keeps from then on reads the
// whole table; under a shop's traffic that made recording a batch sent
// cost a scan of every mail ever claimed (4 ms a batch after 20,000
// mails, and rising). One connection, so that it is the one whose plans
// were made on the empty table; 30,000 rows are then added behind the
// statistics' back, as traffic adds them between two autovacuum runs.
func TestBatchStatementsReadByKeyAsTheLedgerGrows(t *testing.T) {
	ctx := context.Background()
	pool := newPoolOf(t, 1)
	l := ledger.New(pool)
	if err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE notifications.ledger SET (autovacuum_enabled = off)`); err != nil {
		t.Fatal(err)
	}
	batch := func() {
		t.Helper()
		user := uuid.New()
		ns := make([]ledger.Notification, 16)
		for i := range ns {
			ns[i] = email(user)
		}
		got, err := l.ClaimMany(ctx, ns, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		marks := make([]ledger.Mark, len(got))
		for i, c := range got {
			marks[i] = ledger.Mark{ID: c.Row.ID, Attempt: c.Row.Attempts}
		}
		if applied, err := l.MarkSentMany(ctx, marks[:8]); err != nil || len(applied) != 8 {
			t.Fatalf("marked %d of 8: %v", len(applied), err)
		}
		if err := l.Release(ctx, marks[8:]); err != nil {
			t.Fatal(err)
		}
		// Claimed again, the sent half is read back (not won).
		if _, err := l.ClaimMany(ctx, ns, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.List(ctx, ledger.Query{UserID: &user, Page: 2, Limit: 5}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 { // past the plan cache's five custom plans
		batch()
	}
	if _, err := pool.Exec(ctx, `INSERT INTO notifications.ledger (id, key, user_id, event_id, event_type, template, recipient, subject, message_id, status, sent_at)
		SELECT gen_random_uuid(), 'k' || i, gen_random_uuid(), gen_random_uuid(), 'order.paid', 'receipt', 'a@example.com', 's', '<m' || i || '@x>', 'sent', now()
		FROM generate_series(1, 30000) AS i`); err != nil {
		t.Fatal(err)
	}
	before := seqScans(t, pool)
	batch()
	if n := seqScans(t, pool) - before; n != 0 {
		t.Fatalf("one batch scanned the whole ledger %d times", n)
	}
}

// seqScans is how often the ledger was read whole, as the statistics
// have it once pool's one connection has reported its own.
func seqScans(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT pg_stat_clear_snapshot(), seq_scan FROM pg_stat_user_tables WHERE schemaname = 'notifications' AND relname = 'ledger'`).Scan(nil, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
