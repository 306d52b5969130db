package projections

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
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

// Reset deletes the checkpoint of the projection name, so that its next
// runner applies the log from the start. The projection's own tables are
// left alone: emptying them is the caller's business. Reset a projection
// that is not running; a runner that is running stops at its next batch
// (its checkpoint moved) and starts again from the beginning.
// Errors: ErrInvalidName, the database's.
func Reset(ctx context.Context, pool *pgxpool.Pool, name string) error {
	s, err := openState(ctx, pool, name)
	if err != nil {
		return err
	}
	return s.reset(ctx, name)
}

// Checkpoint returns the committed checkpoint of the projection name: the
// position of the last event its runner applied, read from the database
// so that it holds in any process (a read API without runners of its own).
// It is Start when the projection has not applied anything yet, or no
// runner has ever run on this database. Errors: ErrInvalidName, the
// database's.
func Checkpoint(ctx context.Context, pool *pgxpool.Pool, name string) (eventstore.Position, error) {
	if err := checkName(name); err != nil {
		return eventstore.Start, err
	}
	pos, err := stateStore{pool}.checkpoint(ctx, name)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == undefinedTable {
		return eventstore.Start, nil // no runner has migrated this database yet
	}
	return pos, err
}

// undefinedTable is PostgreSQL's SQLSTATE for a missing relation.
const undefinedTable = "42P01"
