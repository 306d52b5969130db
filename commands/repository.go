package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/correlation"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// repository is the plumbing every handler shares: the event store, the
// registry that decodes its events, the cache of folded states, the
// per-stream locks, the clock and the ids of new aggregates. load and
// execute are the only ways a handler reads or writes a stream.
type repository struct {
	store      eventstore.Store
	registry   domain.Registry
	log        *slog.Logger
	now        func() time.Time
	newID      func() string
	attempts   int
	cache      *stateCache
	locks      *keyedMutex
	serialized bool

	snapshots     SnapshotStore // nil: none
	snapshotEvery int64
	snapshotSlots chan struct{}
}

func newRepository(cfg Config) *repository {
	r := &repository{
		store: cfg.Store, registry: Registry(), log: cfg.Log, now: cfg.Now, newID: cfg.NewID,
		attempts: cfg.MaxAttempts, serialized: cfg.Serialize == nil || *cfg.Serialize,
		locks: newKeyedMutex(), snapshots: cfg.Snapshots, snapshotEvery: int64(cfg.SnapshotEvery),
		snapshotSlots: make(chan struct{}, snapshotSaves),
	}
	if r.snapshotEvery <= 0 {
		r.snapshotEvery = DefaultSnapshotEvery
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.newID == nil {
		r.newID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if r.attempts <= 0 {
		r.attempts = 30
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 50_000
	}
	r.cache = newStateCache(size)
	return r
}

// kind describes one aggregate type to the generic load/execute code.
// A kind with a snapshot format keeps snapshots of its long streams.
type kind[S any] struct {
	new     func() S
	evolve  func(S, domain.Recorded) S
	version func(S) int64
	clone   func(S) S
	// format, snapshot and restore: see snapshots.Snapshot; format 0
	// means no snapshots.
	format   int
	snapshot func(S) ([]byte, error)
	restore  func([]byte) (S, error)
}

func same[S any](s S) S { return s }

var (
	userKind    = kind[user.State]{new: user.New, evolve: user.Evolve, version: func(s user.State) int64 { return s.Version }, clone: same[user.State]}
	adminsKind  = kind[user.Admins]{new: user.NewAdmins, evolve: user.EvolveAdmins, version: func(s user.Admins) int64 { return s.Version }, clone: same[user.Admins]}
	productKind = kind[product.State]{new: product.New, evolve: product.Evolve, version: func(s product.State) int64 { return s.Version },
		clone: product.State.Clone, format: product.SnapshotFormat, snapshot: product.State.Snapshot, restore: product.FromSnapshot}
	orderKind = kind[order.State]{new: order.New, evolve: order.Evolve, version: func(s order.State) int64 { return s.Version }, clone: same[order.State]}
	claimKind = kind[unique.Claim]{new: unique.New, evolve: unique.Evolve, version: func(s unique.Claim) int64 { return s.Version }, clone: same[unique.Claim]}
)

// loaded is a folded state and the position of its last event.
type loaded[S any] struct {
	state S
	pos   eventstore.Position
}

// load folds stream: it starts from the cached state, if any, else from
// the stream's snapshot, if any, and reads only the events after it. The
// result is a copy of its own, also kept in the cache, which only ever
// reads it. Errors: the store's, wrapped; CodeConflict stream_unreadable
// (domain.StreamUnreadable) when the stream holds an event this build
// cannot decode.
func load[S any](ctx context.Context, r *repository, k kind[S], stream string) (loaded[S], error) {
	cur, snapped := loaded[S]{state: k.new()}, int64(-1)
	if c, ok := r.cache.get(stream); ok {
		cur = loaded[S]{state: k.clone(c.state.(S)), pos: c.pos}
	} else if snap, ok := restore(ctx, r, k, stream); ok {
		cur, snapped = snap, k.version(snap.state)
	}
	from := k.version(cur.state) + 1
	if snapped >= 0 {
		// Read the snapshot's own last event too: a snapshot that does
		// not match the log (a store restored from an older backup) is
		// passed over.
		from = snapped
	}
	for {
		evs, err := r.store.ReadStream(ctx, stream, eventstore.Forwards, from, eventstore.MaxReadCount)
		if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
			return cur, fmt.Errorf("read %s: %w", stream, err)
		}
		n := len(evs)
		if snapped >= 0 && from == snapped {
			if n == 0 || evs[0].Version != snapped || evs[0].Position != cur.pos {
				r.log.WarnContext(ctx, "a snapshot does not match its stream; folding the stream from its start", "stream", stream, "version", snapped)
				cur, snapped, from = loaded[S]{state: k.new()}, -1, 0
				continue
			}
			evs = evs[1:]
		}
		if n == 0 {
			break
		}
		for i := range evs {
			rec, err := r.decode(&evs[i])
			if err != nil {
				// Not a failure of the store: retrying cannot help, and no
				// command on this aggregate can be decided until an
				// operator deals with the event.
				e := &evs[i]
				r.log.ErrorContext(ctx, "stream holds an event this build cannot decode", "stream", stream,
					"event_id", e.ID.String(), "type", e.Type, "version", e.Version, "err", err)
				return cur, domain.StreamUnreadable(stream, e.ID.String(), e.Type, e.Version, err)
			}
			cur.state = k.evolve(cur.state, rec)
			cur.pos = evs[i].Position
		}
		if n < eventstore.MaxReadCount {
			break
		}
		from = k.version(cur.state) + 1
	}
	if k.version(cur.state) >= 0 {
		keep(r, k, stream, cached{state: cur.state, pos: cur.pos, version: k.version(cur.state), snapped: snapped})
	}
	return cur, nil
}

func (r *repository) decode(e *eventstore.Event) (domain.Recorded, error) {
	ev, err := r.registry.Decode(e.Type, e.SchemaVersion, e.Data)
	if err != nil {
		return domain.Recorded{}, err
	}
	return domain.Recorded{Event: ev, Version: e.Version, At: e.Metadata.Timestamp, ActorID: e.Metadata.ActorID}, nil
}

// decision is what a command decides on a loaded state.
type decision[S any] func(S) ([]domain.Event, error)

// execute runs one command on one aggregate: load, check If-Match, decide,
// append with the loaded version; on a version conflict it reloads and
// decides again, a bounded number of times with jittered backoff. It
// returns the state after the command.
//
// When the cache holds the stream, the first try decides on the cached
// state without reading and appends with its version: if another writer
// moved the stream on, the append fails on the version and the command
// reloads. Only a decision that writes is trusted that way; a refusal or a
// no-op decided on the cached state is decided again on a fresh load, so
// a stale cache can cost a retry but never a wrong answer.
func execute[S any](ctx context.Context, r *repository, k kind[S], stream string, ifMatch int64, decide decision[S]) (S, Result, error) {
	if r.serialized {
		unlock := r.locks.lock(stream)
		defer unlock()
	}
	var zero S
	fromCache := true
	for attempt := 1; ; {
		cur, cached, err := current(ctx, r, k, stream, fromCache)
		if err != nil {
			return zero, Result{}, err
		}
		fromCache = cached
		v := k.version(cur.state)
		if ifMatch != NoVersion && ifMatch != v {
			if fromCache {
				fromCache = false
				continue
			}
			return cur.state, Result{Version: v, Position: cur.pos}, domain.ErrPreconditionFailed
		}
		events, err := decide(cur.state)
		if fromCache && (err != nil || len(events) == 0) {
			fromCache = false
			continue
		}
		if err != nil {
			return cur.state, Result{Version: v, Position: cur.pos}, err
		}
		if len(events) == 0 {
			return cur.state, Result{Version: v, Position: cur.pos}, nil
		}
		data, at, err := r.encode(ctx, events)
		if err != nil {
			return zero, Result{}, err
		}
		res, err := r.store.Append(ctx, stream, expectedAt(v), data...)
		if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			if attempt, err = r.lost(ctx, stream, fromCache, attempt); err != nil {
				return zero, Result{}, err
			}
			fromCache = false
			continue
		}
		if err != nil {
			return zero, Result{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		st := remember(ctx, r, k, stream, cur.state, events, at, res)
		return st, Result{Version: res.Version, Position: res.Position}, nil
	}
}

// lost handles an append that lost the race for stream's version on
// attempt, decided on the cached state when fromCache: it drops the
// cached state and lets the command go again on a load, at once when the
// cache was behind another writer, else after a backoff, as the next
// attempt. Errors: domain.ErrContention after r.attempts, ctx's.
func (r *repository) lost(ctx context.Context, stream string, fromCache bool, attempt int) (int, error) {
	r.cache.drop(stream)
	if fromCache {
		return attempt, nil
	}
	if attempt >= r.attempts {
		return attempt, fmt.Errorf("%s after %d attempts: %w", stream, attempt, domain.ErrContention)
	}
	if err := backoff(ctx, attempt); err != nil {
		return attempt, err
	}
	return attempt + 1, nil
}

// expectedAt is the condition of an append decided on a stream at
// version v (-1: none).
func expectedAt(v int64) eventstore.ExpectedVersion {
	if v < 0 {
		return eventstore.NoStream
	}
	return eventstore.Exact(v)
}

// current is the state of stream a command decides on, a copy of its
// own: the cached state when fromCache and the cache holds the stream,
// else a fresh load. It reports whether the state came from the cache.
func current[S any](ctx context.Context, r *repository, k kind[S], stream string, fromCache bool) (loaded[S], bool, error) {
	if c, ok := r.cache.get(stream); fromCache && ok {
		return loaded[S]{state: k.clone(c.state.(S)), pos: c.pos}, true, nil
	}
	cur, err := load(ctx, r, k, stream)
	// load's result is shared with the cache; the command evolves its
	// own copy.
	cur.state = k.clone(cur.state)
	return cur, false, err
}

// remember evolves st, the command's own copy of the state its events were
// decided on, by those events as appended (res), and hands the result to
// the cache, which treats what it holds as read-only.
func remember[S any](ctx context.Context, r *repository, k kind[S], stream string, st S, events []domain.Event, at time.Time, res eventstore.AppendResult) S {
	first := res.Version - int64(len(events)) + 1
	for i, e := range events {
		st = k.evolve(st, domain.Recorded{Event: e, Version: first + int64(i), At: at, ActorID: correlation.From(ctx).Actor})
	}
	keep(r, k, stream, cached{state: st, pos: res.Position, version: res.Version, snapped: -1})
	return st
}

// fresh tells the cache that stream is new (its id was just made), so the
// command that creates it appends with NoStream without reading first.
func fresh[S any](r *repository, k kind[S], stream string) {
	r.cache.put(stream, cached{state: k.new(), version: -1, snapped: -1}, 0)
}

// encode turns domain events into event data with the request's
// correlation, causation and actor ids; it returns the timestamp set.
// Errors: CodeInvalid when an event breaks its write bounds (its
// Validate), so that nothing any reader could refuse is ever appended;
// decide functions check client input the same way first, this is the
// last guard (against a system-written event out of bounds).
func (r *repository) encode(ctx context.Context, events []domain.Event) ([]eventstore.EventData, time.Time, error) {
	ids := correlation.From(ctx)
	at := r.now().UTC().Truncate(time.Microsecond)
	if err := domain.Validate(events...); err != nil {
		return nil, at, err
	}
	out := make([]eventstore.EventData, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, at, fmt.Errorf("encode %s: %w", e.EventType(), err)
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, at, fmt.Errorf("event id: %w", err)
		}
		out[i] = eventstore.EventData{
			ID: id, Type: e.EventType(), SchemaVersion: 1, Data: b,
			Metadata: eventstore.Metadata{CorrelationID: ids.Correlation, CausationID: ids.Causation, ActorID: ids.Actor, Timestamp: at},
		}
	}
	return out, at, nil
}

// backoff waits a little before retry n (1-based), with full jitter, so
// racing writers spread out. It returns ctx's error when ctx ends first.
func backoff(ctx context.Context, n int) error {
	max := time.Duration(1<<min(n, 6)) * 500 * time.Microsecond
	return retry.Sleep(ctx, rand.N(max)+100*time.Microsecond)
}
