package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
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

// errSwapped ends the live loop after a rebuild moved the checkpoint: the
// runner subscribes again from the new one.
var errSwapped = errors.New("rebuilt read model swapped in")

// setupLock serialises the Setup of projections starting together:
// concurrent CREATE SCHEMA/TABLE IF NOT EXISTS can still collide.
const setupLock = 0x72656164 // "read"

// rebuildPage is how many events the builder reads and applies at once.
const rebuildPage = 5_000

// RebuildStatus is the progress of a rebuild in this process.
type RebuildStatus struct {
	Started time.Time
	// Scanned counts the events of the log read so far; Applied those the
	// projection takes.
	Scanned, Applied int64
	// Position is the last event read.
	Position eventstore.Position
	// Parked counts the events the shadow's parked list holds.
	Parked int64
	// CaughtUp is set once the shadow reached the end of the log and
	// waits for the swap.
	CaughtUp bool
	// LastError is the last failure of the rebuild; it is retried.
	LastError string
}

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

// maxSwapFailures is how many failed swaps a shadow gets before it is
// built again.
const maxSwapFailures = 3

// setup runs the projection's Setup: a Projection's in its schema, in one
// transaction; a sink's on the sink.
func (r *Runner) setup(ctx context.Context) error {
	if r.sink != nil {
		return r.sink.Setup(ctx)
	}
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error { return r.setupIn(ctx, tx, r.p.Schema()) })
}

// Setup creates p's schema and tables if they are missing, as its runner
// does when it becomes active. A read API calls it at start, so that it
// answers from empty tables rather than failing before any runner ran.
// Errors: the database's.
func Setup(ctx context.Context, pool *pgxpool.Pool, p Projection) error {
	if err := checkName(p.Name()); err != nil {
		return err
	}
	r := &Runner{p: p, name: p.Name()}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return r.setupIn(ctx, tx, p.Schema()) }); err != nil {
		return fmt.Errorf("projections: set up %s: %w", p.Name(), err)
	}
	return nil
}

// setupIn creates schema and runs the projection's Setup in it, in tx.
func (r *Runner) setupIn(ctx context.Context, tx pgx.Tx, schema string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", setupLock); err != nil {
		return fmt.Errorf("setup lock: %w", err)
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	if err := useSchema(ctx, tx, schema); err != nil {
		return err
	}
	return r.p.Setup(ctx, tx)
}

// useSchema makes schema the search_path for the rest of tx.
func useSchema(ctx context.Context, tx pgx.Tx, schema string) error {
	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("search_path %s: %w", schema, err)
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
			requested, err := rebuildRequested(ctx, r.pool, r.name)
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
			_, _ = r.pool.Exec(wctx, `UPDATE projections.checkpoints SET state = $2, reported_at = now() WHERE name = $1`,
				r.name, StateStopped)
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
	s := r.Status()
	rebuilding := s.Rebuild != nil
	var applied, parked int64
	if rebuilding {
		applied, parked = s.Rebuild.Applied, s.Rebuild.Parked
	}
	var due bool
	err := r.pool.QueryRow(ctx, `INSERT INTO projections.checkpoints AS c (name, commit, prepare, state, lag_events,
			lag_exact, lag_ms, last_error, policy, reported_at)
		VALUES ($1, 0, 0, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (name) DO UPDATE SET state = $2, lag_events = $3, lag_exact = $4, lag_ms = $5, last_error = $6,
			policy = $7, reported_at = now(),
			rebuild_applied = CASE WHEN $8 THEN $9 ELSE c.rebuild_applied END,
			rebuild_parked = CASE WHEN $8 THEN $10 ELSE c.rebuild_parked END
		RETURNING EXISTS (SELECT 1 FROM `+parkedTable+` WHERE projection = $1 AND NOT shadow AND action IS NOT NULL)`,
		r.name, s.State, s.LagEvents, s.LagExact, s.LagTime.Milliseconds(), s.LastError, r.opts.Policy,
		rebuilding, applied, parked).Scan(&due)
	if due {
		r.wakeActions()
	}
	return err
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
	if _, err := r.pool.Exec(ctx, `UPDATE projections.checkpoints SET rebuild_started_at = now() WHERE name = $1`, r.name); err != nil {
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
		if sleep(ctx, r.backoff(attempt)) != nil {
			return
		}
	}
}

// makeShadow makes an empty shadow; for a sink that has none, it marks
// the rebuild as a restart from the start of the log.
func (r *Runner) makeShadow(ctx context.Context, rb *rebuild) error {
	live, err := loadParked(ctx, r.pool, r.name, false)
	if err != nil {
		return err
	}
	if _, err := r.pool.Exec(ctx, `DELETE FROM `+parkedTable+` WHERE projection = $1 AND shadow`, r.name); err != nil {
		return fmt.Errorf("clear the shadow's parked list: %w", err)
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
			if err := sleep(ctx, r.backoff(attempt-1)); err != nil {
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
		return writeParked(ctx, tx, r.name, true, st.park)
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
	_, err := r.pool.Exec(wctx, `UPDATE projections.checkpoints SET rebuild_started_at = NULL, rebuild_error = $3,
			rebuild_applied = $4, rebuild_parked = $5,
			rebuild_requested_at = CASE WHEN rebuild_requested_at <= $2 THEN NULL ELSE rebuild_requested_at END
		WHERE name = $1`, r.name, rb.requestedAt, cause.Error(), applied, parked)
	if err != nil {
		r.log.Warn("projection rebuild: record that it was given up", "error", err)
	}
}

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
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if err := claimCheckpoint(ctx, tx, r.name, from); err != nil {
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
		to := rb.pos
		// The shadow's parked list replaces the live one. A restart
		// replays the log into the live target: its entries park again as
		// they fail again, and skipped events are skipped again.
		lists := []string{`DELETE FROM ` + parkedTable + ` WHERE projection = $1 AND NOT shadow`,
			`UPDATE ` + parkedTable + ` SET shadow = false WHERE projection = $1 AND shadow`}
		if rb.restart {
			to = eventstore.Start
			lists = []string{`DELETE FROM ` + parkedTable + ` WHERE projection = $1 AND NOT shadow AND status <> 'skipped'`}
		}
		for _, sql := range lists {
			if _, err := tx.Exec(ctx, sql, r.name); err != nil {
				return fmt.Errorf("parked lists: %w", err)
			}
		}
		if err := advanceCheckpoint(ctx, tx, r.name, to); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE projections.checkpoints SET rebuild_started_at = NULL, rebuilt_at = now(),
			rebuild_error = '', rebuild_applied = $3, rebuild_parked = $4,
			rebuild_requested_at = CASE WHEN rebuild_requested_at <= $2 THEN NULL ELSE rebuild_requested_at END
			WHERE name = $1`, r.name, rb.requestedAt, rb.status.Applied, rb.status.Parked)
		return err
	})
}
