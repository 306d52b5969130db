package projections

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the transaction-level advisory lock key that serialises
// the migrations of processes starting together.
const migrationLock = 0x70726f6a // "proj"

// Migrate creates the schema "projections" and applies the embedded
// migrations not applied yet, in one transaction under an advisory lock.
// Run and Reset call it; it is safe to call concurrently and again.
// Errors: the database's.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, done := migrated.Load(pool); done {
		return nil
	}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS projections;
			CREATE TABLE IF NOT EXISTS projections.schema_migrations (
				version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		for _, name := range names {
			version, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, "migrations/"), "_", 2)[0])
			if err != nil {
				return fmt.Errorf("%s: name must start with its number", name)
			}
			tag, err := tx.Exec(ctx, "INSERT INTO projections.schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING", version)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			sql, err := migrationFiles.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("projections: migrate: %w", err)
	}
	migrated.Store(pool, struct{}{})
	return nil
}

// migrated holds the pools Migrate has brought up to date, so that the
// frequent callers (Reports on every scrape) skip the transaction.
var migrated sync.Map
