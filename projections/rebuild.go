package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// A rebuild, filed with RequestRebuild, is carried out by the projection's
// active runner while the live read model keeps serving:
//
//  1. A builder goroutine makes an empty shadow copy of the model (a
//     schema of its own for a Projection, Rebuildable.Shadow for a sink)
//     and applies the whole log to it, reading the log with ReadAll in
//     large pages.
//  2. Once it has caught up it signals the runner's live loop, which stops
//     between two batches at its checkpoint, lets the shadow catch up with
//     the log's end once more, and swaps: a Projection's live tables are
//     dropped and the shadow's moved in, and the checkpoint set to the
//     shadow's, in one transaction, so readers see the old model or the
//     new one and nothing in between. A sink swaps with Rebuildable.Swap
//     and then moves the checkpoint; a crash in between re-applies events
//     to the new target, which a sink must take (see Sink).
//  3. The live loop carries on from the new checkpoint.
//
// A build that fails goes on from where it was (the shadow keeps what it
// applied); a swap that fails is tried again, and a shadow whose swap
// failed maxSwapFailures times is built anew. A live model stuck on an
// event does not hold a ready rebuild back: it is replaced.
//
// The shadow has a parked list of its own, which replaces the live one at
// the swap: an event that keeps failing in the shadow is parked there with
// its stream (policy park), and events admins skipped in the live model
// are skipped again (and recorded so); under policy halt such an event
// gives the rebuild up, named in the report's rebuild_error, instead of
// retrying it forever.
//
// A sink that is not Rebuildable (a publisher) is "rebuilt" by moving its
// checkpoint back to the start: everything is delivered again.
//
// If the active period ends during a rebuild, the request stays filed and
// the next active runner starts it again from scratch.
//
// Here are the builder's life and its giving up; the shadow is built in
// shadow.go and swapped in by swap.go, and housekeep starts the builder.

// rebuild is the state of the rebuild in progress.
type rebuild struct {
	requestedAt time.Time     // the request it answers
	ready       chan struct{} // closed when the builder has caught up
	shadow      Sink          // the shadow of a Rebuildable sink
	schema      string        // the shadow schema of a Projection
	restart     bool          // a sink without a shadow: just start again
	pos         eventstore.Position
	status      RebuildStatus
	// parked is the shadow's parked list, with the live model's skipped
	// events to skip again; parkRun counts events parked in a row.
	parked  parkedState
	parkRun int
	// swapFailures counts failed swaps of this shadow (only the live
	// loop touches it).
	swapFailures int
}

// errRebuildReady stops the retries of a failing event when a rebuilt
// model is ready to be swapped in.
var errRebuildReady = errors.New("a rebuilt model is ready to swap in")

// readyRebuild returns the rebuild whose shadow has caught up and waits
// to be swapped in; nil when there is none.
func (r *Runner) readyRebuild() *rebuild {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rb == nil || !isClosed(r.rb.ready) {
		return nil
	}
	return r.rb
}

// rebuildReady is the channel the live loop watches for a rebuild ready
// to swap; nil (never ready) when there is none.
func (r *Runner) rebuildReady() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rb == nil {
		return nil
	}
	return r.rb.ready
}

func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// build is the builder: it fills a fresh shadow from the whole log and
// closes rb.ready once it has caught up, for the live loop to swap. It
// retries failures with backoff until ctx ends.
func (r *Runner) build(ctx context.Context, requestedAt time.Time) {
	rb := &rebuild{requestedAt: requestedAt, ready: make(chan struct{}),
		status: RebuildStatus{Started: r.opts.Now()}}
	r.mu.Lock()
	r.rb = rb
	r.mu.Unlock()
	r.log.Info("projection rebuild started")
	if err := r.state.rebuildStarted(ctx, r.name); err != nil {
		r.log.Warn("projection rebuild: record start", "error", err)
	}
	made := false
	for attempt := 0; ctx.Err() == nil; attempt++ {
		var err error
		if !made {
			err = r.makeShadow(ctx, rb)
			made = err == nil
		}
		if err == nil && !rb.restart {
			// After a failure this goes on from rb.pos: the shadow holds
			// every page applied so far (each page is one transaction, or
			// an idempotent sink write).
			err = r.catchUpShadow(ctx, rb)
		}
		if err == nil {
			r.mu.Lock()
			rb.status.CaughtUp = true
			r.mu.Unlock()
			close(rb.ready)
			select {
			case r.swapReady <- struct{}{}:
			default: // a wake-up is pending already
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		var gaveUp *rebuildFailure
		if errors.As(err, &gaveUp) {
			r.failRebuild(ctx, rb, err)
			return
		}
		// The live model is fine: the failure is the rebuild's, shown in
		// its status and the log, not as the projection failing.
		r.mu.Lock()
		rb.status.LastError = err.Error()
		r.mu.Unlock()
		r.log.Error("projection rebuild failing; retrying", "error", err, "attempt", attempt+1)
		if retry.Sleep(ctx, r.backoff(attempt)) != nil {
			return
		}
	}
}

// errRebuildFailed ends the live loop after the rebuild it was swapping
// in was given up (see rebuildFailure).
var errRebuildFailed = errors.New("rebuild given up")

// rebuildFailure gives a rebuild up: an event keeps failing in the shadow
// and may not be parked.
type rebuildFailure struct {
	e   eventstore.Event
	err error
	why string
}

func (f *rebuildFailure) Error() string {
	return fmt.Sprintf("event %s (stream %s, version %d, type %s, position %s) %s: %v",
		f.e.ID, f.e.StreamID, f.e.Version, f.e.Type, f.e.Position, f.why, f.err)
}

func (f *rebuildFailure) Unwrap() error { return f.err }

// failRebuild gives rb up: the request is withdrawn and the report's
// rebuild_error says why, until the next request. The live model is left
// as it is.
func (r *Runner) failRebuild(ctx context.Context, rb *rebuild, cause error) {
	r.mu.Lock()
	if r.rb == rb {
		r.rb = nil
	}
	applied, parked := rb.status.Applied, rb.status.Parked
	r.mu.Unlock()
	r.log.Error("projection rebuild given up", "error", cause)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.state.rebuildGivenUp(wctx, r.name, rb.requestedAt, cause.Error(), applied, parked); err != nil {
		r.log.Warn("projection rebuild: record that it was given up", "error", err)
	}
}
