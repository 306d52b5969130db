package projections

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// rebuildPage is how many events the builder reads and applies at once.
const rebuildPage = 5_000

// makeShadow makes an empty shadow; for a sink that has none, it marks
// the rebuild as a restart from the start of the log.
func (r *Runner) makeShadow(ctx context.Context, rb *rebuild) error {
	live, err := r.state.loadParked(ctx, r.name, false)
	if err != nil {
		return err
	}
	if err := r.state.clearShadowParked(ctx, r.name); err != nil {
		return err
	}
	r.mu.Lock()
	rb.pos, rb.status.Scanned, rb.status.Applied, rb.status.Parked, rb.status.Position = eventstore.Start, 0, 0, 0, eventstore.Start
	rb.parked = parkedState{streams: map[string]int{}, skipped: live.skipped}
	rb.parkRun = 0
	r.mu.Unlock()
	switch s := r.sink.(type) {
	case nil:
		rb.schema = shadowSchema(r.p.Schema(), r.name)
		err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{rb.schema}.Sanitize()+" CASCADE"); err != nil {
				return err
			}
			return r.setupIn(ctx, tx, rb.schema)
		})
		if err != nil {
			return fmt.Errorf("shadow schema %s: %w", rb.schema, err)
		}
	case Rebuildable:
		shadow, err := s.Shadow(ctx)
		if err != nil {
			return fmt.Errorf("shadow: %w", err)
		}
		if err := shadow.Setup(ctx); err != nil {
			return fmt.Errorf("shadow setup: %w", err)
		}
		rb.shadow = shadow
	default:
		rb.restart = true
	}
	return nil
}

// shadowSchema is the schema a rebuild of the projection builds in.
func shadowSchema(schema, name string) string {
	s := schema + "_rebuild_" + strings.NewReplacer(".", "_", "-", "_").Replace(name)
	if len(s) > 63 { // PostgreSQL's identifier limit
		h := fnv.New64a()
		h.Write([]byte(name))
		s = fmt.Sprintf("%s_rebuild_%016x", schema[:min(len(schema), 30)], h.Sum64())
	}
	return s
}

// catchUpShadow applies the log after rb.pos to the shadow until a read
// comes back short: the end of the log as of then.
func (r *Runner) catchUpShadow(ctx context.Context, rb *rebuild) error {
	type page struct {
		events []eventstore.Event
		err    error
	}
	// Read the next page while the current one is applied.
	pages := make(chan page, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(pages)
		from := rb.pos
		for {
			evs, err := r.store.ReadAll(rctx, from, rebuildPage)
			select {
			case pages <- page{evs, err}:
			case <-rctx.Done():
				return
			}
			if err != nil || len(evs) < rebuildPage {
				return
			}
			from = evs[len(evs)-1].Position
		}
	}()
	for p := range pages {
		if p.err != nil {
			return fmt.Errorf("read the log after %s: %w", rb.pos, p.err)
		}
		if len(p.events) == 0 {
			continue
		}
		scanned, last := len(p.events), p.events[len(p.events)-1].Position
		batch := slices.DeleteFunc(p.events, func(e eventstore.Event) bool { return !r.filter.Match(&e) })
		if len(batch) > 0 {
			if err := r.applyShadow(ctx, rb, batch); err != nil {
				return err
			}
		}
		r.mu.Lock()
		rb.pos = last
		rb.status.Position = last
		rb.status.Scanned += int64(scanned)
		r.mu.Unlock()
	}
	return ctx.Err()
}

// applyShadow applies batch to the shadow, as applyBatch does to the live
// model: when it fails, one event at a time, parking (or, under
// PolicyHalt, giving the rebuild up on) an event that keeps failing.
// Errors: ctx's, a transient failure (the build goes on later from
// rb.pos, which the events applied one at a time move), *rebuildFailure.
func (r *Runner) applyShadow(ctx context.Context, rb *rebuild, batch []eventstore.Event) error {
	st := rb.plan(batch)
	err := r.commitShadow(ctx, rb, st)
	if err == nil {
		r.shadowStepped(rb, st)
		return nil
	}
	if ctx.Err() != nil || r.transient(ctx, err) {
		return fmt.Errorf("apply to the shadow: %w", err)
	}
	for i := range batch {
		if err := r.applyShadowOne(ctx, rb, &batch[i]); err != nil {
			return err
		}
		r.mu.Lock()
		rb.pos = batch[i].Position
		r.mu.Unlock()
	}
	return nil
}

// applyShadowOne is applyShadow for one event.
func (r *Runner) applyShadowOne(ctx context.Context, rb *rebuild, e *eventstore.Event) error {
	st := rb.plan([]eventstore.Event{*e})
	for attempt := 1; ; attempt++ {
		err := r.commitShadow(ctx, rb, st)
		if err == nil {
			r.shadowStepped(rb, st)
			return nil
		}
		if ctx.Err() != nil || len(st.apply) == 0 || r.transient(ctx, err) {
			return fmt.Errorf("apply to the shadow: %w", err)
		}
		if attempt < r.opts.ParkAfter {
			r.log.Warn("projection rebuild: an event failed; retrying", "event_id", e.ID.String(), "attempt", attempt, "error", err)
			if err := retry.Sleep(ctx, r.backoff(attempt-1)); err != nil {
				return err
			}
			continue
		}
		switch {
		case r.opts.Policy == PolicyHalt:
			return &rebuildFailure{e: *e, err: err, why: "fails to apply (policy halt)"}
		case rb.parkRun >= maxParkRun:
			return &rebuildFailure{e: *e, err: err, why: fmt.Sprintf("fails to apply, after %d events parked in a row", rb.parkRun)}
		}
		park := step{park: []parkRow{{e: e, status: ParkedStatusParked, err: err.Error(), attempts: attempt}}}
		if err := r.commitShadow(ctx, rb, park); err != nil {
			return fmt.Errorf("park in the shadow: %w", err)
		}
		r.shadowStepped(rb, park)
		r.log.Warn("projection rebuild parked an event and its stream", "event_id", e.ID.String(), "stream", e.StreamID,
			"version", e.Version, "type", e.Type, "error", err)
		return nil
	}
}

// plan is the shadow's step of batch: events of streams parked in the
// shadow join its list, events admins skipped are skipped again (and
// recorded in the shadow's list), the rest are applied.
func (rb *rebuild) plan(batch []eventstore.Event) step {
	var st step
	if len(rb.parked.streams) == 0 && len(rb.parked.skipped) == 0 {
		st.apply = batch // the common case: nothing set aside
		return st
	}
	for i := range batch {
		e := &batch[i]
		if skip, ok := rb.parked.skipped[e.ID]; ok {
			st.park = append(st.park, parkRow{e: e, status: ParkedStatusSkipped, skip: &skip})
		} else if rb.parked.streams[e.StreamID] > 0 {
			st.park = append(st.park, parkRow{e: e, status: ParkedStatusParked})
		} else {
			st.apply = append(st.apply, *e)
		}
	}
	return st
}

// commitShadow carries out st on the shadow: a Projection's events and
// entries in one transaction on the shadow schema; a sink's events
// through its shadow, then the entries.
func (r *Runner) commitShadow(ctx context.Context, rb *rebuild, st step) error {
	if rb.shadow != nil && len(st.apply) > 0 {
		if err := rb.shadow.Apply(ctx, st.apply); err != nil {
			return err
		}
	}
	if len(st.park) == 0 && (r.p == nil || len(st.apply) == 0) {
		return nil
	}
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if r.p != nil && len(st.apply) > 0 {
			if err := useSchema(ctx, tx, rb.schema); err != nil {
				return err
			}
			if err := r.p.Apply(ctx, tx, st.apply); err != nil {
				return err
			}
		}
		return r.state.park(ctx, tx, r.name, true, st.park)
	})
}

// shadowStepped records that st was committed to the shadow.
func (r *Runner) shadowStepped(rb *rebuild, st step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rb.status.Applied += int64(len(st.apply))
	if len(st.apply) > 0 {
		rb.parkRun = 0
	}
	for _, p := range st.park {
		if p.status == ParkedStatusSkipped {
			continue
		}
		rb.parked.streams[p.e.StreamID]++
		rb.status.Parked++
		if p.err != "" {
			rb.parkRun++
		}
	}
}
