// Package commands runs the write side: each command loads its aggregate
// from its stream (through a small cache of folded states), decides with
// the pure domain code, and appends the new events with the version it
// loaded, retrying on ErrWrongExpectedVersion only. Authorization per
// object (a vendor's own products, a customer's own orders) is checked
// here, on the loaded state.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/payment"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// Config holds the handler's dependencies and knobs.
type Config struct {
	Store    eventstore.Store
	Payments payment.Processor
	Log      *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NewID makes aggregate ids; default UUIDv7 strings.
	NewID func() string
	// PaymentTimeout is how long a pending order waits for payment;
	// default 15m.
	PaymentTimeout time.Duration
	// ClaimGrace is how long a half-done registration, product listing or
	// order placement may still finish before its claims and reservations
	// are taken back; default 60s.
	ClaimGrace time.Duration
	// MaxAttempts bounds retries on a version conflict; default 30.
	MaxAttempts int
	// Serialize runs commands on one aggregate one at a time in this
	// process, so a hot product is not retried to death; default on.
	Serialize *bool
	// CacheSize bounds the folded states kept between commands; default
	// 50,000.
	CacheSize int
}

// Handler runs commands. It is safe for concurrent use.
type Handler struct {
	store      eventstore.Store
	payments   payment.Processor
	log        *slog.Logger
	now        func() time.Time
	newID      func() string
	timeout    time.Duration
	grace      time.Duration
	attempts   int
	registry   domain.Registry
	cache      *stateCache
	locks      *keyedMutex
	serialized bool
	hashSlots  chan struct{}
}

// New builds a Handler.
func New(cfg Config) *Handler {
	h := &Handler{
		store: cfg.Store, payments: cfg.Payments, log: cfg.Log, now: cfg.Now, newID: cfg.NewID,
		timeout: cfg.PaymentTimeout, grace: cfg.ClaimGrace, attempts: cfg.MaxAttempts,
		registry:   Registry(),
		serialized: cfg.Serialize == nil || *cfg.Serialize,
		locks:      newKeyedMutex(),
		hashSlots:  make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.newID == nil {
		h.newID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if h.timeout <= 0 {
		h.timeout = 15 * time.Minute
	}
	if h.grace <= 0 {
		h.grace = 60 * time.Second
	}
	if h.attempts <= 0 {
		h.attempts = 30
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 50_000
	}
	h.cache = newStateCache(size)
	return h
}

// Registry decodes every event the write side stores.
func Registry() domain.Registry {
	return user.Registry().Merge(product.Registry(), order.Registry(), unique.Registry())
}

// Result is what a successful command wrote: the aggregate's version and
// the global position of its last event (for read-your-writes). A command
// that changed nothing reports the aggregate's current version and the
// position of its last event.
type Result struct {
	Version  int64
	Position eventstore.Position
}

// Actor is who runs a command.
type Actor struct {
	ID    string
	Roles []string
}

// Has reports whether the actor holds role.
func (a Actor) Has(role string) bool {
	for _, r := range a.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// NoVersion means the client sent no If-Match.
const NoVersion int64 = -2

// backoff waits a little before retry n (1-based), with full jitter, so
// racing writers spread out. It returns ctx's error when ctx ends first.
func backoff(ctx context.Context, n int) error {
	max := time.Duration(1<<min(n, 6)) * 500 * time.Microsecond
	return retry.Sleep(ctx, rand.N(max)+100*time.Microsecond)
}

// detached is ctx without its cancellation but with a deadline of its own:
// for the steps that must finish once a command has written (compensation,
// follow-up stock moves), even if the caller has gone, yet must not hang.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

// wrap adds what was being done to an infrastructure error; nil, domain
// errors and the command layer's own errors pass through untouched.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) || errors.Is(err, domain.ErrForbidden) || errors.Is(err, domain.ErrPreconditionFailed) ||
		errors.Is(err, domain.ErrContention) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}
