package ledger

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the transaction-level advisory lock key that serialises
// the migrations of notifiers starting together.
const migrationLock = 0x6e6f7469 // "noti"

// Migrate creates the schema "notifications" and applies the embedded
// migrations not applied yet, recorded in notifications.schema_migrations,
// in one transaction under an advisory lock. It is safe to call
// concurrently and again. Errors: the database's.
func (l *Ledger) Migrate(ctx context.Context) error {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	sort.Strings(names)
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS notifications;
			CREATE TABLE IF NOT EXISTS notifications.schema_migrations (
				version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		for _, name := range names {
			if err := applyMigration(ctx, tx, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	return nil
}

// applyMigration runs the migration file name in tx unless its version,
// the number its name starts with, is recorded as applied already.
func applyMigration(ctx context.Context, tx pgx.Tx, name string) error {
	base := strings.TrimPrefix(name, "migrations/")
	number, _, _ := strings.Cut(base, "_")
	version, err := strconv.Atoi(number)
	if err != nil {
		return fmt.Errorf("name must start with its number: %w", err)
	}
	tag, err := tx.Exec(ctx, "INSERT INTO notifications.schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING", version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	sql, err := migrationFiles.ReadFile(name)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, string(sql))
	return err
}
