// Package snapshots keeps folded states of long aggregate streams, so that
// loading one reads the snapshot and the events after it rather than the
// whole stream. A snapshot is derived data: losing one, or every one,
// costs time and never correctness, and a reader checks that a snapshot
// still matches the log before trusting it.
package snapshots

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/pgmigrate"
)

// Snapshot is an aggregate's state folded through Version of Stream,
// whose event at Version is at Position, encoded in Format.
type Snapshot struct {
	Stream   string
	Format   int
	Version  int64
	Position eventstore.Position
	Data     []byte
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock serialises the migrations of processes starting together.
const migrationLock = 0x736e6170 // "snap"

// Postgres keeps the newest snapshot of each stream and format in the
// PostgreSQL schema "snapshots". It is safe for concurrent use.
type Postgres struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	ok   bool // migrated
}

// New keeps snapshots in the database of pool; the schema is created on
// first use.
func New(pool *pgxpool.Pool) *Postgres { return &Postgres{pool: pool} }

// Migrate creates the schema and table if they are missing, as the first
// Load or Save would; a process calls it at start so that its first
// command does not pay for it. Errors: the database's.
func (p *Postgres) Migrate(ctx context.Context) error { return p.migrate(ctx) }

func (p *Postgres) migrate(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ok {
		return nil
	}
	if err := pgmigrate.Up(ctx, p.pool, pgmigrate.Set{Schema: "snapshots", Files: migrationFiles, LockKey: migrationLock}); err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	p.ok = true
	return nil
}

// Load returns the snapshot of stream in format, if there is one.
// Errors: the database's.
func (p *Postgres) Load(ctx context.Context, stream string, format int) (Snapshot, bool, error) {
	if err := p.migrate(ctx); err != nil {
		return Snapshot{}, false, err
	}
	s := Snapshot{Stream: stream, Format: format}
	var commit, prepare int64
	err := p.pool.QueryRow(ctx, `SELECT version, commit, prepare, data FROM snapshots.snapshots
		WHERE stream_id = $1 AND format = $2`, stream, format).Scan(&s.Version, &commit, &prepare, &s.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("snapshots: load %s: %w", stream, err)
	}
	s.Position = eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
	return s, true, nil
}

// Save keeps s unless a snapshot of the same stream and format at a later
// version is kept already. Errors: the database's.
func (p *Postgres) Save(ctx context.Context, s Snapshot) error {
	if err := p.migrate(ctx); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO snapshots.snapshots AS s (stream_id, format, version, commit, prepare, data)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (stream_id, format) DO UPDATE SET version = excluded.version, commit = excluded.commit,
			prepare = excluded.prepare, data = excluded.data, saved_at = now()
		WHERE s.version < excluded.version`,
		s.Stream, s.Format, s.Version, int64(s.Position.Commit), int64(s.Position.Prepare), s.Data)
	if err != nil {
		return fmt.Errorf("snapshots: save %s: %w", s.Stream, err)
	}
	return nil
}
