package projections

import (
	"context"
	"time"
)

// housekeep runs beside the live loop while the runner is active: every
// reportInterval it writes the runner's status to the database and looks
// for a rebuild request, starting the builder when there is one.
func (r *Runner) housekeep(ctx context.Context) {
	t := time.NewTicker(r.reportInterval())
	defer t.Stop()
	done := make(chan struct{})
	close(done)
	builder := (<-chan struct{})(done)
	for {
		r.measureLag(ctx)
		if err := r.report(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("projection: write status", "error", err)
		}
		if isClosed(builder) && r.rebuildReady() == nil {
			requested, err := r.state.rebuildRequested(ctx, r.name)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("projection: look for a rebuild request", "error", err)
			}
			if requested != nil {
				b := make(chan struct{})
				builder = b
				go func() {
					defer close(b)
					r.build(ctx, *requested)
				}()
			}
		}
		select {
		case <-ctx.Done():
			<-builder
			r.mu.Lock()
			r.rb = nil
			r.mu.Unlock()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = r.state.stopped(wctx, r.name)
			return
		case <-t.C:
		}
	}
}

// reportInterval is how often an active runner writes its status.
func (r *Runner) reportInterval() time.Duration { return min(r.opts.LockPoll, ReportTTL/3) }

// report writes the runner's status to its checkpoint row, and wakes the
// live loop when admins have asked for something on the parked list.
func (r *Runner) report(ctx context.Context) error {
	due, err := r.state.report(ctx, r.name, r.Status(), r.opts.Policy)
	if due {
		r.wakeActions()
	}
	return err
}
