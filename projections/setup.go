package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// setupLock serialises the Setup of projections starting together:
// concurrent CREATE SCHEMA/TABLE IF NOT EXISTS can still collide.
const setupLock = 0x72656164 // "read"

// setup runs the projection's Setup: a Projection's in its schema, in one
// transaction; a sink's on the sink.
func (r *Runner) setup(ctx context.Context) error {
	if r.sink != nil {
		return r.sink.Setup(ctx)
	}
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error { return r.setupIn(ctx, tx, r.p.Schema()) })
}

// Setup creates p's schema and tables if they are missing, as its runner
// does when it becomes active, after Migrate (the tables may use what the
// migrations create). A read API calls it at start, so that it answers
// from empty tables rather than failing before any runner ran. Errors:
// the database's.
func Setup(ctx context.Context, pool *pgxpool.Pool, p Projection) error {
	if err := checkName(p.Name()); err != nil {
		return err
	}
	if err := Migrate(ctx, pool); err != nil {
		return err
	}
	r := &Runner{p: p, name: p.Name()}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return r.setupIn(ctx, tx, p.Schema()) }); err != nil {
		return fmt.Errorf("projections: set up %s: %w", p.Name(), err)
	}
	return nil
}

// setupIn creates schema and runs the projection's Setup in it, in tx.
func (r *Runner) setupIn(ctx context.Context, tx pgx.Tx, schema string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", setupLock); err != nil {
		return fmt.Errorf("setup lock: %w", err)
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	if err := useSchema(ctx, tx, schema); err != nil {
		return err
	}
	return r.p.Setup(ctx, tx)
}

// useSchema makes schema the search_path for the rest of tx.
func useSchema(ctx context.Context, tx pgx.Tx, schema string) error {
	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("search_path %s: %w", schema, err)
	}
	return nil
}
