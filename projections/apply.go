package projections

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/outage"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// step is what one transaction of the live model does: apply events, add
// entries to the parked list, drop or mark entries, and move the
// checkpoint to to (which may be where it is).
type step struct {
	apply   []eventstore.Event
	park    []parkRow
	unpark  []uuid.UUID // entries to drop: their events applied
	skipped []uuid.UUID // entries an admin asked to skip, now skipped
	to      eventstore.Position
}

// plan is the step of a batch that follows the checkpoint: events of
// parked streams join the parked list, events admins skipped pass, the
// rest are applied.
func (r *Runner) plan(batch []eventstore.Event) step {
	st := step{to: batch[len(batch)-1].Position}
	if len(r.parked.streams) == 0 && len(r.parked.skipped) == 0 {
		st.apply = batch // the common case: nothing set aside
		return st
	}
	for i := range batch {
		e := &batch[i]
		switch {
		case r.isSkipped(e.ID):
		case r.parked.streams[e.StreamID] > 0:
			st.park = append(st.park, parkRow{e: e, status: ParkedStatusParked})
		default:
			st.apply = append(st.apply, *e)
		}
	}
	return st
}

func (r *Runner) isSkipped(id uuid.UUID) bool {
	_, ok := r.parked.skipped[id]
	return ok
}

// applyBatch applies batch, which follows the checkpoint from, and returns
// the new checkpoint. When the batch fails it is rolled back and its
// events are applied one at a time, so the events before a failing one
// are applied and the failing one is found, named in Status, and retried
// with backoff until it applies, is parked, or halts the projection (see
// park.go). It never skips an event an admin did not skip.
// Errors: errFenced; errRebuildReady when it is stuck on an event and a
// rebuild is ready to replace the model; ctx's when it ends.
func (r *Runner) applyBatch(ctx context.Context, from eventstore.Position, batch []eventstore.Event) (eventstore.Position, error) {
	st := r.plan(batch)
	err := r.commit(ctx, from, st)
	if err == nil {
		r.stepped(st)
		return st.to, nil
	}
	if ctx.Err() != nil || errors.Is(err, errFenced) {
		return from, err
	}
	if len(batch) > 1 {
		r.log.Warn("projection batch failed; applying its events one at a time",
			"events", len(batch), "from", from.String(), "error", err)
	}
	for i := range batch {
		next, err := r.applyOne(ctx, from, &batch[i])
		if err != nil {
			return from, err
		}
		from = next
	}
	return from, nil
}

// applyOne applies e, which follows the checkpoint from, on its own, and
// returns the new checkpoint: e's position once e is applied, parked or
// skipped.
func (r *Runner) applyOne(ctx context.Context, from eventstore.Position, e *eventstore.Event) (eventstore.Position, error) {
	if st := r.plan([]eventstore.Event{*e}); len(st.apply) == 0 {
		if err := r.commit(ctx, from, st); err != nil {
			return from, err
		}
		r.stepped(st)
		return st.to, nil
	}
	for attempt := 1; ; attempt++ {
		// A halted event that applies at last leaves the list.
		err := r.commit(ctx, from, step{apply: []eventstore.Event{*e}, unpark: []uuid.UUID{e.ID}, to: e.Position})
		if err == nil {
			r.stepped(step{apply: []eventstore.Event{*e}, to: e.Position})
			return e.Position, nil
		}
		if ctx.Err() != nil || errors.Is(err, errFenced) {
			return from, err
		}
		r.failed(err, e)
		if r.readyRebuild() != nil {
			return from, errRebuildReady
		}
		poison := attempt >= r.opts.ParkAfter && !r.transient(ctx, err)
		switch {
		case poison && r.opts.Policy == PolicyPark && r.parkRun < maxParkRun:
			park := step{park: []parkRow{{e: e, status: ParkedStatusParked, err: err.Error(), attempts: attempt}}, to: e.Position}
			perr := r.commit(ctx, from, park)
			if perr == nil {
				r.stepped(park)
				r.log.Warn("projection parked an event and its stream", "event_id", e.ID.String(), "stream", e.StreamID,
					"version", e.Version, "type", e.Type, "attempts", attempt, "error", err)
				return e.Position, nil
			}
			if ctx.Err() != nil || errors.Is(perr, errFenced) {
				return from, perr
			}
		case poison && r.opts.Policy == PolicyHalt:
			skip, err := r.halt(ctx, from, e, err, attempt)
			if err != nil {
				return from, err
			}
			if skip {
				return e.Position, nil
			}
			continue
		}
		if err := retry.Sleep(ctx, r.backoff(attempt-1)); err != nil {
			return from, err
		}
	}
}

// halt records that the projection stopped on e, and waits for the next
// attempt: a backoff, or sooner when an admin asks for a retry or a skip.
// skip reports that e was skipped (the checkpoint is past it).
func (r *Runner) halt(ctx context.Context, from eventstore.Position, e *eventstore.Event, cause error, attempt int) (skip bool, err error) {
	rec := step{park: []parkRow{{e: e, status: ParkedStatusHalted, err: cause.Error(), attempts: 1}}, to: from}
	if err := r.commit(ctx, from, rec); err != nil && (ctx.Err() != nil || errors.Is(err, errFenced)) {
		return false, err
	}
	r.mu.Lock()
	r.status.State = StateHalted
	r.mu.Unlock()
	t := time.NewTimer(r.backoff(attempt - 1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
	case <-r.actions:
	}
	action, err := r.doActions(ctx, from, e)
	if err != nil || action == "" {
		return false, err
	}
	if action == ActionRetry {
		return false, r.state.clearActions(ctx, r.name, e.StreamID)
	}
	st := step{skipped: []uuid.UUID{e.ID}, to: e.Position}
	if err := r.commit(ctx, from, st); err != nil {
		return false, err
	}
	r.stepped(st)
	r.log.Warn("projection skipped the event it was halted on, as an admin asked", "event_id", e.ID.String(),
		"stream", e.StreamID, "version", e.Version, "type", e.Type)
	return true, nil
}

// commit carries out st, which follows the checkpoint from, in one
// transaction.
//
// A sink has st's events applied first, outside the transaction: a crash
// before the commit applies them again (Sink says why that is safe).
func (r *Runner) commit(ctx context.Context, from eventstore.Position, st step) error {
	if r.sink != nil && len(st.apply) > 0 {
		if err := r.sink.Apply(ctx, st.apply); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		// Roll back on a context of its own: a cancelled ctx must still
		// end the transaction rather than leave it to the pool.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx) // after Commit it does nothing
	}()
	if r.p != nil && len(st.apply) > 0 {
		if err := useSchema(ctx, tx, r.p.Schema()); err != nil {
			return err
		}
		if err := r.p.Apply(ctx, tx, st.apply); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
	}
	// Claimed after the apply, so that the checkpoint's row is locked
	// only for the end of the transaction, not for a long batch: the
	// report and a rebuild request write that row too.
	if err := r.state.claim(ctx, tx, r.name, from, st.to); err != nil {
		return err
	}
	if err := r.state.park(ctx, tx, r.name, false, st.park); err != nil {
		return err
	}
	if err := r.state.unpark(ctx, tx, r.name, st.unpark); err != nil {
		return err
	}
	if err := r.state.skip(ctx, tx, r.name, st.skipped); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	r.opts.Progress.set(r.name, st.to)
	return nil
}

// stepped records that st was committed.
func (r *Runner) stepped(st step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	failing := r.status.Failing
	for _, p := range st.park {
		r.parked.streams[p.e.StreamID]++
		if p.err != "" {
			r.parkRun++
		}
		if failing != nil && failing.ID == p.e.ID {
			r.status.Failing = nil // parked: no longer what the runner is stuck on
		}
	}
	for _, id := range st.skipped {
		r.parked.skipped[id] = ParkedEvent{EventID: id, Status: ParkedStatusSkipped}
		if failing != nil && failing.ID == id {
			r.status.Failing = nil
		}
	}
	if n := len(st.apply); n > 0 {
		last := st.apply[n-1]
		r.status.Applied += int64(n)
		r.lastTS = last.Metadata.Timestamp
		r.parkRun = 0
		if failing != nil && failing.ID == last.ID {
			r.log.Info("projection recovered", "event_id", failing.ID.String(), "attempts", failing.Attempts)
			r.status.Failing = nil
		}
	}
	r.status.Position = st.to
	r.idle = false
	if r.status.Failing == nil && (r.status.State == StateFailing || r.status.State == StateHalted) {
		r.status.State = StateCatchingUp
		r.status.LastError = ""
	}
}

// failed records and logs err, which ev caused when ev is not nil.
func (r *Runner) failed(err error, ev *eventstore.Event) {
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = false
	if r.status.State != StateHalted {
		r.status.State = StateFailing
	}
	if ev == nil {
		r.status.LastError = err.Error()
		r.log.Error("projection failing", "error", err)
		return
	}
	f := r.status.Failing
	if f == nil || f.ID != ev.ID {
		f = &FailingEvent{ID: ev.ID, StreamID: ev.StreamID, Version: ev.Version, Type: ev.Type,
			Position: ev.Position, Since: now}
		r.status.Failing = f
	}
	f.Attempts++
	f.Err = err.Error()
	r.status.LastError = fmt.Sprintf("event %s (stream %s, version %d, type %s, position %s): %v",
		ev.ID, ev.StreamID, ev.Version, ev.Type, ev.Position, err)
	r.log.Error("projection failing on an event", "event_id", ev.ID.String(), "stream", ev.StreamID,
		"version", ev.Version, "type", ev.Type, "position", ev.Position.String(), "attempts", f.Attempts, "error", err)
}

// Pinger is a Sink that can tell whether its target is up. When an event
// keeps failing with an error the runner cannot classify, it asks the
// target: one that is down, rather than the event, is why.
type Pinger interface {
	Ping(ctx context.Context) error
}

// transient reports whether err, a failure to apply, is the target's
// rather than the event's: isTransient says so, or the target (a Pinger
// sink, or the database of a Projection) fails a health check now.
func (r *Runner) transient(ctx context.Context, err error) bool {
	if isTransient(err) {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if p, ok := r.sink.(Pinger); ok {
		return p.Ping(pctx) != nil
	}
	return r.sink == nil && r.pool.Ping(pctx) != nil
}

// isTransient reports whether err is a failure of the target rather than
// of the event: marked Transient by a sink, a timeout, a network or
// connection failure, or a PostgreSQL error of a class that says the same
// (connection, resources, operator intervention, a rolled-back
// transaction, a lock not available, a system error).
func isTransient(err error) bool {
	var te *transientError
	var pe *pgconn.PgError
	var temp interface{ Temporary() bool }
	switch {
	case errors.As(err, &te), outage.Is(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &pe):
		switch pe.Code[:2] {
		case "40", "XX":
			return true
		}
		return pe.Code == "55P03"
	case errors.As(err, &temp):
		return temp.Temporary()
	}
	return false
}
