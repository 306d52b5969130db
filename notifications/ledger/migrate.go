package ledger

import (
	"context"
	"embed"
	"fmt"

	"github.com/eventshop/eventshop/internal/platform/pgmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key that serialises the migrations
// of notifiers starting together.
const migrationLock = 0x6e6f7469 // "noti"

// Migrate creates the schema "notifications" and applies the embedded
// migrations not applied yet, recorded in notifications.schema_migrations,
// under an advisory lock. It is safe to call concurrently and again.
// Errors: the database's.
func (l *Ledger) Migrate(ctx context.Context) error {
	set := pgmigrate.Set{Schema: "notifications", Files: migrationFiles, LockKey: migrationLock}
	if err := pgmigrate.Up(ctx, l.pool, set); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
