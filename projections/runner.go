package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// Runner runs one projection. Of all runners of the same projection name
// on the same database, in any process, exactly one is active at a time:
// it holds a PostgreSQL session advisory lock, keyed by a hash of the name,
// on a connection of its own for as long as it runs. If that connection
// fails the runner stops applying and tries to take the lock again. A
// runner without the lock tries again every LockPoll and takes over when
// the holder goes away. Each batch also checks, in its transaction, that
// the checkpoint is still the one the runner continued from, so even a
// runner that lost its lock mid-batch never applies an event twice.
//
// A Runner also keeps its status in the database for any process to read
// (Reports), and carries out the rebuilds filed with RequestRebuild (see
// rebuild.go).
type Runner struct {
	pool   *pgxpool.Pool // the checkpoint's database, and a Projection's
	state  stateStore    // the checkpoint and parked lists, on pool
	store  eventstore.Store
	p      Projection // nil for a sink
	sink   Sink       // nil for a projection
	name   string
	filter eventstore.Filter
	opts   Options
	log    *slog.Logger

	mu     sync.Mutex
	status Status
	lastTS time.Time // timestamp of the last applied event
	idle   bool      // waiting for events, having applied all delivered
	rb     *rebuild  // the rebuild in progress; nil when none
	// headAt is the last event the last lag measure counted; lagMeasured
	// says there was one since the checkpoint last jumped.
	headAt      eventstore.Position
	lagMeasured bool
	lagAt       time.Time     // when the lag was last measured
	lagTook     time.Duration // how long that took
	// parked is the live parked list as the live loop needs it, parkRun
	// how many events it parked in a row with nothing applied between
	// (see park.go).
	parked  parkedState
	parkRun int
	// swapReady wakes the live loop when a rebuild is ready to swap;
	// actions when admins asked for something on the parked list.
	swapReady chan struct{}
	actions   chan struct{}
}

// NewRunner returns a runner of p that keeps its checkpoint and p's tables
// in pool's database and reads events from store.
func NewRunner(pool *pgxpool.Pool, store eventstore.Store, p Projection, opts Options) *Runner {
	return newRunner(pool, store, p, nil, p.Name(), p.Filter(), opts)
}

// NewSinkRunner returns a runner of s that keeps its checkpoint in pool's
// database and reads events from store. It applies each batch to s and
// then moves the checkpoint, so s sees a batch again after a crash in
// between (see Sink).
func NewSinkRunner(pool *pgxpool.Pool, store eventstore.Store, s Sink, opts Options) *Runner {
	return newRunner(pool, store, nil, s, s.Name(), s.Filter(), opts)
}

func newRunner(pool *pgxpool.Pool, store eventstore.Store, p Projection, s Sink, name string,
	filter eventstore.Filter, opts Options) *Runner {
	opts = opts.withDefaults()
	return &Runner{
		pool: pool, state: stateStore{pool}, store: store, p: p, sink: s, name: name, filter: filter, opts: opts,
		log:       opts.Logger.With("projection", name),
		status:    Status{Name: name, State: StateStopped, LagEvents: -1, Policy: opts.Policy},
		parked:    parkedState{streams: map[string]int{}, skipped: map[uuid.UUID]ParkedEvent{}},
		swapReady: make(chan struct{}, 1),
		actions:   make(chan struct{}, 1),
	}
}

// Name is the projection's name.
func (r *Runner) Name() string { return r.name }

// Filter selects the events the projection takes.
func (r *Runner) Filter() eventstore.Filter { return r.filter }

// Run runs the projection until ctx ends, and then returns nil. Failures
// of the database or the store are logged, shown in Status and retried
// with backoff; they do not end Run. Errors: ErrInvalidName and
// ErrInvalidPolicy at once.
func (r *Runner) Run(ctx context.Context) error {
	if err := checkName(r.name); err != nil {
		return err
	}
	if err := CheckPolicy(r.opts.Policy); err != nil {
		return err
	}
	defer r.setState(StateStopped)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		r.setState(StateWaitingForLock)
		err := Migrate(ctx, r.pool)
		if err == nil {
			var l *lock
			l, err = r.acquireLock(ctx)
			if err == nil {
				err = r.runLocked(ctx, l)
				if err == nil || errors.Is(err, errLockLost) {
					attempt = -1 // it ran; the next period starts with short backoff
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			r.failed(err, nil)
		}
		if retry.Sleep(ctx, r.backoff(max(attempt, 0))) != nil {
			break
		}
	}
	return nil
}

// runLocked is one active period: it holds the lock until ctx ends, the
// lock's connection fails (errLockLost) or setup fails.
func (r *Runner) runLocked(ctx context.Context, l *lock) error {
	defer l.release()
	defer r.opts.Progress.forget(r.name)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { l.watch(ctx, r.opts.LockPoll, cancel) })
	defer wg.Wait()
	defer cancel(nil) // stop the helpers before the lock's connection closes

	r.setState(StateCatchingUp)
	if err := r.setup(ctx); err != nil {
		return activeErr(ctx, fmt.Errorf("setup: %w", err))
	}
	// A sink that builds a shadow in bulk gets from nothing to the end of
	// the log far faster that way than batch by batch (the catalogue on
	// FerretDB: a hundred times): starting from nothing, it files a
	// rebuild, and its live loop waits for the swap (see follow).
	bulk := false
	if _, ok := r.sink.(Rebuildable); ok {
		if from, err := r.state.checkpoint(ctx, r.name); err == nil && from == eventstore.Start {
			if err := r.state.requestRebuild(ctx, r.name); err == nil {
				bulk = true
			} else {
				r.log.Warn("projection: file a rebuild to start from nothing", "error", err)
			}
		}
	}
	// Only now may a rebuild start: Setup may clear out what it takes for
	// an older shadow.
	wg.Go(func() { r.housekeep(ctx) })
	for attempt := 0; ; {
		from, err := r.state.checkpoint(ctx, r.name)
		var parked parkedState
		if err == nil {
			// Read again each time round: a swap replaces the list.
			parked, err = r.state.loadParked(ctx, r.name, false)
		}
		if err == nil {
			r.mu.Lock()
			r.status.Position, r.parked, r.parkRun, r.idle = from, parked, 0, false
			r.lagMeasured, r.lagAt, r.lagTook = false, time.Time{}, 0 // the checkpoint may have jumped
			if r.status.State == StateLive {
				r.status.State = StateCatchingUp // until a measure of the lag says otherwise
			}
			r.mu.Unlock()
			r.opts.Progress.set(r.name, from)
			if bulk && from == eventstore.Start {
				err = r.awaitBulk(ctx)
			} else {
				err = r.follow(ctx, from)
			}
		}
		if ctx.Err() != nil {
			return activeErr(ctx, nil)
		}
		if errors.Is(err, errSwapped) || errors.Is(err, errRebuildFailed) {
			continue
		}
		if errors.Is(err, errFenced) {
			r.log.Warn("projection checkpoint moved; resubscribing from it")
			continue
		}
		if err != nil {
			r.failed(err, nil)
		}
		if retry.Sleep(ctx, r.backoff(attempt)) != nil {
			return activeErr(ctx, nil)
		}
		attempt++
	}
}

// activeErr is the error ending an active period: the lock's loss when
// that is why ctx ended, else err.
func activeErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errLockLost) {
		return cause
	}
	return err
}

// follow subscribes from the checkpoint from and applies what arrives in
// batches until ctx ends or the subscription fails.
func (r *Runner) follow(ctx context.Context, from eventstore.Position) error {
	sub, err := r.store.SubscribeAll(ctx, from, r.filter)
	if err != nil {
		return fmt.Errorf("subscribe from %s: %w", from, err)
	}
	defer sub.Close()
	for {
		// The wake-up on swapReady is a hint; whether a rebuild is ready is
		// looked at after every batch.
		if rb := r.readyRebuild(); rb != nil {
			return r.finishRebuild(ctx, rb, from)
		}
		select {
		case <-r.actions:
			if _, err := r.doActions(ctx, from, nil); err != nil {
				return fmt.Errorf("admin requests: %w", err)
			}
		default:
		}
		batch, open := r.collect(ctx, sub.Events())
		if len(batch) > 0 {
			next, err := r.applyBatch(ctx, from, batch)
			if rb := r.readyRebuild(); rb != nil && errors.Is(err, errRebuildReady) {
				// Stuck on an event: the rebuilt model, which has it,
				// replaces the live one instead.
				return r.finishRebuild(ctx, rb, next)
			}
			if err != nil {
				return err
			}
			from = next
		}
		if !open {
			if err := sub.Err(); err != nil {
				return fmt.Errorf("subscription from %s: %w", from, err)
			}
			if ctx.Err() == nil {
				return fmt.Errorf("subscription from %s ended", from)
			}
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// awaitBulk waits, instead of following the log from the start, for the
// rebuild filed to build the model in bulk, and swaps it in: errSwapped
// then, or ctx's end.
func (r *Runner) awaitBulk(ctx context.Context) error {
	for {
		if rb := r.readyRebuild(); rb != nil {
			return r.finishRebuild(ctx, rb, eventstore.Start)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.swapReady:
		}
	}
}

// collect gathers the next batch: it waits for a first event, then up to
// BatchWait for more, up to BatchSize. open is false once ch is closed.
// It returns early, with what it has, when ctx ends or swapReady wakes it.
func (r *Runner) collect(ctx context.Context, ch <-chan eventstore.Event) (batch []eventstore.Event, open bool) {
	idle := time.NewTimer(max(r.opts.BatchWait, 20*time.Millisecond))
	defer idle.Stop()
	var (
		e  eventstore.Event
		ok bool
	)
	select {
	case e, ok = <-ch:
	case <-ctx.Done():
		return nil, true
	case <-r.swapReady:
		return nil, true
	case <-r.actions:
		r.wakeActions() // for the live loop, which looks at once
		return nil, true
	case <-idle.C:
		// Nothing arrived for a while: everything delivered is applied.
		r.setIdle()
		select {
		case e, ok = <-ch:
		case <-ctx.Done():
			return nil, true
		case <-r.swapReady:
			return nil, true
		case <-r.actions:
			r.wakeActions()
			return nil, true
		}
	}
	if !ok {
		return nil, false
	}
	batch = append(batch, e)
	wait := time.NewTimer(r.opts.BatchWait)
	defer wait.Stop()
	for len(batch) < r.opts.BatchSize {
		select {
		case e, ok := <-ch:
			if !ok {
				return batch, false
			}
			batch = append(batch, e)
		case <-wait.C:
			return batch, true
		case <-ctx.Done():
			return batch, true
		case <-r.swapReady:
			return batch, true
		}
	}
	return batch, true
}

// Status returns a snapshot of the runner. It does no I/O.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	for _, n := range r.parked.streams {
		s.Parked += int64(n)
	}
	if s.Failing != nil {
		f := *s.Failing
		s.Failing = &f
	}
	if r.rb != nil {
		rs := r.rb.status
		s.Rebuild = &rs
	}
	switch {
	case r.idle && s.State == StateLive:
		s.LagTime, s.LagEvents = 0, 0
	case !r.lastTS.IsZero():
		s.LagTime = max(r.opts.Now().Sub(r.lastTS), 0)
	}
	return s
}

// backoff is the wait after the attempt-th failure in a row (from 0).
func (r *Runner) backoff(attempt int) time.Duration {
	return retry.Backoff(r.opts.RetryMin, r.opts.RetryMax, attempt)
}
