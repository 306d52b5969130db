package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Pagination bounds of API.md, as the other read models have them.
const (
	DefaultLimit = 10
	MaxLimit     = 100
)

// Query selects a page of notifications.
type Query struct {
	// UserID, when set, keeps the notifications of that user only.
	UserID *uuid.UUID
	// Page counts from 1 (less is 1); Limit is 1 to MaxLimit (0 or less is
	// DefaultLimit, more is MaxLimit).
	Page, Limit int
}

// List returns a page of the notifications q selects, newest first
// (created_at, then id, descending), and how many it selects in all. It
// lists every status, 'sending' included. Errors: the database's.
func (l *Ledger) List(ctx context.Context, q Query) ([]Notification, int, error) {
	page, limit := max(q.Page, 1), q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	offset := (page - 1) * limit

	// A query text per case rather than "$1 IS NULL OR user_id = $1", whose
	// generic plan could not use the user index.
	where, args := "", []any{}
	if q.UserID != nil {
		where, args = " WHERE user_id = $1", []any{*q.UserID}
	}
	n := len(args)
	var total int
	out := []Notification{}
	var b pgx.Batch
	b.Queue("SELECT count(*) FROM notifications.ledger"+where, args...).
		QueryRow(func(r pgx.Row) error { return r.Scan(&total) })
	b.Queue("SELECT "+columns+" FROM notifications.ledger"+where+
		fmt.Sprintf(" ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d", n+1, n+2), append(args, limit, offset)...).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				row, err := scanRow(rows)
				if err != nil {
					return err
				}
				out = append(out, row)
			}
			return rows.Err()
		})
	if err := l.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, 0, fmt.Errorf("ledger: list: %w", err)
	}
	return out, total, nil
}

// Get returns notification id. Errors: ErrNotFound, the database's.
func (l *Ledger) Get(ctx context.Context, id uuid.UUID) (Notification, error) {
	n, err := scanRow(l.pool.QueryRow(ctx, "SELECT "+columns+" FROM notifications.ledger WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Notification{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Notification{}, fmt.Errorf("ledger: get %s: %w", id, err)
	}
	return n, nil
}
