package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Failure is what a worker (the order process manager) fails on for one
// item, such as an order: the action that failed, or the event it could
// not read, with the last error.
type Failure struct {
	// Key names the item: an order id, or the stream of an event that
	// names no order the worker could read.
	Key      string
	StreamID string
	// EventID is the event that could not be read; uuid.Nil when an
	// action failed.
	EventID   uuid.UUID
	Action    string
	Error     string
	Attempts  int
	FirstSeen time.Time
	LastSeen  time.Time
}

// Failures is the durable list of what one worker fails on, in the
// projections' database, readable from any process. The zero value is not
// usable; build it with a pool and the worker's name.
type Failures struct {
	Pool   *pgxpool.Pool
	Worker string
}

// Record notes that f.Key failed (again): a new entry, or the existing
// one with the new error and one more attempt. Errors: the database's.
func (l Failures) Record(ctx context.Context, f Failure) error {
	if err := Migrate(ctx, l.Pool); err != nil {
		return err
	}
	var event *uuid.UUID
	if f.EventID != uuid.Nil {
		event = &f.EventID
	}
	_, err := l.Pool.Exec(ctx, `INSERT INTO projections.failures AS f (worker, key, stream_id, event_id, action, error)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (worker, key) DO UPDATE SET stream_id = excluded.stream_id, event_id = excluded.event_id,
			action = excluded.action, error = excluded.error, attempts = f.attempts + 1, last_seen = now()`,
		l.Worker, f.Key, f.StreamID, event, f.Action, f.Error)
	if err != nil {
		return fmt.Errorf("projections: record a failure of %s: %w", l.Worker, err)
	}
	return nil
}

// Clear drops key's entry: it no longer fails. Errors: the database's.
func (l Failures) Clear(ctx context.Context, key string) error {
	if err := Migrate(ctx, l.Pool); err != nil {
		return err
	}
	if _, err := l.Pool.Exec(ctx, `DELETE FROM projections.failures WHERE worker = $1 AND key = $2`, l.Worker, key); err != nil {
		return fmt.Errorf("projections: clear a failure of %s: %w", l.Worker, err)
	}
	return nil
}

// Keys returns the keys of every entry, for a worker to learn at start
// what it failed on before. Errors: the database's.
func (l Failures) Keys(ctx context.Context) ([]string, error) {
	if err := Migrate(ctx, l.Pool); err != nil {
		return nil, err
	}
	rows, err := l.Pool.Query(ctx, `SELECT key FROM projections.failures WHERE worker = $1`, l.Worker)
	if err != nil {
		return nil, fmt.Errorf("projections: failures of %s: %w", l.Worker, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("projections: failures of %s: %w", l.Worker, err)
	}
	return keys, nil
}

// List returns a page of the entries, the most recent failure first, and
// how many there are. page counts from 1. Errors: the database's.
func (l Failures) List(ctx context.Context, page, limit int) ([]Failure, int, error) {
	if err := Migrate(ctx, l.Pool); err != nil {
		return nil, 0, err
	}
	out, total, err := listPage(ctx, l.Pool, "projections.failures",
		"key, stream_id, coalesce(event_id, '00000000-0000-0000-0000-000000000000'), action, error, attempts, first_seen, last_seen",
		"worker = $1", "last_seen DESC, key", []any{l.Worker}, page, limit, func(r pgx.CollectableRow) (Failure, error) {
			var f Failure
			err := r.Scan(&f.Key, &f.StreamID, &f.EventID, &f.Action, &f.Error, &f.Attempts, &f.FirstSeen, &f.LastSeen)
			return f, err
		})
	if err != nil {
		return nil, 0, fmt.Errorf("projections: failures of %s: %w", l.Worker, err)
	}
	return out, total, nil
}
