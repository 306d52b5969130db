package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// viewEntry is how one tracked order id is kept in the ViewStore. The
// format is the process manager's own and can change: an entry this build
// cannot read makes it rebuild its view from the log, which it can always
// do.
type viewEntry struct {
	Format      int                  `json:"format"`
	Placement   bool                 `json:"placement,omitempty"`
	Status      order.Status         `json:"status,omitempty"`
	Since       time.Time            `json:"since"`
	Held        []string             `json:"held,omitempty"`
	RefundDue   bool                 `json:"refund_due,omitempty"`
	ChargesDue  bool                 `json:"charges_due,omitempty"`
	VoidsDue    map[string]time.Time `json:"voids_due,omitempty"`
	Correlation string               `json:"correlation,omitempty"`
	Causation   string               `json:"causation,omitempty"`
}

// viewFormat is the format this build writes and reads.
const viewFormat = 1

func encodeEntry(t *tracked, placement bool) (json.RawMessage, error) {
	return json.Marshal(viewEntry{Format: viewFormat, Placement: placement, Status: t.status, Since: t.since,
		Held: slices.Sorted(maps.Keys(t.held)), RefundDue: t.refundDue, ChargesDue: t.chargesDue, VoidsDue: t.voidsDue,
		Correlation: t.correlation, Causation: t.causation})
}

func decodeEntry(data json.RawMessage) (t *tracked, placement bool, err error) {
	var v viewEntry
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, false, err
	}
	if v.Format != viewFormat {
		return nil, false, fmt.Errorf("format %d, this build reads %d", v.Format, viewFormat)
	}
	t = &tracked{status: v.Status, since: v.Since, held: map[string]bool{}, refundDue: v.RefundDue, chargesDue: v.ChargesDue,
		voidsDue: v.VoidsDue, correlation: v.Correlation, causation: v.Causation}
	for _, p := range v.Held {
		t.held[p] = true
	}
	return t, v.Placement, nil
}

// load sets the view to what the ViewStore holds, or to an empty one at
// the start of the log when there is no store or what it holds cannot be
// read (then the store is reset, to be saved anew). Errors: the store's
// when it cannot be read at all; the process manager must not act on a
// view that misses what it had.
func (pm *ProcessManager) load(ctx context.Context) error {
	pm.placements, pm.orders, pm.dirty = map[string]*tracked{}, map[string]*tracked{}, map[string]bool{}
	pm.saved, pm.at = eventstore.Start, eventstore.Start
	if pm.view == nil {
		return nil
	}
	at, entries, err := pm.view.Load(ctx)
	if err != nil {
		return fmt.Errorf("process manager: %w", err)
	}
	for id, data := range entries {
		t, placement, err := decodeEntry(data)
		if err != nil {
			pm.h.log.WarnContext(ctx, "process manager: its saved view cannot be read; rebuilding it from the log", "order_id", id, "err", err)
			pm.placements, pm.orders = map[string]*tracked{}, map[string]*tracked{}
			if err := pm.view.Reset(ctx); err != nil {
				return fmt.Errorf("process manager: %w", err)
			}
			return nil
		}
		if placement {
			pm.placements[id] = t
		} else {
			pm.orders[id] = t
		}
	}
	pm.saved, pm.at = at, at
	pm.h.log.InfoContext(ctx, "process manager: view loaded", "orders", len(pm.orders), "placements", len(pm.placements),
		"commit", at.Commit, "prepare", at.Prepare)
	return nil
}

// save writes what changed in the view since the last save, with the
// position it reflects. A failed save is only logged and tried again
// next tick, the changes kept; a view saved by another instance since
// this one loaded it is an error: this one's is stale.
func (pm *ProcessManager) save(ctx context.Context) error {
	// An action can change the view without an event (a check that found
	// nothing to do), so what is dirty is saved even where the log did
	// not move.
	if pm.view == nil || (pm.at == pm.saved && len(pm.dirty) == 0) {
		return nil
	}
	put := map[string]json.RawMessage{}
	var drop []string
	for id := range pm.dirty {
		t, placement := pm.placements[id], true
		if t == nil {
			t, placement = pm.orders[id], false
		}
		if t == nil {
			drop = append(drop, id)
			continue
		}
		data, err := encodeEntry(t, placement)
		if err != nil {
			return fmt.Errorf("process manager: encode the view of order %s: %w", id, err)
		}
		put[id] = data
	}
	if err := pm.view.Save(ctx, pm.saved, pm.at, put, drop); err != nil {
		if errors.Is(err, projections.ErrViewMoved) {
			return fmt.Errorf("process manager: %w", err)
		}
		pm.h.log.WarnContext(ctx, "process manager: save its view; will retry", "err", err)
		return nil
	}
	pm.saved = pm.at
	clear(pm.dirty)
	return nil
}

// saveOnExit saves the view once more as Run returns, even when ctx has
// ended, so that the next start reads as little as it can; a crash skips
// it and the next start reads from the last tick's save.
func (pm *ProcessManager) saveOnExit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := pm.save(ctx); err != nil {
		pm.h.log.WarnContext(ctx, "process manager: save its view on the way out", "err", err)
	}
}
