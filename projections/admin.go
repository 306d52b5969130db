package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
)

// Admin is the administration of the projections whose checkpoints and
// parked lists live in Pool's database, from any process: the reports,
// rebuild requests and the parked lists' requests of this package, as
// methods, for the admin routes.
type Admin struct{ Pool *pgxpool.Pool }

// Reports is Reports on a.Pool.
func (a Admin) Reports(ctx context.Context, names []string) ([]Report, error) {
	return Reports(ctx, a.Pool, names)
}

// RequestRebuild is RequestRebuild on a.Pool.
func (a Admin) RequestRebuild(ctx context.Context, name string) error {
	return RequestRebuild(ctx, a.Pool, name)
}

// Parked is Parked on a.Pool.
func (a Admin) Parked(ctx context.Context, name, status string, page, limit int) ([]ParkedEvent, int, error) {
	return Parked(ctx, a.Pool, name, status, page, limit)
}

// RequestRetry is RequestRetry on a.Pool.
func (a Admin) RequestRetry(ctx context.Context, name string, id uuid.UUID, by string) (ParkedEvent, error) {
	return RequestRetry(ctx, a.Pool, name, id, by)
}

// RequestSkip is RequestSkip on a.Pool.
func (a Admin) RequestSkip(ctx context.Context, name string, id uuid.UUID, by, reason string) (ParkedEvent, error) {
	return RequestSkip(ctx, a.Pool, name, id, by, reason)
}

// Reports returns the reports of the named projections, in that order;
// a projection that never ran gets a zero report in state "stopped".
// Errors: the database's.
func Reports(ctx context.Context, pool *pgxpool.Pool, names []string) ([]Report, error) {
	if err := Migrate(ctx, pool); err != nil {
		return nil, err
	}
	return stateStore{pool}.reports(ctx, names)
}

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

// Checkpoint is the committed checkpoint of the projection name
// (package-level Checkpoint).
func (a Admin) Checkpoint(ctx context.Context, name string) (eventstore.Position, error) {
	return Checkpoint(ctx, a.Pool, name)
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

// RequestRebuild files a rebuild of the projection name for its active
// runner, in whichever process that runs, to pick up: it builds a shadow
// copy of the read model from the start of the log while the live one
// keeps serving, and swaps it in once caught up. A request already
// pending is left as it is. Errors: ErrInvalidName, the database's.
func RequestRebuild(ctx context.Context, pool *pgxpool.Pool, name string) error {
	s, err := openState(ctx, pool, name)
	if err != nil {
		return err
	}
	return s.requestRebuild(ctx, name)
}

// Parked returns a page of the parked list of the projection name, by
// stream and version (the order its entries are retried in), and how many
// entries it holds. status, when not empty, keeps only entries of that
// ParkedStatus. page counts from 1. Errors: ErrInvalidName, the
// database's.
func Parked(ctx context.Context, pool *pgxpool.Pool, name, status string, page, limit int) ([]ParkedEvent, int, error) {
	s, err := openState(ctx, pool, name)
	if err != nil {
		return nil, 0, err
	}
	return s.parked(ctx, name, status, page, limit)
}

// RequestRetry files, for the active runner of the projection name, a
// retry of the stream of the parked (or halted) event id: its parked
// events are applied again in order. by names who asks. It returns the
// entry as it is now. Errors: ErrInvalidName, ErrNotParked, the
// database's.
func RequestRetry(ctx context.Context, pool *pgxpool.Pool, name string, id uuid.UUID, by string) (ParkedEvent, error) {
	s, err := openState(ctx, pool, name)
	if err != nil {
		return ParkedEvent{}, err
	}
	return s.requestAction(ctx, name, id, ActionRetry, by, "")
}

// RequestSkip files, for the active runner of the projection name, a skip
// of the parked (or halted) event id, which must be the first of its
// stream: it is recorded as skipped by by for reason, and the stream's
// later parked events are then applied in order. Errors: ErrInvalidName,
// ErrNotParked, *NotFirstError, ErrInvalidReason, the database's.
func RequestSkip(ctx context.Context, pool *pgxpool.Pool, name string, id uuid.UUID, by, reason string) (ParkedEvent, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || utf8.RuneCountInString(reason) > MaxSkipReason || strings.IndexFunc(reason, unicode.IsControl) >= 0 {
		return ParkedEvent{}, fmt.Errorf("%w: give a reason of 1 to %d characters without control characters", ErrInvalidReason, MaxSkipReason)
	}
	s, err := openState(ctx, pool, name)
	if err != nil {
		return ParkedEvent{}, err
	}
	return s.requestAction(ctx, name, id, ActionSkip, by, reason)
}
