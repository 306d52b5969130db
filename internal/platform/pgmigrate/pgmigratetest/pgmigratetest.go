// Package pgmigratetest sets up, for tests, what the migration runners
// before pgmigrate left in a database.
package pgmigratetest

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is a connection or a pool.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Legacy applies the migrations in the directory "migrations" of files up
// to version upTo as the runners before pgmigrate did: it creates schema
// and schema.schema_migrations, then, per file, records its version and
// runs it in one transaction. Migrations that leave their tables
// unqualified need db's search_path set to schema. It fails tb on any
// error.
func Legacy(tb testing.TB, db DB, schema string, files fs.FS, upTo int) {
	tb.Helper()
	ctx := context.Background()
	table := pgx.Identifier{schema, "schema_migrations"}.Sanitize()
	if _, err := db.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()+
		"; CREATE TABLE IF NOT EXISTS "+table+" (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
		tb.Fatalf("legacy migrations of %s: %v", schema, err)
	}
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range names { // in order, as fs.Glob reads directories sorted
		number, _, _ := strings.Cut(strings.TrimPrefix(name, "migrations/"), "_")
		version, err := strconv.Atoi(number)
		if err != nil {
			tb.Fatalf("%s: name must start with its number", name)
		}
		if version > upTo {
			break
		}
		sql, err := fs.ReadFile(files, name)
		if err != nil {
			tb.Fatal(err)
		}
		err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (version) VALUES ($1) ON CONFLICT DO NOTHING", version); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, string(sql))
			return err
		})
		if err != nil {
			tb.Fatal(fmt.Errorf("legacy migration %s: %w", name, err))
		}
	}
}
