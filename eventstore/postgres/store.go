// Package postgres is the PostgreSQL event store adapter (pgx v5), the
// default wherever no EventStoreDB runs.
//
// An append is one statement (sql.go), so it costs one round trip;
// UNIQUE (stream_id, version) is the concurrency guard. Under concurrent
// appends, several share one statement and its commit (group.go). The
// global order is (transaction id, row id) and readers only see
// transactions older than every transaction still in progress, so a
// reader that continues from the last position it saw never skips an event
// whose transaction commits late. Readers are woken by LISTEN/NOTIFY and,
// in the same process, directly; polling is only the fallback. The
// subscriptions of one store share one reader of the newest events (see
// tail), so an append costs one read however many follow the log.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
)

// Options tune a Store; the zero value is usable.
type Options struct {
	// Schema holds the event store's tables: lower-case letters, digits
	// and underscores, at most 52 bytes; default "eventstore".
	Schema string
	// PollInterval is how often an idle subscription reads even without a
	// notification; default 1 s.
	PollInterval time.Duration
	// Logger receives reconnect warnings; default slog.Default().
	Logger *slog.Logger
	// HeldWarning is how long readers may be held back by an open
	// transaction before a warning names it; default 10 s.
	HeldWarning time.Duration
	// GroupSlots is how many append statements the store has in flight
	// before further appends wait to share one (group.go); default
	// DefaultGroupSlots, negative: every append runs on its own.
	GroupSlots int
}

// Store is the PostgreSQL event store.
type Store struct {
	pool    *pgxpool.Pool
	channel string
	poll    time.Duration
	log     *slog.Logger
	wake    *eventstore.Waker
	now     func() time.Time
	held    heldWatch
	tail    *tail        // the subscriptions' shared reader
	group   grouper      // appends sharing statements
	reads   atomic.Int64 // reads of the global log (readAll), for the tests

	dirty  chan struct{}   // an append committed; tell other processes
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex // orders starting the listener against Close
	listening bool
}

var _ eventstore.Store = (*Store)(nil)

var validSchema = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,51}$`)

// maxAnyAttempts bounds how often an append with Any retries after
// concurrent appends took the version it wanted.
const maxAnyAttempts = 100

// notifySpacing is the least time between two notifications from this
// process: appends in between ride on the next one, so other processes
// hear of new events within a few milliseconds without a notification
// per append.
const notifySpacing = 3 * time.Millisecond

// Open connects to the database at url (a postgres:// URL; pool_max_conns
// and the other pgxpool settings may ride on it), applies the migrations,
// and checks the concurrency guard is in place. Errors: connection and
// migration failures.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = "eventstore"
	}
	if !validSchema.MatchString(opts.Schema) {
		// The schema also names the notification channel, which
		// PostgreSQL cuts at 63 bytes.
		return nil, fmt.Errorf("event store: schema %q: want 1 to 52 lower-case letters, digits or underscores", opts.Schema)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HeldWarning <= 0 {
		opts.HeldWarning = 10 * time.Second
	}
	if opts.GroupSlots == 0 {
		opts.GroupSlots = DefaultGroupSlots
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("event store: parse database url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 20
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	cfg.ConnConfig.RuntimeParams["application_name"] = "eventshop"
	// Every statement of the store reads by an index whatever its values
	// (see TestReadsKeepTheirPlans). Left to choose, PostgreSQL plans the
	// reads at the tail of the log anew on each call once the log has
	// statistics, which costs more than the read; a URL may still say
	// otherwise.
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	if err := migrate(ctx, pool, opts.Schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("event store: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s := &Store{
		pool: pool, channel: "eventstore_" + opts.Schema,
		poll: opts.PollInterval, log: opts.Logger, wake: eventstore.NewWaker(), now: time.Now,
		held:  heldWatch{after: opts.HeldWarning, every: time.Minute},
		dirty: make(chan struct{}, 1), ctx: bg, cancel: cancel,
	}
	s.tail = &tail{store: s, wake: eventstore.NewWaker()}
	s.group = grouper{store: s, slots: max(opts.GroupSlots, 0), more: make(chan struct{}, 1)}
	s.wg.Add(1)
	go s.notifyLoop()
	return s, nil
}

// Pool is the store's connection pool, for callers that keep other tables
// in the same database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks the database answers. Errors: the connection's.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close stops the background work and closes the pool. Subscriptions end.
func (s *Store) Close() error {
	s.group.close()
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	s.pool.Close()
	return nil
}

// Append implements eventstore.Store. It may share its statement with
// other appends (group.go).
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	events, err := eventstore.PrepareAppend(stream, expected, events, s.now())
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := s.group.run(ctx, []eventstore.StreamAppend{{Stream: stream, Expected: expected, Events: events}}, func() ([]eventstore.AppendResult, error) {
		res, err := s.appendAlone(ctx, stream, expected, events)
		return []eventstore.AppendResult{res}, err
	})
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return res[0], nil
}

// appendAlone is Append in a statement of its own.
func (s *Store) appendAlone(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error) {
	args := appendArgs(stream, expected, events)
	for attempt := 1; ; attempt++ {
		res, err := s.append(ctx, args)
		if err == nil {
			s.committed()
			return res, nil
		}
		var pgErr *pgconn.PgError
		var w errWrongVersion
		wrong := errors.As(err, &w)
		if !wrong && (!errors.As(err, &pgErr) || pgErr.Code != "23505") {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		// The append conflicted: it may be a retry of a batch already
		// written, which succeeds with the first result.
		res, found, reused, werr := s.written(ctx, stream, expected, args[2])
		switch {
		case werr != nil:
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, werr)
		case found:
			return res, nil
		case wrong:
			return eventstore.AppendResult{}, &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: w.actual}
		case pgErr.ConstraintName == "events_event_id_key" && reused:
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, eventstore.ErrDuplicateEventID)
		case expected != eventstore.Any && expected != eventstore.StreamExists:
			// A concurrent append took the version first.
			return eventstore.AppendResult{}, s.conflict(ctx, stream, expected)
		}
		// Any (or StreamExists, on a stream that exists) lost a race for
		// the next version: go again.
		if attempt == maxAnyAttempts {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: lost the race for the next version %d times: %w", stream, attempt, err)
		}
		if err := ctx.Err(); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
}

// written runs writtenSQL: are ids already written as a run of
// stream that an append with expected could have written.
func (s *Store) written(ctx context.Context, stream string, expected eventstore.ExpectedVersion, ids any) (res eventstore.AppendResult, found, reused bool, err error) {
	var version, txID, id *int64
	err = s.pool.QueryRow(ctx, writtenSQL, stream, int64(expected), ids).
		Scan(&found, &reused, &version, &txID, &id)
	if err != nil || !found {
		return res, false, reused, err
	}
	return lastRow(version, txID, id), true, reused, nil
}

// lastRow is the result of an append whose last row is (version, tx_id,
// id), as the statements return them.
func lastRow(version, txID, id *int64) eventstore.AppendResult {
	return eventstore.AppendResult{Version: *version, Position: eventstore.Position{Commit: uint64(*txID), Prepare: uint64(*id)}}
}

// errWrongVersion is append's report that the expected version did not hold.
type errWrongVersion struct{ actual int64 }

func (e errWrongVersion) Error() string { return fmt.Sprintf("stream is at version %d", e.actual) }

func (s *Store) append(ctx context.Context, a []any) (eventstore.AppendResult, error) {
	var before int64
	var version, txID, id *int64
	if err := s.pool.QueryRow(ctx, appendStatement(a), a...).Scan(&before, &version, &txID, &id); err != nil {
		return eventstore.AppendResult{}, err
	}
	if version == nil {
		return eventstore.AppendResult{}, errWrongVersion{actual: before}
	}
	return lastRow(version, txID, id), nil
}

// appendStatement is the statement that takes the parameters a.
func appendStatement(a []any) string {
	if _, one := a[3].(string); one {
		return appendOneSQL
	}
	return appendSQL
}

// appendArgs are the parameters of appendSQL, or of appendOneSQL for a
// single event (then the type, $4, is a plain string). $3, the event ids,
// is what writtenSQL takes as well, always an array.
func appendArgs(stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) []any {
	n := len(events)
	ids := eventIDs(events)
	if n == 1 {
		e := events[0]
		m := e.Metadata
		return []any{stream, int64(expected), ids, e.Type, int32(e.SchemaVersion), string(e.Data),
			m.CorrelationID, m.CausationID, m.ActorID, m.Timestamp}
	}
	types := make([]string, n)
	versions := make([]int32, n)
	data := make([]string, n)
	corr, cause, actor := make([]string, n), make([]string, n), make([]string, n)
	created := make([]time.Time, n)
	for i, e := range events {
		types[i], versions[i], data[i] = e.Type, int32(e.SchemaVersion), string(e.Data)
		corr[i], cause[i], actor[i], created[i] = e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.ActorID, e.Metadata.Timestamp
	}
	return []any{stream, int64(expected), ids, types, versions, data, corr, cause, actor, created}
}

// eventIDs are the ids of events as text, which every query mode can
// encode; the statements cast them to uuid[].
func eventIDs(events []eventstore.EventData) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID.String()
	}
	return ids
}

// conflict builds the wrong-expected-version error with the stream's
// current version.
func (s *Store) conflict(ctx context.Context, stream string, expected eventstore.ExpectedVersion) error {
	var actual *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(version) FROM events WHERE stream_id = $1`, stream).Scan(&actual); err != nil {
		return fmt.Errorf("append to %s: %w (reading the actual version: %v)", stream, eventstore.ErrWrongExpectedVersion, err)
	}
	a := int64(-1)
	if actual != nil {
		a = *actual
	}
	return &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: a}
}
