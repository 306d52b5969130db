package ledger_test

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/internal/platform/pgmigrate/pgmigratetest"
	"github.com/eventshop/eventshop/notifications/ledger"
)

// TestMigrateAdoptsTheOldBookkeeping: a database that the runner before
// pgmigrate brought to version 1 goes on from there, through every later
// migration; 001 would fail if
// it ran again (its table exists).
func TestMigrateAdoptsTheOldBookkeeping(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	pgmigratetest.Legacy(t, pool, "notifications", os.DirFS("."), 1)
	if err := ledger.New(pool).Migrate(ctx); err != nil {
		t.Fatalf("Migrate on the old runner's database: %v", err)
	}
	rows, _ := pool.Query(ctx, "SELECT version FROM notifications.schema_migrations ORDER BY version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	files, _ := os.ReadDir("migrations")
	want := make([]int32, len(files))
	for i := range want {
		want[i] = int32(i + 1)
	}
	if err != nil || len(want) < 2 || !slices.Equal(versions, want) {
		t.Fatalf("versions recorded %v (%v), want %v", versions, err, want)
	}
	var idx *string
	if err := pool.QueryRow(ctx, "SELECT to_regclass('notifications.ledger_event_idx')::text").Scan(&idx); err != nil || idx == nil {
		t.Fatalf("ledger_event_idx missing after the upgrade (%v)", err)
	}
}
