// Package commands runs the write side, one handler per aggregate (Users,
// Catalog, Orders) over one repository: each command loads its aggregate
// from its stream (through a small cache of folded states), decides with
// the pure domain code, and appends the new events with the version it
// loaded, retrying on ErrWrongExpectedVersion only. Authorization per
// object (a vendor's own products, a customer's own orders) is checked
// here, on the loaded state. An order's way through the system, step by
// step, and the process manager's part in it, are laid out in saga.go.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/services/unpaid"
)

// Config holds the handlers' dependencies and knobs.
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
	// Snapshots keeps snapshots of the products' streams, so that loading
	// a long one after a restart reads its snapshot and what came after;
	// nil keeps none. One is saved each time a stream has grown by
	// SnapshotEvery events (default DefaultSnapshotEvery).
	Snapshots     SnapshotStore
	SnapshotEvery int
}

// UnpaidLimit bounds what one customer holds in unpaid orders
// (unpaid.Redis). Hold counts an order before it is placed and returns
// which bound it would break instead, if any; Free stops counting it once
// it is paid or has ended. A hold whose Free was lost ends at the time
// Hold was given.
type UnpaidLimit interface {
	Hold(ctx context.Context, customer, orderID string, units int64, until time.Time) (unpaid.Refusal, error)
	Free(ctx context.Context, customer, orderID string) error
	Limits() unpaid.Limits
}

// Handlers are the command handlers of the three aggregates. They share
// one repository (its cache of folded states and its per-stream locks), so
// an order placed through Orders sees the product Catalog just listed
// without reading it again. Each is safe for concurrent use.
type Handlers struct {
	Users   *Users
	Catalog *Catalog
	Orders  *Orders
}

// New builds the handlers of every aggregate from one Config.
func New(cfg Config) Handlers {
	repo := newRepository(cfg)
	grace := cfg.ClaimGrace
	if grace <= 0 {
		grace = 60 * time.Second
	}
	timeout := cfg.PaymentTimeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	return Handlers{
		Users:   &Users{repository: repo, grace: grace, hashSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0))},
		Catalog: &Catalog{repository: repo, grace: grace},
		Orders:  &Orders{repository: repo, payments: cfg.Payments, timeout: timeout, grace: grace},
	}
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
