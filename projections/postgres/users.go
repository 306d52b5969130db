package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/resource"
)

const usersDDL = `
CREATE TABLE IF NOT EXISTS users (
	id         uuid PRIMARY KEY,
	email      text NOT NULL UNIQUE,
	full_name  text NOT NULL,
	roles      text[] NOT NULL,
	created_at timestamptz NOT NULL,
	version    bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS users_created_at_idx ON users (created_at, id);`

// UsersProjection builds users from the user streams. It reads
// the data of user.registered, user.role_granted and user.role_revoked
// only: every other event of a user stream (user.credentials_set above
// all) just moves the row's version on, so the row's version is the
// stream's as the API reports it, and the password hash is never even
// decoded.
type UsersProjection struct{}

// Name is "users.v1".
func (UsersProjection) Name() string { return "users.v1" }

// Filter selects the user streams; "user-" leaves out user_email-* and
// user_admins.
func (UsersProjection) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{user.StreamPrefix}}
}

// Schema is Schema.
func (UsersProjection) Schema() string { return Schema }

// Tables is the one table.
func (UsersProjection) Tables() []string { return []string{"users"} }

// Setup creates the table if missing.
func (UsersProjection) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, usersDDL)
	return err
}

// Apply applies batch in one round trip. Errors: an event that does not
// decode, a registration whose user id is not a UUID, the database's.
func (UsersProjection) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	var b pgx.Batch
	for i := range batch {
		e := &batch[i]
		if !strings.HasPrefix(e.StreamID, user.StreamPrefix) {
			continue
		}
		if err := queueUser(&b, e); err != nil {
			return fmt.Errorf("event %s (stream %s, version %d, %s): %w", e.ID, e.StreamID, e.Version, e.Type, err)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &b).Close()
}

// The types whose data the projection reads; user.credentials_set is not
// among them on purpose.
var userEvents = func() domain.Registry {
	r := domain.Registry{}
	domain.Register[user.Registered](r)
	domain.Register[user.RoleGranted](r)
	domain.Register[user.RoleRevoked](r)
	return r
}()

func queueUser(b *pgx.Batch, e *eventstore.Event) error {
	id, ok := idOf(e.StreamID, user.StreamPrefix)
	if _, known := userEvents[e.Type]; !known {
		if ok {
			b.Queue("UPDATE users SET version = $2 WHERE id = $1 AND version < $2", id, e.Version)
		}
		return nil
	}
	ev, err := userEvents.Decode(e.Type, e.SchemaVersion, e.Data)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("user id %q is not a UUID", e.StreamID[len(user.StreamPrefix):])
	}
	switch ev := ev.(type) {
	case user.Registered:
		roles := slices.Clone(ev.Roles)
		if roles == nil {
			roles = []string{}
		}
		b.Queue(`INSERT INTO users AS u (id, email, full_name, roles, created_at, version)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET email = excluded.email, full_name = excluded.full_name,
				roles = excluded.roles, created_at = excluded.created_at, version = excluded.version
			WHERE u.version < excluded.version`,
			id, ev.Email, ev.FullName, roles, e.Metadata.Timestamp, e.Version)
	case user.RoleGranted:
		b.Queue(`UPDATE users SET version = $3,
				roles = CASE WHEN $2 = ANY(roles) THEN roles ELSE array_append(roles, $2) END
			WHERE id = $1 AND version < $3`, id, ev.Role, e.Version)
	case user.RoleRevoked:
		b.Queue(`UPDATE users SET version = $3, roles = array_remove(roles, $2)
			WHERE id = $1 AND version < $3`, id, ev.Role, e.Version)
	}
	return nil
}

const userColumns = "id::text, email, full_name, roles, created_at, version"

func scanUser(row pgx.Row) (resource.User, error) {
	var u resource.User
	if err := row.Scan(&u.ID, &u.Email, &u.FullName, &u.Roles, &u.CreatedAt, &u.Version); err != nil {
		return resource.User{}, err
	}
	if u.Roles == nil {
		u.Roles = []string{}
	}
	slices.Sort(u.Roles) // as resource.FromUser
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// User returns user id. Errors: ErrNotFound, the database's.
func (s *Store) User(ctx context.Context, id string) (resource.User, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return resource.User{}, ErrNotFound
	}
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM readmodel.users WHERE id = $1", uid))
	if errors.Is(err, pgx.ErrNoRows) {
		return resource.User{}, ErrNotFound
	}
	if err != nil {
		return resource.User{}, fmt.Errorf("read model: user %s: %w", id, err)
	}
	return u, nil
}

// Users returns a page of users, oldest first (created_at, then id), and
// how many there are in all. Page counts from 1; limit defaults to
// DefaultLimit and is at most MaxLimit. Errors: the database's.
func (s *Store) Users(ctx context.Context, page, limit int) ([]resource.User, int, error) {
	limit, offset := paginate(page, limit)
	var b pgx.Batch
	var total int
	b.Queue("SELECT count(*) FROM readmodel.users").QueryRow(func(r pgx.Row) error { return r.Scan(&total) })
	out := []resource.User{}
	b.Queue("SELECT "+userColumns+" FROM readmodel.users ORDER BY created_at, id LIMIT $1 OFFSET $2", limit, offset).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				u, err := scanUser(rows)
				if err != nil {
					return err
				}
				out = append(out, u)
			}
			return rows.Err()
		})
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, 0, fmt.Errorf("read model: users: %w", err)
	}
	return out, total, nil
}
