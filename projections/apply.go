package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

// applyBatch applies batch, which follows the checkpoint from, and returns
// the new checkpoint. When the batch fails it is rolled back and its
// events are applied one at a time, so the events before a failing one
// are applied and the failing one is found, named in Status and retried
// with backoff until it applies or ctx ends. It never skips an event.
// Errors: errFenced; errRebuildReady when it is stuck on an event and a
// rebuild is ready to replace the model; ctx's when it ends.
func (r *Runner) applyBatch(ctx context.Context, from eventstore.Position, batch []eventstore.Event) (eventstore.Position, error) {
	err := r.commit(ctx, from, batch)
	if err == nil {
		r.applied(batch)
		return batch[len(batch)-1].Position, nil
	}
	if ctx.Err() != nil || errors.Is(err, errFenced) {
		return from, err
	}
	if len(batch) > 1 {
		r.log.Warn("projection batch failed; applying its events one at a time",
			"events", len(batch), "from", from.String(), "error", err)
	}
	for i := range batch {
		one := batch[i : i+1]
		for attempt := 0; ; attempt++ {
			err := r.commit(ctx, from, one)
			if err == nil {
				break
			}
			if ctx.Err() != nil || errors.Is(err, errFenced) {
				return from, err
			}
			r.failed(err, &batch[i])
			if r.readyRebuild() != nil {
				return from, errRebuildReady
			}
			if err := sleep(ctx, r.backoff(attempt)); err != nil {
				return from, err
			}
		}
		r.applied(one)
		from = batch[i].Position
	}
	return from, nil
}

// commit applies batch and moves the checkpoint from from to its last
// event, in one transaction.
//
// A sink has the batch applied first, outside the transaction: a crash
// before the commit applies it again (Sink says why that is safe).
func (r *Runner) commit(ctx context.Context, from eventstore.Position, batch []eventstore.Event) error {
	if r.sink != nil {
		if err := r.sink.Apply(ctx, batch); err != nil {
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
	if err := claimCheckpoint(ctx, tx, r.name, from); err != nil {
		return err
	}
	if r.p != nil {
		if err := useSchema(ctx, tx, r.p.Schema()); err != nil {
			return err
		}
		if err := r.p.Apply(ctx, tx, batch); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
	}
	if err := advanceCheckpoint(ctx, tx, r.name, batch[len(batch)-1].Position); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// applied records that batch was applied.
func (r *Runner) applied(batch []eventstore.Event) {
	last := batch[len(batch)-1]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Applied += int64(len(batch))
	r.status.Position = last.Position
	r.lastTS = last.Metadata.Timestamp
	r.idle = false
	if r.status.Failing != nil {
		r.log.Info("projection recovered", "event_id", r.status.Failing.ID.String(), "attempts", r.status.Failing.Attempts)
		r.status.Failing = nil
	}
	if r.status.State == StateFailing {
		r.status.State = StateCatchingUp
	}
}

// afterBatch sets the state after a batch that ends at pos: catching up
// when the batch was full, live otherwise. While catching up it counts
// the lag in events, at most once a second.
func (r *Runner) afterBatch(ctx context.Context, pos eventstore.Position, full bool) {
	now := r.opts.Now()
	r.mu.Lock()
	if !full {
		r.status.State, r.status.LagEvents = StateLive, 0
		r.mu.Unlock()
		return
	}
	r.status.State = StateCatchingUp
	count := now.Sub(r.lagAt) >= time.Second
	if count {
		r.lagAt = now
	}
	r.mu.Unlock()
	if !count {
		return
	}
	n, err := r.countAfter(ctx, pos)
	if err != nil {
		return // best effort: keep the last count
	}
	r.mu.Lock()
	r.status.LagEvents = n
	r.mu.Unlock()
}

// countAfter counts the events matching the projection's filter among
// the next LagCountCap events of the log after pos.
func (r *Runner) countAfter(ctx context.Context, pos eventstore.Position) (int64, error) {
	filter := r.filter
	var n int64
	for scanned := 0; scanned < LagCountCap; {
		page, err := r.store.ReadAll(ctx, pos, min(LagCountCap-scanned, 1000))
		if err != nil {
			return 0, err
		}
		for i := range page {
			if filter.Match(&page[i]) {
				n++
			}
		}
		scanned += len(page)
		if len(page) < 1000 {
			break
		}
		pos = page[len(page)-1].Position
	}
	return n, nil
}

// setState sets the state.
func (r *Runner) setState(state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.State = state
	r.idle = false
}

// setIdle records that the runner has applied everything delivered.
func (r *Runner) setIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.Failing == nil {
		r.status.State = StateLive
		r.idle = true
	}
}

// failed records and logs err, which ev caused when ev is not nil.
func (r *Runner) failed(err error, ev *eventstore.Event) {
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.State = StateFailing
	r.idle = false
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
