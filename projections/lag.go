package projections

import (
	"context"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

// measureLag counts the events the projection takes after its checkpoint
// and sets the state from the count: live when nothing is left, or no more
// than a batch while the runner keeps up (its checkpoint reached the last
// event the measure before counted); catching up otherwise. A failing or
// halted runner keeps its state. Live and idle, it counts nothing: there
// is nothing to count. Counting scans the log's index from the checkpoint
// on, so a measure that took d is not repeated within lagCostFactor·d:
// measuring costs the database at most about a tenth of one connection,
// however long the backlog. On a failure the last measure stands.
func (r *Runner) measureLag(ctx context.Context) {
	now := time.Now() // spacing work, not reporting time: the wall clock
	r.mu.Lock()
	pos, state, idle, at, took := r.status.Position, r.status.State, r.idle, r.lagAt, r.lagTook
	r.mu.Unlock()
	switch {
	case state == StateWaitingForLock, state == StateStopped:
		return
	case now.Sub(at) < lagCostFactor*took:
		return
	case idle && state == StateLive:
		r.mu.Lock()
		r.status.LagEvents, r.status.LagExact, r.headAt = 0, true, pos
		r.mu.Unlock()
		return
	}
	began := time.Now()
	n, last, exact, err := r.countAfter(ctx, pos)
	took = time.Since(began)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("projection: measure the lag", "error", err)
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	keepingUp := r.lagMeasured && !pos.Less(r.headAt) && n <= int64(r.opts.BatchSize)
	r.headAt, r.lagMeasured, r.lagAt, r.lagTook = last, true, now, took
	r.status.LagEvents, r.status.LagExact = n, exact
	if s := r.status.State; s != StateCatchingUp && s != StateLive {
		return
	}
	if n == 0 || keepingUp {
		r.status.State = StateLive
		if r.status.Failing == nil {
			r.status.LastError = ""
		}
	} else {
		r.status.State = StateCatchingUp
	}
}

// lagCostFactor spaces measures of the lag by that many times what the
// last one took.
const lagCostFactor = 10

// countAfter counts the events of the log after pos that the projection
// takes, and returns the last of them (pos when none). exact is false when
// the count stopped at its bound: with a store that counts (Counter),
// lagCountLimit; with one that does not, the events matching among the
// next LagCountCap of the log.
func (r *Runner) countAfter(ctx context.Context, pos eventstore.Position) (n int64, last eventstore.Position, exact bool, err error) {
	if c, ok := r.store.(eventstore.Counter); ok {
		n, last, err = c.CountAfter(ctx, pos, r.filter, lagCountLimit)
		return n, last, n < lagCountLimit, err
	}
	last = pos
	for scanned := 0; scanned < LagCountCap; {
		page, err := r.store.ReadAll(ctx, pos, min(LagCountCap-scanned, 1000))
		if err != nil {
			return 0, last, false, err
		}
		for i := range page {
			if r.filter.Match(&page[i]) {
				n, last = n+1, page[i].Position
			}
		}
		scanned += len(page)
		if len(page) < 1000 {
			return n, last, true, nil
		}
		pos = page[len(page)-1].Position
	}
	return n, last, false, nil
}

// setState sets the state.
func (r *Runner) setState(state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.State = state
	r.idle = false
}

// setIdle records that the runner has applied everything delivered. It
// is live once a measure of the lag says so (measureLag).
func (r *Runner) setIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = true
}

// wakeActions wakes the live loop to carry out admins' requests; a
// wake-up already pending does.
func (r *Runner) wakeActions() {
	select {
	case r.actions <- struct{}{}:
	default:
	}
}
