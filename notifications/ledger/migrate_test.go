package ledger_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/internal/platform/pgmigrate/pgmigratetest"
	"github.com/eventshop/eventshop/notifications/ledger"
)

// TestMigrateAdoptsTheOldBookkeeping: a database that the runner before
// pgmigrate brought to version 1 goes on from there; 001 would fail if
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
	if err != nil || len(versions) != 2 || versions[0] != 1 || versions[1] != 2 {
		t.Fatalf("versions recorded %v (%v), want [1 2]", versions, err)
	}
	var idx *string
	if err := pool.QueryRow(ctx, "SELECT to_regclass('notifications.ledger_event_idx')::text").Scan(&idx); err != nil || idx == nil {
		t.Fatalf("ledger_event_idx missing after the upgrade (%v)", err)
	}
}
