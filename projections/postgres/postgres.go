// Package postgres holds the PostgreSQL read models of the read API —
// users, orders with their items and the vendors of the products in
// them, and the product catalogue with its counts and search — as
// projections (see package projections) that build them from the event
// log; a Store that answers the read API's user and order queries from
// them, and a Catalog its catalogue queries, in the shapes of
// internal/platform/resource.
//
// Every row carries the version of its aggregate's stream, and each write
// applies only when the event's version is newer, so applying a batch
// again (a replay, a retried batch) changes nothing.
package postgres

import (
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/projections"
)

// ErrNotFound is returned for a user or order the read model does not
// hold.
var ErrNotFound = errors.New("not found in read model")

// Schema is the PostgreSQL schema holding the read models.
const Schema = "readmodel"

// Store answers queries from the read models.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store reading through pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Projections returns the projections that build the read models:
// UsersProjection, OrdersProjection and ProductsProjection.
func (s *Store) Projections() []projections.Projection {
	return []projections.Projection{UsersProjection{}, OrdersProjection{}, ProductsProjection{}}
}

// idOf parses the id after prefix in stream; ok is false when it is not
// a UUID.
func idOf(stream, prefix string) (uuid.UUID, bool) {
	id, err := uuid.Parse(stream[len(prefix):])
	return id, err == nil
}

// paginate normalises pagination: page from 1, limit 1 to MaxLimit, default
// DefaultLimit, and returns the offset.
func paginate(p, limit int) (int, int) {
	if p < 1 {
		p = 1
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	return limit, (p - 1) * limit
}

// Pagination bounds of API.md. The read API refuses a limit over
// MaxLimit with 422; the Store clamps it.
const (
	DefaultLimit = 10
	MaxLimit     = 100
)
