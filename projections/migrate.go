package projections

import (
	"context"
	"embed"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/platform/pgmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key that serialises the migrations
// of processes starting together.
const migrationLock = 0x70726f6a // "proj"

// Migrate creates the schema "projections" and applies the embedded
// migrations not applied yet, under an advisory lock. Run and Reset call
// it; it is safe to call concurrently and again. Errors: the database's.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, done := migrated.Load(pool); done {
		return nil
	}
	set := pgmigrate.Set{Schema: "projections", Files: migrationFiles, LockKey: migrationLock}
	if err := pgmigrate.Up(ctx, pool, set); err != nil {
		return fmt.Errorf("projections: %w", err)
	}
	migrated.Store(pool, struct{}{})
	return nil
}

// migrated holds the pools Migrate has brought up to date, so that the
// frequent callers (Reports on every scrape) skip the migration.
var migrated sync.Map
