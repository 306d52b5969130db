package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
)

// errSwapped ends the live loop after a rebuild moved the checkpoint: the
// runner subscribes again from the new one.
var errSwapped = errors.New("rebuilt read model swapped in")

// maxSwapFailures is how many failed swaps a shadow gets before it is
// built again.
const maxSwapFailures = 3

// finishRebuild is the swap, run by the live loop, stopped at its
// checkpoint from: the shadow catches up with the log once more, then
// replaces the live model and its checkpoint. It returns errSwapped when
// it swapped, so that the live loop subscribes again from the new
// checkpoint; any other error leaves the rebuild to be tried again.
func (r *Runner) finishRebuild(ctx context.Context, rb *rebuild, from eventstore.Position) error {
	err := r.swap(ctx, rb, from)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		var gaveUp *rebuildFailure
		if errors.As(err, &gaveUp) {
			r.failRebuild(ctx, rb, err)
			return errRebuildFailed
		}
		rb.swapFailures++
		if rb.swapFailures >= maxSwapFailures {
			// Give this shadow up; housekeep builds a new one.
			r.mu.Lock()
			r.rb = nil
			r.mu.Unlock()
		}
		return fmt.Errorf("rebuild: swap (attempt %d): %w", rb.swapFailures, err)
	}
	r.mu.Lock()
	r.rb = nil
	if r.status.Failing != nil {
		// The event the live model was stuck on is in the new one.
		r.status.Failing = nil
		r.status.State = StateCatchingUp
	}
	r.mu.Unlock()
	r.log.Info("projection rebuilt and swapped in", "events", rb.status.Applied, "parked", rb.status.Parked,
		"position", rb.pos.String(), "took", r.opts.Now().Sub(rb.status.Started).String())
	return errSwapped
}

func (r *Runner) swap(ctx context.Context, rb *rebuild, from eventstore.Position) error {
	// The swap moves the checkpoint, a restart back to the start: until
	// the live loop reads it again, readers ask the database.
	r.opts.Progress.forget(r.name)
	if !rb.restart {
		if err := r.catchUpShadow(ctx, rb); err != nil {
			return err
		}
		if rb.shadow != nil {
			if err := r.sink.(Rebuildable).Swap(ctx); err != nil {
				return err
			}
		}
	}
	// A restart replays the log into the live target from the start.
	to := rb.pos
	if rb.restart {
		to = eventstore.Start
	}
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		// Claimed, and moved to where the new model stands, first: the
		// row stays locked until the swap commits.
		if err := r.state.claim(ctx, tx, r.name, from, to); err != nil {
			return err
		}
		if r.p != nil {
			live := pgx.Identifier{r.p.Schema()}.Sanitize()
			tables := r.p.Tables()
			// Take the live tables in their listed order first, so that the
			// drops below cannot deadlock with readers joining them.
			names := make([]string, len(tables))
			for i, t := range tables {
				names[i] = pgx.Identifier{r.p.Schema(), t}.Sanitize()
			}
			if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				return err
			}
			for i := len(tables) - 1; i >= 0; i-- {
				if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{r.p.Schema(), tables[i]}.Sanitize()+" CASCADE"); err != nil {
					return err
				}
			}
			for _, t := range tables {
				if _, err := tx.Exec(ctx, "ALTER TABLE "+pgx.Identifier{rb.schema, t}.Sanitize()+" SET SCHEMA "+live); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{rb.schema}.Sanitize()+" CASCADE"); err != nil {
				return err
			}
		}
		// The shadow's parked list replaces the live one. After a
		// restart the entries park again as they fail again, and skipped
		// events are skipped again.
		if err := r.state.swapParked(ctx, tx, r.name, rb.restart); err != nil {
			return err
		}
		return r.state.rebuildSwapped(ctx, tx, r.name, rb.requestedAt, rb.status.Applied, rb.status.Parked)
	})
}
