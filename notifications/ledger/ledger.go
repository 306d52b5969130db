package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Status is where a notification stands.
type Status string

// The statuses of a notification. Only Sent and Failed are final.
const (
	StatusPending  Status = "pending"
	StatusSending  Status = "sending"
	StatusSent     Status = "sent"
	StatusRetrying Status = "retrying"
	StatusFailed   Status = "failed"
)

// ChannelEmail is the only channel there is.
const ChannelEmail = "email"

// Notification is one row of the ledger: one email for one event and
// template.
type Notification struct {
	ID        uuid.UUID // UUIDv7, set by Claim
	Key       string    // Key(EventID, Template), set by Claim
	UserID    uuid.UUID
	EventID   uuid.UUID
	EventType string // the event's wire name, such as "order.paid"
	Template  string
	Channel   string // "email"; empty means email
	Recipient string // the address the email goes to ("to" of API.md)
	Subject   string
	MessageID string // the Message-ID header; derive it from Key so resends carry the same
	Status    Status
	Attempts  int
	LastError string
	CreatedAt time.Time
	SentAt    *time.Time // nil until sent
	UpdatedAt time.Time
	// LeaseUntil is when the current holder's claim, or the wait before
	// the next retry, runs out.
	LeaseUntil time.Time
}

// Key returns the ledger key of the email for template about event
// eventID.
func Key(eventID uuid.UUID, template string) string {
	return eventID.String() + ":" + template
}

// Outcome says what a claim found.
type Outcome int

// The outcomes of Claim. Only Won allows sending.
const (
	// Won: the caller holds the notification until its lease runs out (or,
	// under a Hold, its process is gone) and must send it, then record the
	// result at Claimed.Row.Attempts.
	Won Outcome = iota + 1
	// AlreadySent: the email was sent; skip it.
	AlreadySent
	// AlreadyFailed: the notification failed for good; skip it.
	AlreadyFailed
	// Busy: another holder's lease, or the wait before a retry, is live;
	// try again after Claimed.Row.LeaseUntil.
	Busy
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Won:
		return "won"
	case AlreadySent:
		return "already sent"
	case AlreadyFailed:
		return "already failed"
	case Busy:
		return "busy"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Claimed is the result of Claim: the outcome and the row as it stands.
type Claimed struct {
	Row     Notification
	Outcome Outcome
}

// Errors of the ledger.
var (
	// ErrInvalid: the notification lacks a field the ledger needs, or a
	// duration is negative.
	ErrInvalid = errors.New("ledger: invalid notification")
	// ErrNotFound: no notification has this id.
	ErrNotFound = errors.New("ledger: notification not found")
)

// Ledger is the notification ledger in PostgreSQL. It is safe for
// concurrent use.
type Ledger struct {
	pool   *pgxpool.Pool
	holder int64 // Hold's key; 0 for claims that only a lease ends
}

// New returns the ledger kept in the database of pool. Call Migrate before
// the rest.
func New(pool *pgxpool.Pool) *Ledger {
	return &Ledger{pool: pool}
}

// Open connects to the database at url with a pool of at most maxConns
// connections, for a command that needs the ledger alone, and migrates
// it. Close the ledger when done.
func Open(ctx context.Context, url string, maxConns int32) (*Ledger, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l := New(pool)
	if err := l.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return l, nil
}

// Close closes the pool of a ledger Open opened.
func (l *Ledger) Close() { l.pool.Close() }

// columns are the columns of a row in the order scanRow reads them.
const columns = `id, key, user_id, event_id, event_type, template, channel, recipient, subject, message_id,
	status, attempts, last_error, created_at, sent_at, updated_at, lease_until`

// scanRow reads one row of columns.
func scanRow(row pgx.Row) (Notification, error) {
	var n Notification
	err := row.Scan(&n.ID, &n.Key, &n.UserID, &n.EventID, &n.EventType, &n.Template, &n.Channel, &n.Recipient,
		&n.Subject, &n.MessageID, &n.Status, &n.Attempts, &n.LastError, &n.CreatedAt, &n.SentAt, &n.UpdatedAt, &n.LeaseUntil)
	return n, err
}

// claimSQL inserts each row of the arrays, or takes it over when it is
// neither sent nor failed and its lease has run out, or it is 'sending'
// for a holder that no longer holds its lock (Hold); it returns only the
// rows it inserted or took over. The unique index on key makes racing
// claims wait for each other, and the WHERE is evaluated on the latest
// committed row, so one claim wins a live lease. A takeover keeps the
// first claim's fields, the Message-ID above all, so every attempt sends
// the same email. The keys must be distinct: one statement cannot update
// a row twice.
const claimSQL = `INSERT INTO notifications.ledger AS l (id, key, user_id, event_id, event_type, template, channel,
		recipient, subject, message_id, status, attempts, lease_until, holder)
	SELECT c.id, c.key, c.user_id, c.event_id, c.event_type, c.template, c.channel, c.recipient, c.subject, c.message_id,
		'sending', 1, now() + $11::bigint * interval '1 microsecond', NULLIF($12::bigint, 0)
	FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
		AS c(id, key, user_id, event_id, event_type, template, channel, recipient, subject, message_id)
	ON CONFLICT (key) DO UPDATE SET status = 'sending', attempts = l.attempts + 1,
		lease_until = now() + $11::bigint * interval '1 microsecond', holder = NULLIF($12::bigint, 0), updated_at = now()
	WHERE l.status NOT IN ('sent', 'failed') AND (l.lease_until <= now()
		OR (l.status = 'sending' AND l.holder IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_locks k
			WHERE k.locktype = 'advisory' AND k.objsubid = 1 AND k.granted
				AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND ((k.classid::bigint << 32) | k.objid::bigint) = l.holder)))
	RETURNING ` + columns

// Claim takes the notification n, identified by Key(n.EventID,
// n.Template), for lease: it records it when it is new, or takes it over
// when it is neither sent nor failed and the lease of its last holder (or
// the wait MarkRetrying set) has run out, and reports Won. Otherwise it
// reports AlreadySent, AlreadyFailed or Busy with the row as it stands.
// On a takeover the row keeps the fields of its first claim; only
// Attempts, Status and LeaseUntil change. A lease of 0 runs out at once,
// so the next claim may take the row over. Errors: ErrInvalid, the
// database's.
func (l *Ledger) Claim(ctx context.Context, n Notification, lease time.Duration) (Claimed, error) {
	c, err := l.ClaimMany(ctx, []Notification{n}, lease)
	if err != nil {
		return Claimed{}, err
	}
	return c[0], nil
}

// ClaimMany is Claim of each of ns, in one statement and one transaction:
// the i-th result is ns[i]'s. The notifications must have distinct keys.
// Errors: ErrInvalid (an invalid notification or two with one key:
// nothing is claimed), the database's.
func (l *Ledger) ClaimMany(ctx context.Context, ns []Notification, lease time.Duration) ([]Claimed, error) {
	var (
		ids, users, events                                      = make([]uuid.UUID, len(ns)), make([]uuid.UUID, len(ns)), make([]uuid.UUID, len(ns))
		keys, types, templates, channels, tos, subjects, msgIDs = make([]string, len(ns)), make([]string, len(ns)),
			make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns))
		at = make(map[string]int, len(ns))
	)
	for i, n := range ns {
		if n.Channel == "" {
			n.Channel = ChannelEmail
		}
		if err := validate(n, lease); err != nil {
			return nil, err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("ledger: claim: new id: %w", err)
		}
		key := Key(n.EventID, n.Template)
		if _, dup := at[key]; dup {
			return nil, fmt.Errorf("%w: %s twice in one claim", ErrInvalid, key)
		}
		at[key] = i
		ids[i], keys[i], users[i], events[i], types[i], templates[i] = id, key, n.UserID, n.EventID, n.EventType, n.Template
		channels[i], tos[i], subjects[i], msgIDs[i] = n.Channel, n.Recipient, n.Subject, n.MessageID
	}
	out := make([]Claimed, len(ns))
	rows, err := l.pool.Query(ctx, claimSQL, ids, keys, users, events, types, templates, channels, tos, subjects, msgIDs,
		lease.Microseconds(), l.holder)
	if err != nil {
		return nil, fmt.Errorf("ledger: claim %d: %w", len(ns), err)
	}
	won := 0
	for rows.Next() {
		row, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return nil, l.unclaim(ctx, out, fmt.Errorf("ledger: claim %d: %w", len(ns), err))
		}
		out[at[row.Key]] = Claimed{Row: row, Outcome: Won}
		won++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: claim %d: %w", len(ns), err)
	}
	if won == len(ns) {
		return out, nil
	}
	// The other rows exist and were not claimable. This second read sees
	// them as committed now; one may have moved on since (a Busy row sent),
	// which is harmless since only Won allows sending.
	var rest []string
	for i := range out {
		if out[i].Outcome == 0 {
			rest = append(rest, keys[i])
		}
	}
	rows, err = l.pool.Query(ctx, "SELECT "+columns+" FROM notifications.ledger WHERE key = ANY($1)", planned, rest)
	if err != nil {
		return nil, l.unclaim(ctx, out, fmt.Errorf("ledger: claim %d: read rows: %w", len(ns), err))
	}
	for rows.Next() {
		row, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return nil, l.unclaim(ctx, out, fmt.Errorf("ledger: claim %d: read rows: %w", len(ns), err))
		}
		c := &out[at[row.Key]]
		c.Row, c.Outcome = row, Busy
		switch row.Status {
		case StatusSent:
			c.Outcome = AlreadySent
		case StatusFailed:
			c.Outcome = AlreadyFailed
		}
	}
	if err := rows.Err(); err != nil {
		return nil, l.unclaim(ctx, out, fmt.Errorf("ledger: claim %d: read rows: %w", len(ns), err))
	}
	for i := range out {
		if out[i].Outcome == 0 {
			// Neither claimed nor there: deleted in between, which
			// nothing in eventshop does.
			return nil, l.unclaim(ctx, out, fmt.Errorf("ledger: claim %s: the row vanished", keys[i]))
		}
	}
	return out, nil
}

// WonMarks names the claims of cs that were won, for Release.
func WonMarks(cs []Claimed) []Mark {
	var ms []Mark
	for _, c := range cs {
		if c.Outcome == Won {
			ms = append(ms, Mark{ID: c.Row.ID, Attempt: c.Row.Attempts})
		}
	}
	return ms
}

// unclaim gives back, once, the rows a ClaimMany won before it failed
// with err, so that the caller's retry finds them claimable rather than
// held by itself; it returns err.
func (l *Ledger) unclaim(ctx context.Context, claimed []Claimed, err error) error {
	if ms := WonMarks(claimed); len(ms) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := l.Release(rctx, ms); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// Validate checks that n has what the ledger stores: Claim and ClaimMany
// refuse it otherwise. Errors: ErrInvalid.
func Validate(n Notification) error {
	if n.Channel == "" {
		n.Channel = ChannelEmail
	}
	return validate(n, 0)
}

// validate checks that n has what the ledger stores and lease is not
// negative.
func validate(n Notification, lease time.Duration) error {
	switch {
	case n.EventID == uuid.Nil:
		return fmt.Errorf("%w: no event id", ErrInvalid)
	case n.UserID == uuid.Nil:
		return fmt.Errorf("%w: no user id", ErrInvalid)
	case n.EventType == "":
		return fmt.Errorf("%w: no event type", ErrInvalid)
	case n.Template == "":
		return fmt.Errorf("%w: no template", ErrInvalid)
	case n.Channel != ChannelEmail:
		return fmt.Errorf("%w: channel %q is not %q", ErrInvalid, n.Channel, ChannelEmail)
	case n.Recipient == "":
		return fmt.Errorf("%w: no recipient", ErrInvalid)
	case n.MessageID == "":
		return fmt.Errorf("%w: no message id", ErrInvalid)
	case lease < 0:
		return fmt.Errorf("%w: negative duration %v", ErrInvalid, lease)
	}
	return nil
}

// MarkSent records that attempt attempt of notification id sent the
// email. It applies only when the row is still 'sending' at that attempt,
// and reports whether it did: false means a newer claim took the row over
// (or it was marked already), and the caller must leave it alone. Errors:
// the database's.
func (l *Ledger) MarkSent(ctx context.Context, id uuid.UUID, attempt int) (bool, error) {
	return l.mark(ctx, "sent", id, attempt,
		"status = 'sent', sent_at = now(), last_error = ''")
}

// Mark names a claim of a notification: its id and the attempt the claim
// made (Claimed.Row.ID and Claimed.Row.Attempts).
type Mark struct {
	ID      uuid.UUID
	Attempt int
}

// MarkSentMany is MarkSent of each of ms, in one statement and one
// transaction. It returns the ids it applied to; the others were taken
// over (or marked already) and the caller must leave them alone. Errors:
// the database's (then none is marked).
func (l *Ledger) MarkSentMany(ctx context.Context, ms []Mark) ([]uuid.UUID, error) {
	ids, attempts := marks(ms)
	rows, err := l.pool.Query(ctx, `UPDATE notifications.ledger AS l SET status = 'sent', sent_at = now(), last_error = '', updated_at = now()
		FROM unnest($1::uuid[], $2::int[]) AS m(id, attempts)
		WHERE l.id = m.id AND l.attempts = m.attempts AND l.status = 'sending'
		RETURNING l.id`, planned, ids, attempts)
	if err != nil {
		return nil, fmt.Errorf("ledger: mark %d sent: %w", len(ms), err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("ledger: mark %d sent: %w", len(ms), err)
	}
	return applied, nil
}

// Release gives back claims that sent nothing: each row still 'sending'
// at its claim's attempt becomes claimable at once, its attempt count as
// it was before the claim, as if the claim had not been made. A caller
// that claimed several notifications at once and will not send the rest
// soon (a send failed, or the claims have grown old) releases them, so
// that their leases do not run out while they wait and the wait costs
// them no attempt. A released claim must not be marked afterwards, and a
// Release that failed must not be repeated (it may have applied): the
// next claim of its row is at the same attempt. Errors: the database's.
func (l *Ledger) Release(ctx context.Context, ms []Mark) error {
	ids, attempts := marks(ms)
	_, err := l.pool.Exec(ctx, `UPDATE notifications.ledger AS l
		SET status = 'retrying', attempts = l.attempts - 1, lease_until = now(), updated_at = now()
		FROM unnest($1::uuid[], $2::int[]) AS m(id, attempts)
		WHERE l.id = m.id AND l.attempts = m.attempts AND l.status = 'sending'`, planned, ids, attempts)
	if err != nil {
		return fmt.Errorf("ledger: release %d: %w", len(ms), err)
	}
	return nil
}

// planned, as a statement's first argument, has PostgreSQL plan it for
// each call with its values, rather than keep one plan per connection.
// It is for the statements that find a batch's rows by a list of keys: a
// connection's first calls come while the ledger is small, and the plan
// kept from then on read the whole table however it grew (see
// TestBatchStatementsReadByKeyAsTheLedgerGrows). A plan costs a fraction
// of what a scan of a busy ledger does.
const planned = pgx.QueryExecModeExec

// marks are ms as the arrays the statements take: the ids as text, which
// a statement run as planned can send (it names no uuid type).
func marks(ms []Mark) ([]string, []int32) {
	ids, attempts := make([]string, len(ms)), make([]int32, len(ms))
	for i, m := range ms {
		ids[i], attempts[i] = m.ID.String(), int32(m.Attempt)
	}
	return ids, attempts
}

// MarkRetrying records that attempt attempt of notification id failed
// with errText and may be tried again after retryAfter: until then the row
// is leased, so a claim reports Busy. It applies only as MarkSent does and
// reports whether it did. Errors: ErrInvalid for a negative retryAfter,
// the database's.
func (l *Ledger) MarkRetrying(ctx context.Context, id uuid.UUID, attempt int, errText string, retryAfter time.Duration) (bool, error) {
	if retryAfter < 0 {
		return false, fmt.Errorf("%w: negative duration %v", ErrInvalid, retryAfter)
	}
	return l.mark(ctx, "retrying", id, attempt,
		"status = 'retrying', last_error = $3, lease_until = now() + $4::bigint * interval '1 microsecond'",
		errText, retryAfter.Microseconds())
}

// MarkFailed records that notification id failed for good at attempt
// attempt, with errText; claims report AlreadyFailed from then on. It
// applies only as MarkSent does and reports whether it did. Errors: the
// database's.
func (l *Ledger) MarkFailed(ctx context.Context, id uuid.UUID, attempt int, errText string) (bool, error) {
	return l.mark(ctx, "failed", id, attempt, "status = 'failed', last_error = $3", errText)
}

// mark sets set ($1 is id, $2 attempt, then args) on row id if it is
// still 'sending' at attempt: the fence against a holder taken over.
func (l *Ledger) mark(ctx context.Context, what string, id uuid.UUID, attempt int, set string, args ...any) (bool, error) {
	tag, err := l.pool.Exec(ctx, "UPDATE notifications.ledger SET "+set+", updated_at = now()"+
		" WHERE id = $1 AND attempts = $2 AND status = 'sending'", append([]any{id, attempt}, args...)...)
	if err != nil {
		return false, fmt.Errorf("ledger: mark %s %s: %w", id, what, err)
	}
	return tag.RowsAffected() == 1, nil
}
