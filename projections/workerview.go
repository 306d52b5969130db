package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
)

// WorkerView is the durable view of one worker that follows the log but
// is not a projection (the order process manager): entries by key, and
// the position of the log they reflect, in the projections' database.
// The zero value is not usable; build it with a pool and the worker's
// name.
type WorkerView struct {
	Pool   *pgxpool.Pool
	Worker string
}

// ErrViewMoved is Save's answer when the view's position is no longer the
// one the caller loaded or last saved: another instance of the worker
// saved since. The caller's view is stale; it should load again.
var ErrViewMoved = errors.New("projections: the worker's view was saved by another instance")

// Load returns the view's position (Start when none was saved) and its
// entries, as one snapshot. Errors: the database's.
func (v WorkerView) Load(ctx context.Context) (eventstore.Position, map[string]json.RawMessage, error) {
	if err := Migrate(ctx, v.Pool); err != nil {
		return eventstore.Start, nil, err
	}
	var at eventstore.Position
	entries := map[string]json.RawMessage{}
	err := pgx.BeginTxFunc(ctx, v.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var commit, prepare int64
		err := tx.QueryRow(ctx, `SELECT commit, prepare FROM projections.worker_checkpoints WHERE worker = $1`, v.Worker).Scan(&commit, &prepare)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		at = eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		rows, err := tx.Query(ctx, `SELECT key, data FROM projections.worker_entries WHERE worker = $1`, v.Worker)
		if err != nil {
			return err
		}
		var key string
		var data []byte
		_, err = pgx.ForEachRow(rows, []any{&key, &data}, func() error {
			entries[key] = slices.Clone(data)
			return nil
		})
		return err
	})
	if err != nil {
		return eventstore.Start, nil, fmt.Errorf("projections: load the view of %s: %w", v.Worker, err)
	}
	return at, entries, nil
}

// Save moves the view from position from to position to, writing the
// entries of put and deleting those of drop, all in one transaction.
// Errors: ErrViewMoved when the view is no longer at from; the
// database's.
func (v WorkerView) Save(ctx context.Context, from, to eventstore.Position, put map[string]json.RawMessage, drop []string) error {
	if err := Migrate(ctx, v.Pool); err != nil {
		return err
	}
	keys := slices.Collect(maps.Keys(put))
	data := make([]string, len(keys))
	for i, k := range keys {
		data[i] = string(put[k])
	}
	err := pgx.BeginFunc(ctx, v.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO projections.worker_checkpoints AS c (worker, commit, prepare) VALUES ($1, $4, $5)
			ON CONFLICT (worker) DO UPDATE SET commit = $4, prepare = $5, updated_at = now()
			WHERE c.commit = $2 AND c.prepare = $3`,
			v.Worker, int64(from.Commit), int64(from.Prepare), int64(to.Commit), int64(to.Prepare))
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return ErrViewMoved
		}
		if len(drop) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM projections.worker_entries WHERE worker = $1 AND key = ANY($2)`, v.Worker, drop); err != nil {
				return err
			}
		}
		if len(keys) > 0 {
			_, err = tx.Exec(ctx, `INSERT INTO projections.worker_entries (worker, key, data)
				SELECT $1, k, d::jsonb FROM unnest($2::text[], $3::text[]) AS u(k, d)
				ON CONFLICT (worker, key) DO UPDATE SET data = excluded.data`, v.Worker, keys, data)
		}
		return err
	})
	if errors.Is(err, ErrViewMoved) {
		return err
	}
	if err != nil {
		return fmt.Errorf("projections: save the view of %s: %w", v.Worker, err)
	}
	return nil
}

// Reset deletes the view, for a worker that starts again from the start
// of the log. Errors: the database's.
func (v WorkerView) Reset(ctx context.Context) error {
	if err := Migrate(ctx, v.Pool); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, v.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM projections.worker_checkpoints WHERE worker = $1`, v.Worker); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM projections.worker_entries WHERE worker = $1`, v.Worker)
		return err
	})
	if err != nil {
		return fmt.Errorf("projections: reset the view of %s: %w", v.Worker, err)
	}
	return nil
}
