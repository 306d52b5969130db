package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key that serialises migrations of
// concurrently starting processes.
const migrationLock = 0x65766e74 // "evnt"

// migrate applies the embedded migrations not applied yet, in order, each in
// its own transaction, under an advisory lock.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock) //nolint:errcheck // the lock ends with the session anyway

	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()+
		"; CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range names {
		version, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, "migrations/"), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", name)
		}
		sql, err := migrationFiles.ReadFile(name)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING", version)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			_, err = tx.Exec(ctx, string(sql))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return checkGuards(ctx, conn, schema)
}

// checkGuards refuses a database the store would corrupt or misread.
func checkGuards(ctx context.Context, conn *pgxpool.Conn, schema string) error {
	// The unique index is the concurrency guard: refuse to run without it.
	var ok bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint
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
	err = conn.QueryRow(ctx, `SELECT coalesce(max(tx_id), 0), pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM events`).Scan(&maxTx, &next)
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
