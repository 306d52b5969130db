package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/correlation"
	"github.com/eventshop/eventshop/projections"
)

// ProcessManager finishes what the order saga's requests may leave half
// done. It follows the log (reservations, releases, deductions and order
// events) and, on a timer:
//   - fences and releases reservations whose order never appeared within
//     the grace period (a saga's placing process stopped part-way; an
//     atomic placement never leaves any);
//   - expires pending orders left unpaid past the payment timeout;
//   - deducts or releases stock still held by completed or cancelled
//     orders, and refunds cancelled paid orders whose refund is not
//     recorded (the request stopped after recording the order's new
//     status, or the payment provider failed), and voided charges whose
//     refund is not recorded.
//
// Every action loads the aggregates it touches and decides again, so acting
// twice, from two processes, or on a view that lags the log, does nothing
// wrong. Its view is kept in a ViewStore with the position it reflects,
// saved every tick, so a start or a takeover reads only the events after
// that position; without one, it is rebuilt from the log at start.
//
// A failure stays with the order it concerns: an action that fails (or
// panics) is tried again later while the other orders go on, and an event
// it cannot read is passed over. Either is kept in its FailureLog, by
// order, until that order's next action succeeds, for admins to see.
type ProcessManager struct {
	h        *Orders
	tick     time.Duration
	retry    time.Duration
	failures FailureLog
	view     ViewStore

	placements map[string]*tracked // reservations whose order has not appeared
	orders     map[string]*tracked // orders that are live or still hold stock
	failing    map[string]bool     // keys with an entry in failures
	dirty      map[string]bool     // order ids whose entry changed since the last save
	saved, at  eventstore.Position // the view's position in the store, and in memory
}

// ViewStore keeps the process manager's view durably: entries by order id
// and the position of the log they reflect. projections.WorkerView is
// one.
type ViewStore interface {
	// Load returns the position saved last (Start when none) and the
	// entries.
	Load(ctx context.Context) (eventstore.Position, map[string]json.RawMessage, error)
	// Save moves the view from from to to, with the entries of put
	// written and those of drop deleted, all or nothing; it fails when
	// the view is no longer at from (another instance saved since) with
	// projections.ErrViewMoved.
	Save(ctx context.Context, from, to eventstore.Position, put map[string]json.RawMessage, drop []string) error
	// Reset deletes the view.
	Reset(ctx context.Context) error
}

// FailureLog keeps what the process manager fails on, by order (or by
// stream, for an event it cannot read that names no order it knows),
// durably and for admins to see: projections.Failures is one.
type FailureLog interface {
	Record(ctx context.Context, f projections.Failure) error
	Clear(ctx context.Context, key string) error
	Keys(ctx context.Context) ([]string, error)
}

// tracked is the process manager's view of one order id.
type tracked struct {
	status      order.Status // "" for a placement not recorded yet
	since       time.Time    // first reservation, order creation, or final status
	held        map[string]bool
	refundDue   bool
	chargesDue  bool                 // paid or cancelled; the provider's charges are not checked yet
	voidsDue    map[string]time.Time // voided charges whose refund is not recorded
	correlation string
	causation   string
	nextTry     time.Time
}

// ProcessManagerLock names the lock that keeps one process manager
// active at a time (projections.Exclusive), and its list of failing
// orders (projections.Failures).
const ProcessManagerLock = "saga.orders"

// NewProcessManager builds a process manager that runs the saga's steps
// through orders, checks its deadlines every tick (default 1s), keeps its
// failures in failures (nil: in the log only) and its view in view (nil:
// rebuilt from the log at every start).
func NewProcessManager(orders *Orders, tick time.Duration, failures FailureLog, view ViewStore) *ProcessManager {
	if tick <= 0 {
		tick = time.Second
	}
	return &ProcessManager{h: orders, tick: tick, retry: 5 * tick, failures: failures, view: view}
}

// pmFilter selects the events the process manager follows.
var pmFilter = eventstore.Filter{EventTypePrefixes: []string{"inventory.reserved", "inventory.released", "inventory.deducted", "order."}}

// Run follows the log from its view's saved position (or its start) until
// ctx ends, saving the view every tick and once more on the way out.
// Errors: the subscription's failure; the view store's when it cannot be
// read, or was saved by another instance since this one loaded it.
func (pm *ProcessManager) Run(ctx context.Context) error {
	// The view is loaded again on every run: a run after a failed one
	// must not fold the log again over what the last one left.
	if err := pm.load(ctx); err != nil {
		return err
	}
	defer pm.saveOnExit(ctx)
	pm.failing = map[string]bool{}
	if pm.failures != nil {
		keys, err := pm.failures.Keys(ctx)
		if err != nil {
			pm.h.log.WarnContext(ctx, "process manager: read its failures; they are cleared as their orders recover only from now", "err", err)
		}
		for _, k := range keys {
			pm.failing[k] = true
		}
	}
	sub, err := pm.h.store.SubscribeAll(ctx, pm.at, pmFilter)
	if err != nil {
		return fmt.Errorf("process manager: subscribe: %w", err)
	}
	t := time.NewTicker(pm.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.Events():
			if !ok {
				if err := sub.Err(); err != nil {
					return fmt.Errorf("process manager: %w", err)
				}
				return nil
			}
			pm.apply(ctx, &e)
			pm.at = e.Position
		case <-t.C:
			if err := pm.save(ctx); err != nil {
				return err
			}
			pm.act(ctx)
		}
	}
}

// apply updates the view with e. An event this build cannot decode is
// passed over rather than stopping the process manager for every order:
// its stream answers stream_unreadable to every command, and every action
// here loads and decides again, so the view missing it can only make an
// action on that order try in vain. It is kept in the failure log, by its
// order (or stream).
func (pm *ProcessManager) apply(ctx context.Context, e *eventstore.Event) {
	r, err := pm.h.decode(e)
	if err != nil {
		pm.h.log.ErrorContext(ctx, "process manager: passing over an event this build cannot decode", "stream", e.StreamID,
			"event_id", e.ID.String(), "type", e.Type, "version", e.Version, "err", err)
		key := e.StreamID
		if id, ok := strings.CutPrefix(e.StreamID, order.StreamPrefix); ok {
			key = id
		}
		pm.fail(ctx, projections.Failure{Key: key, StreamID: e.StreamID, EventID: e.ID, Action: "read event",
			Error: fmt.Sprintf("event %s (%s version %d, %s): %v", e.ID, e.StreamID, e.Version, e.Type, err)})
		return
	}
	at := e.Metadata.Timestamp
	switch ev := r.Event.(type) {
	case product.Reserved:
		pm.dirty[ev.OrderID] = true
		t := pm.orders[ev.OrderID]
		if t == nil {
			if t = pm.placements[ev.OrderID]; t == nil {
				// The placement's own ids, so what the process manager
				// writes for it is traced to the request that reserved.
				t = &tracked{since: at, held: map[string]bool{},
					correlation: e.Metadata.CorrelationID, causation: e.ID.String()}
				pm.placements[ev.OrderID] = t
			}
		}
		t.held[ev.ProductID] = true
	case product.Released:
		pm.dirty[ev.OrderID] = true
		pm.unhold(ev.OrderID, ev.ProductID)
	case product.Deducted:
		pm.dirty[ev.OrderID] = true
		pm.unhold(ev.OrderID, ev.ProductID)
	case order.Created:
		pm.dirty[ev.OrderID] = true
		t := pm.placements[ev.OrderID]
		delete(pm.placements, ev.OrderID)
		if t == nil {
			t = &tracked{held: map[string]bool{}}
		}
		t.status, t.since, t.nextTry = order.StatusPending, at, time.Time{}
		t.correlation, t.causation = e.Metadata.CorrelationID, e.ID.String()
		pm.orders[ev.OrderID] = t
	case order.Paid:
		pm.dirty[ev.OrderID] = true
		if t := pm.orders[ev.OrderID]; t != nil {
			t.chargesDue = true
		}
		pm.setStatus(ev.OrderID, order.StatusPaid, at)
	case order.Completed:
		pm.dirty[ev.OrderID] = true
		pm.setStatus(ev.OrderID, order.StatusCompleted, at)
	case order.Cancelled:
		pm.dirty[ev.OrderID] = true
		if t := pm.orders[ev.OrderID]; t != nil {
			t.refundDue, t.chargesDue = ev.Refunded, true
		}
		pm.setStatus(ev.OrderID, order.StatusCancelled, at)
	case order.Refunded:
		pm.dirty[ev.OrderID] = true
		if t := pm.orders[ev.OrderID]; t != nil {
			if _, void := t.voidsDue[ev.ChargeID]; void {
				delete(t.voidsDue, ev.ChargeID)
			} else {
				t.refundDue = false
			}
			pm.forgetIfDone(pm.orders, ev.OrderID)
		}
	case order.PaymentVoided:
		pm.dirty[ev.OrderID] = true
		if t := pm.orders[ev.OrderID]; t != nil {
			if t.voidsDue == nil {
				t.voidsDue = map[string]time.Time{}
			}
			t.voidsDue[ev.ChargeID] = at
		}
	case order.PlacementAbandoned:
		pm.dirty[ev.OrderID] = true
		if t := pm.placements[ev.OrderID]; t != nil {
			t.status, t.nextTry = order.StatusAbandoned, time.Time{}
		}
	}
}

func (pm *ProcessManager) unhold(orderID, productID string) {
	for _, m := range []map[string]*tracked{pm.placements, pm.orders} {
		if t := m[orderID]; t != nil {
			delete(t.held, productID)
			pm.forgetIfDone(m, orderID)
		}
	}
}

// forgetIfDone drops an order id that needs nothing more: it holds no
// stock, is not live, and owes no refund.
func (pm *ProcessManager) forgetIfDone(m map[string]*tracked, orderID string) {
	t := m[orderID]
	if len(t.held) == 0 && !t.refundDue && !t.chargesDue && len(t.voidsDue) == 0 && t.status != order.StatusPending && t.status != order.StatusPaid {
		delete(m, orderID)
	}
}

func (pm *ProcessManager) setStatus(orderID string, s order.Status, at time.Time) {
	t := pm.orders[orderID]
	if t == nil {
		return
	}
	t.status, t.since, t.nextTry = s, at, time.Time{}
	pm.forgetIfDone(pm.orders, orderID)
}

func (pm *ProcessManager) do(ctx context.Context, t *tracked, what, orderID string, action func(context.Context) error) {
	ctx = correlation.With(ctx, correlation.IDs{Correlation: t.correlation, Causation: t.causation, Actor: "system"})
	// A store that hangs must not stop the process manager for good.
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return action(actx)
	}()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		pm.h.log.WarnContext(ctx, "process manager: "+what+" failed; will retry", "order_id", orderID, "err", err)
		pm.fail(ctx, projections.Failure{Key: orderID, StreamID: order.Stream(orderID), Action: what, Error: err.Error()})
	case pm.failing[orderID]:
		if pm.failures != nil {
			if err := pm.failures.Clear(ctx, orderID); err != nil {
				pm.h.log.WarnContext(ctx, "process manager: clear a recovered order's failure", "order_id", orderID, "err", err)
				return
			}
		}
		delete(pm.failing, orderID)
	}
}

// fail keeps f in the failure log; a log that fails is only logged: the
// process manager goes on.
func (pm *ProcessManager) fail(ctx context.Context, f projections.Failure) {
	pm.failing[f.Key] = true
	if pm.failures == nil {
		return
	}
	if err := pm.failures.Record(ctx, f); err != nil {
		pm.h.log.WarnContext(ctx, "process manager: record a failure", "key", f.Key, "err", err)
	}
}
