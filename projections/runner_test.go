package projections_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// within bounds every wait of these tests.
const within = 20 * time.Second

// onlyT selects the streams appendN(t, "t", …) writes.
func onlyT() eventstore.Filter { return eventstore.Filter{StreamPrefixes: []string{"t-"}} }

// TestCatchUpThenLive applies 1,000 historical and 200 live events exactly
// once, in global order, and ends live with the checkpoint on the last one.
func TestCatchUpThenLive(t *testing.T) {
	for _, kind := range []string{"memory", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			e.appendN(t, "t", 1000)
			e.appendN(t, "other", 50) // filtered out
			p := &testProjection{name: "catchup.v1", filter: onlyT()}
			run := start(t, e, p, projections.Options{})
			waitFor(t, within, "1,000 rows", func() bool { return e.count(p.name) == 1000 })
			e.appendN(t, "t", 200)
			e.appendN(t, "other", 50)
			waitFor(t, within, "1,200 rows, live and idle", func() bool {
				st := run.r.Status()
				return e.count(p.name) == 1200 && st.State == projections.StateLive && st.LagTime == 0
			})
			log := e.logOf(t, onlyT())
			sameIDs(t, "read model", e.rows(t, p.name), ids(log))
			last := log[len(log)-1].Position
			if got := e.checkpoint(t, p.name); got != last {
				t.Fatalf("checkpoint %s, want the last applied event's %s", got, last)
			}
			st := run.r.Status()
			if st.Position != last || st.Applied != 1200 || st.Failing != nil || st.LagEvents != 0 || st.LagTime != 0 {
				t.Fatalf("status %+v", st)
			}
			run.stop(t)
			if st := run.r.Status(); st.State != projections.StateStopped {
				t.Fatalf("state after Run returned: %s", st.State)
			}
		})
	}
}

// TestCatchUpBatches: catching up on 1,000 events with BatchSize 100 takes
// about ten transactions, not one per event.
func TestCatchUpBatches(t *testing.T) {
	for _, kind := range []string{"memory", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			e.appendN(t, "t", 1000)
			p := &testProjection{name: "batches.v1"}
			start(t, e, p, projections.Options{BatchSize: 100})
			waitFor(t, within, "1,000 rows", func() bool { return e.count(p.name) == 1000 })
			if n := p.calls.Load(); n > 12 {
				t.Fatalf("%d transactions for 1,000 events with BatchSize 100, want at most 12", n)
			}
		})
	}
}

// TestCrashBetweenApplyAndCheckpoint: a runner that dies after writing a
// batch's rows but before committing, and one whose batch fails once after
// writing its rows, both end with the read model of a clean run.
func TestCrashBetweenApplyAndCheckpoint(t *testing.T) {
	e := newEnv(t, "postgres")
	e.appendN(t, "t", 1000)
	opts := projections.Options{BatchSize: 100, RetryMin: 10 * time.Millisecond}
	want := ids(e.logOf(t, eventstore.Filter{}))

	clean := &testProjection{name: "clean.v1"}
	start(t, e, clean, opts)
	waitFor(t, within, "the clean run", func() bool { return e.count(clean.name) == 1000 })
	sameIDs(t, "clean run", e.rows(t, clean.name), want)

	// Crash: the third batch's rows are written, then the process dies.
	crash := &testProjection{name: "crash.v1"}
	crashed := make(chan struct{})
	crash.after = func(ctx context.Context, batch []eventstore.Event) error {
		if crash.calls.Load() == 3 {
			close(crashed)
			<-ctx.Done() // the process dies before the commit
			return ctx.Err()
		}
		return nil
	}
	crashRun := start(t, e, crash, opts)
	<-crashed
	crashRun.stop(t)
	if n := e.count(crash.name); n != 200 {
		t.Fatalf("after the crash the table has %d rows, want the 200 of the two committed batches", n)
	}
	if cp := e.checkpoint(t, crash.name); cp == eventstore.Start {
		t.Fatal("no checkpoint after two committed batches")
	}
	crash.after = nil
	start(t, e, crash, opts)
	waitFor(t, within, "the restarted run", func() bool { return e.count(crash.name) == 1000 })

	// A batch that fails once after writing its rows is rolled back and
	// retried by the same runner.
	flaky := &testProjection{name: "flaky.v1"}
	var failed atomic.Bool
	flaky.after = func(ctx context.Context, batch []eventstore.Event) error {
		if flaky.calls.Load() == 5 && failed.CompareAndSwap(false, true) {
			return errors.New("commit would fail")
		}
		return nil
	}
	start(t, e, flaky, opts)
	waitFor(t, within, "the flaky run", func() bool { return e.count(flaky.name) == 1000 })

	for _, name := range []string{crash.name, flaky.name} {
		sameIDs(t, name, e.rows(t, name), want)
		if got, want := e.checkpoint(t, name), e.checkpoint(t, clean.name); got != want {
			t.Fatalf("%s checkpoint %s, clean run's %s", name, got, want)
		}
	}
}

// TestPoisonEvent: under policy halt, an event that fails stops the
// projection right before it, is named in Status, is retried until it
// applies, and is never skipped; once it applies, the error is cleared.
func TestPoisonEvent(t *testing.T) {
	e := newEnv(t, "memory")
	e.appendN(t, "t", 300)
	log := e.logOf(t, eventstore.Filter{})
	poison := log[150]
	var fixed atomic.Bool
	p := &testProjection{name: "poison.v1"}
	p.after = func(ctx context.Context, batch []eventstore.Event) error {
		for _, ev := range batch {
			if ev.ID == poison.ID && !fixed.Load() {
				return errors.New("cannot apply")
			}
		}
		return nil
	}
	run := start(t, e, p, projections.Options{BatchSize: 100, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Policy: projections.PolicyHalt})
	waitFor(t, within, "halted on the poison event, retried", func() bool {
		st := run.r.Status()
		return st.State == projections.StateHalted && st.Failing != nil && st.Failing.Attempts >= 7
	})
	st := run.r.Status()
	f := st.Failing
	if f.ID != poison.ID || f.StreamID != poison.StreamID || f.Version != poison.Version || f.Type != poison.Type || f.Position != poison.Position {
		t.Fatalf("failing event %+v, want %s of %s version %d", f, poison.ID, poison.StreamID, poison.Version)
	}
	for _, s := range []string{poison.ID.String(), poison.StreamID, "version " + strconv.FormatInt(poison.Version, 10), poison.Type, "cannot apply"} {
		if !strings.Contains(st.LastError, s) {
			t.Fatalf("LastError %q does not name %q", st.LastError, s)
		}
	}
	// The events before it, in its own batch too, are applied; none after.
	sameIDs(t, "while failing", e.rows(t, p.name), ids(log[:150]))
	if cp := e.checkpoint(t, p.name); cp != log[149].Position || st.Position != cp {
		t.Fatalf("checkpoint %s (status %s), want the event before the poison one at %s", cp, st.Position, log[149].Position)
	}

	fixed.Store(true)
	waitFor(t, within, "caught up after the fix", func() bool {
		st := run.r.Status()
		return e.count(p.name) == 300 && st.State == projections.StateLive
	})
	sameIDs(t, "after the fix", e.rows(t, p.name), ids(log))
	if st := run.r.Status(); st.Failing != nil || st.Applied != 300 || st.LastError != "" || st.Parked != 0 {
		t.Fatalf("status after recovery %+v", st)
	}
	if list, _, err := projections.Parked(context.Background(), e.pool, p.name, "", 1, 10); err != nil || len(list) != 0 {
		t.Fatalf("parked list after recovery: %v %v, want empty: the halted entry goes once its event applies", list, err)
	}
}

// TestSingleActiveInstance: of two runners of one projection only one
// applies; when it stops the other takes over from the checkpoint.
func TestSingleActiveInstance(t *testing.T) {
	e := newEnv(t, "postgres")
	e.appendN(t, "t", 500)
	pa, pb := &testProjection{name: "single.v1"}, &testProjection{name: "single.v1"}
	a := start(t, e, pa, projections.Options{})
	waitFor(t, within, "a live", func() bool { return a.r.Status().State == projections.StateLive })
	b := start(t, e, pb, projections.Options{})
	waitFor(t, within, "b waiting", func() bool { return b.r.Status().State == projections.StateWaitingForLock })
	e.appendN(t, "t", 200)
	waitFor(t, within, "700 rows", func() bool { return e.count(pa.name) == 700 })
	if st := b.r.Status(); st.State != projections.StateWaitingForLock || st.Applied != 0 || pb.calls.Load() != 0 {
		t.Fatalf("the second runner is %s and applied %d events", st.State, st.Applied)
	}

	a.stop(t)
	e.appendN(t, "t", 300)
	waitFor(t, within, "b took over and caught up", func() bool {
		return e.count(pa.name) == 1000 && b.r.Status().State == projections.StateLive
	})
	sameIDs(t, "read model", e.rows(t, pa.name), ids(e.logOf(t, eventstore.Filter{})))
	if a, b := a.r.Status().Applied, b.r.Status().Applied; a != 700 || b != 300 {
		t.Fatalf("a applied %d and b %d, want 700 and 300", a, b)
	}
}

// TestInvalidName: Run and Reset refuse a name outside [a-z0-9_.-].
func TestInvalidName(t *testing.T) {
	e := newEnv(t, "memory")
	r := projections.NewRunner(e.pool, e.store, &testProjection{name: "Orders v1"}, projections.Options{})
	if err := r.Run(context.Background()); !errors.Is(err, projections.ErrInvalidName) {
		t.Fatalf("Run: %v, want ErrInvalidName", err)
	}
	if err := projections.Reset(context.Background(), e.pool, ""); !errors.Is(err, projections.ErrInvalidName) {
		t.Fatalf("Reset: %v, want ErrInvalidName", err)
	}
}

// TestMigrateConcurrently: processes starting together migrate once.
func TestMigrateConcurrently(t *testing.T) {
	e := newEnv(t, "memory")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- projections.Migrate(context.Background(), e.pool) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	var n, distinct int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT version) FROM projections.schema_migrations").Scan(&n, &distinct); err != nil || n != len(files) || distinct != n {
		t.Fatalf("%d migrations recorded, %d distinct (%v), want each of the %d once", n, distinct, err, len(files))
	}
}
