// Package projections runs projections: each applies the events of the
// global log, in batches, to a read model in PostgreSQL (a Projection,
// whose rows and checkpoint commit in one transaction) or to a target
// outside it (a Sink: MongoDB, Kafka), on exactly one active instance per
// projection name across processes. Runners store their status for any
// process to read (Reports) and rebuild a model without downtime when
// asked (RequestRebuild; see rebuild.go).
//
// The runtime never skips an event unless an admin says so: a batch that
// fails is retried one event at a time to find the failing event, which is
// retried with backoff while Status names it; if it keeps failing for
// reasons of its own, the projection's Policy parks it (and its stream)
// or halts on it (see park.go).
//
// The runtime's own state in PostgreSQL (checkpoints, reports, rebuild
// requests, parked lists) is read and written in one place, state.go.
package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
)

// ErrInvalidName is returned for a projection name that is not 1 to 100
// of [a-z0-9_.-].
var ErrInvalidName = errors.New("invalid projection name")

// errFenced reports that the checkpoint in the database is not the one
// this runner continued from: another instance (or Reset) moved it.
var errFenced = errors.New("checkpoint moved by someone else")

func checkName(name string) error {
	ok := len(name) >= 1 && len(name) <= 100
	for _, c := range []byte(name) {
		ok = ok && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("%w: %q, want 1 to 100 of [a-z0-9_.-]", ErrInvalidName, name)
	}
	return nil
}

// Projection applies events to a read model in PostgreSQL, in the same
// transaction as its checkpoint.
type Projection interface {
	// Name identifies the projection and its checkpoint. It is versioned,
	// such as "orders.v1", and matches [a-z0-9_.-]+.
	Name() string
	// Filter selects the events the projection needs.
	Filter() eventstore.Filter
	// Schema is the PostgreSQL schema of the projection's tables. The
	// runner creates it and runs Setup and Apply with it as the
	// search_path, so they name their tables unqualified: a rebuild runs
	// them on a shadow schema of its own and then moves the tables into
	// Schema (see Runner).
	Schema() string
	// Tables lists the tables Setup creates, each after the tables it
	// references: what a rebuild moves into Schema, replacing the old.
	Tables() []string
	// Setup creates the projection's tables if they are missing. It must
	// be idempotent; it runs in the runner's transaction each time the
	// runner becomes the active instance.
	Setup(ctx context.Context, tx pgx.Tx) error
	// Apply applies batch, in order, inside tx. It must be deterministic:
	// after a rollback the same batch, or a part of it, is applied again.
	Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error
}

// Options tune a Runner; the zero value is usable.
type Options struct {
	// BatchSize is the most events applied in one transaction; default 500.
	BatchSize int
	// BatchWait is how long to wait for a batch to fill once its first
	// event is there; default 5 ms.
	BatchWait time.Duration
	// RetryMin and RetryMax bound the exponential backoff after a failure;
	// defaults 100 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// LockPoll is how often a runner that does not hold the projection's
	// lock tries again, and how often the holder checks its lock's
	// connection; default 1 s.
	LockPoll time.Duration
	// Policy is what the runner does with an event that keeps failing:
	// PolicyPark (the default) or PolicyHalt; see park.go.
	Policy string
	// ParkAfter is how many attempts in a row an event gets, failing with
	// errors that are not transient, before Policy applies; default 5.
	ParkAfter int
	// Logger receives failures; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for lag; default time.Now.
	Now func() time.Time
	// Progress, when set, is told each checkpoint the runner commits
	// while it is the active instance (see Progress).
	Progress *Progress
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	o.BatchSize = min(o.BatchSize, eventstore.MaxReadCount)
	if o.BatchWait <= 0 {
		o.BatchWait = 5 * time.Millisecond
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.LockPoll <= 0 {
		o.LockPoll = time.Second
	}
	if o.Policy == "" {
		o.Policy = PolicyPark
	}
	if o.ParkAfter <= 0 {
		o.ParkAfter = 5
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// States of a runner, as Status reports them.
const (
	StateWaitingForLock = "waiting_for_lock"
	StateCatchingUp     = "catching_up"
	StateLive           = "live"
	StateFailing        = "failing"
	// StateHalted: under PolicyHalt, stopped on an event that keeps
	// failing (Failing names it), which is retried with backoff.
	StateHalted  = "halted"
	StateStopped = "stopped"
)

// Status is a snapshot of a runner.
type Status struct {
	Name string
	// State is one of the State constants. "live" means the last measure
	// of the lag found nothing left, or no more than a batch with the
	// runner keeping up (it had reached what the measure before found);
	// "catching_up" means it is working through a backlog.
	State string
	// Policy is the projection's Options.Policy.
	Policy string
	// Position is the checkpoint: the position of the last event applied
	// (or parked). Filtered-out events do not move it.
	Position eventstore.Position
	// LagEvents is how many events the projection takes after its
	// checkpoint, measured at every report (see Runner): exact when
	// LagExact, else a lower bound (a store that cannot count them is
	// read, up to LagCountCap events); 0 when live and idle; −1 before the
	// first measure.
	LagEvents int64
	LagExact  bool
	// Parked counts the entries of the live parked list this runner holds
	// (failed, or waiting behind one that did); see park.go.
	Parked int64
	// LagTime is now minus the timestamp of the last applied event; 0 when
	// live and idle, or when nothing was applied yet.
	LagTime time.Duration
	// LastError is the last failure, naming the failing event's id,
	// stream, version and type when an event failed; it is cleared once
	// the runner recovers.
	LastError string
	// Failing is the event the runner is stuck on; nil when healthy.
	Failing *FailingEvent
	// Applied counts the events this runner applied.
	Applied int64
	// Rebuild is the progress of the rebuild this runner is carrying out;
	// nil when none.
	Rebuild *RebuildStatus
}

// RebuildStatus is the progress of a rebuild in this process.
type RebuildStatus struct {
	Started time.Time
	// Scanned counts the events of the log read so far; Applied those the
	// projection takes.
	Scanned, Applied int64
	// Position is the last event read.
	Position eventstore.Position
	// Parked counts the events the shadow's parked list holds.
	Parked int64
	// CaughtUp is set once the shadow reached the end of the log and
	// waits for the swap.
	CaughtUp bool
	// LastError is the last failure of the rebuild; it is retried.
	LastError string
}

// LagCountCap bounds the events read to measure Status.LagEvents on a
// store that cannot count (eventstore.Counter); lagCountLimit bounds the
// count on one that can.
const (
	LagCountCap   = 10_000
	lagCountLimit = 1_000_000
)

// FailingEvent is an event the projection fails to apply.
type FailingEvent struct {
	ID       uuid.UUID
	StreamID string
	Version  int64
	Type     string
	Position eventstore.Position
	// Attempts is how many times the event failed.
	Attempts int
	// Since is when it first failed.
	Since time.Time
	// Err is the error of the last attempt.
	Err string
}
