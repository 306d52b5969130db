package projections_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventshop/eventshop/internal/platform/pgmigrate/pgmigratetest"
	"github.com/eventshop/eventshop/projections"
)

// TestMigrateAdoptsTheOldBookkeeping: a database that the runner before
// pgmigrate brought to version 1 goes on from there; 001 would fail if
// it ran again (its table exists).
func TestMigrateAdoptsTheOldBookkeeping(t *testing.T) {
	ctx := context.Background()
	pool := newEnv(t, "memory").pool
	pgmigratetest.Legacy(t, pool, "projections", os.DirFS("."), 1)
	if err := projections.Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate on the old runner's database: %v", err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var n, distinct int
	if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM projections.schema_migrations").Scan(&n, &distinct); err != nil || n != len(files) || distinct != n {
		t.Fatalf("%d migrations recorded, %d distinct (%v), want each of the %d once", n, distinct, err, len(files))
	}
	if _, err := projections.Checkpoint(ctx, pool, "users.v1"); err != nil {
		t.Fatalf("Checkpoint after the upgrade: %v", err)
	}
	var parked *string
	if err := pool.QueryRow(ctx, "SELECT to_regclass('projections.parked')::text").Scan(&parked); err != nil || parked == nil {
		t.Fatalf("projections.parked missing after the upgrade (%v)", err)
	}
}
