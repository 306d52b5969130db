package projections

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
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
