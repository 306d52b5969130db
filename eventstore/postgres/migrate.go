package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/platform/pgmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key that serialises migrations of
// concurrently starting processes.
const migrationLock = 0x65766e74 // "evnt"

// migrate applies the embedded migrations not applied yet to schema, the
// pool's search_path, and then checks the guards.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if err := pgmigrate.Up(ctx, pool, pgmigrate.Set{Schema: schema, Files: migrationFiles, LockKey: migrationLock}); err != nil {
		return err
	}
	return checkGuards(ctx, pool, schema)
}

// checkGuards refuses a database the store would corrupt or misread.
func checkGuards(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	// The unique index is the concurrency guard: refuse to run without it.
	var ok bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint
		WHERE conrelid = ($1 || '.events')::regclass AND contype = 'u'
		  AND pg_get_constraintdef(oid) = 'UNIQUE (stream_id, version)')`, pgx.Identifier{schema}.Sanitize()).Scan(&ok)
	if err != nil {
		return fmt.Errorf("migrate: check guard: %w", err)
	}
	if !ok {
		return fmt.Errorf("migrate: events table in schema %q lacks UNIQUE (stream_id, version); refusing to start", schema)
	}
	// The global order is the writing transaction's id. Events restored
	// into another server may carry ids that server has not reached yet:
	// they would stay unreadable, and new events would sort before them.
	var maxTx, next int64
	err = pool.QueryRow(ctx, `SELECT coalesce(max(tx_id), 0), pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM events`).Scan(&maxTx, &next)
	if err != nil {
		return fmt.Errorf("migrate: check transaction ids: %w", err)
	}
	if maxTx >= next {
		return fmt.Errorf("migrate: events carry transaction ids up to %d but this server's next transaction id is %d "+
			"(was the database restored into another server?); advance the server's transaction id past %d "+
			"(pg_resetwal -e/-x while it is stopped) before starting; refusing to start", maxTx, next, maxTx)
	}
	return nil
}
