// Package pgmigrate applies a PostgreSQL schema's versioned migrations:
// the event store's, the projection runtime's and the notification
// ledger's. Each schema keeps its own versions in its own table,
// <schema>.schema_migrations (version integer, applied_at timestamptz),
// the table the runners before this package kept, so a database they
// migrated carries on where they stopped.
//
// Migrations are goose SQL files (NNN_name.sql, starting with
// "-- +goose Up"), run by goose's Provider one by one, each in its own
// transaction with the row that records it, under a session advisory lock
// so that processes starting together apply each version once.
package pgmigrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// Set is one schema's migrations.
type Set struct {
	// Schema holds the version table, created with it when missing.
	// The migrations name their tables themselves, qualified or through
	// the pool's search_path.
	Schema string
	// Files holds the migration files in its directory "migrations", as
	// a //go:embed migrations/*.sql gives them.
	Files fs.FS
	// LockKey is the advisory lock that serialises the migrations of
	// this schema. Keep the key a schema was first migrated under: a
	// process of an older release locks the same key.
	LockKey int64
}

// Up applies the migrations of set that the version table does not
// record yet, in version order, and returns once the schema is up to
// date. It is safe to call concurrently, from one process or many, and
// again. Errors: an unreadable migration file, the database's (the
// failing migration is rolled back and the ones before it stay applied).
func Up(ctx context.Context, pool *pgxpool.Pool, set Set) error {
	store, err := database.NewStoreFromQuerier(pgx.Identifier{set.Schema, "schema_migrations"}.Sanitize(), versionTable{schema: set.Schema})
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Schema, err)
	}
	files, err := fs.Sub(set.Files, "migrations")
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Schema, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectCustom, db, files,
		goose.WithStore(store),
		goose.WithSessionLocker(advisoryLock(set.LockKey)),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Schema, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", set.Schema, err)
	}
	return nil
}

// advisoryLock is a session advisory lock that waits in the database
// until it is free. goose's own PostgreSQL session locker polls with
// pg_try_advisory_lock at whole seconds, so a process that starts a
// moment after another would wait a second for migrations that took
// milliseconds.
type advisoryLock int64

func (k advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(k)); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

func (k advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", int64(k)); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// versionTable is goose's dialect.Querier for <schema>.schema_migrations.
// goose counts version 0 as applied once it has created its table; here
// version 0 is implied rather than stored, so the table holds the
// versions of migration files only, as it always has.
type versionTable struct{ schema string }

func (v versionTable) CreateTable(table string) string {
	return "CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{v.schema}.Sanitize() + ";\n" +
		"CREATE TABLE IF NOT EXISTS " + table + " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
}

// InsertVersion is given the version and true (applied).
func (versionTable) InsertVersion(table string) string {
	return "INSERT INTO " + table + " (version) SELECT $1::integer WHERE $1::integer <> 0 AND $2::boolean"
}

func (versionTable) DeleteVersion(table string) string {
	return "DELETE FROM " + table + " WHERE version = $1"
}

func (versionTable) GetMigrationByVersion(table string) string {
	return "SELECT applied_at, true FROM " + table + " WHERE version = $1"
}

func (versionTable) ListMigrations(table string) string {
	return "SELECT version, true FROM " + table + " UNION ALL SELECT 0, true ORDER BY 1 DESC"
}

func (versionTable) GetLatestVersion(table string) string {
	return "SELECT coalesce(max(version), 0) FROM " + table
}

func (v versionTable) TableExists(string) string {
	return "SELECT to_regclass(" + literal(pgx.Identifier{v.schema, "schema_migrations"}.Sanitize()) + ") IS NOT NULL"
}

// literal quotes s as an SQL string literal.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
