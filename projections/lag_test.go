package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// gate lets a test release a projection's batches one at a time.
type gate chan struct{}

func (g gate) wait(ctx context.Context, _ []eventstore.Event) error {
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestStatusWhileBehind: while a projection works through a backlog its
// status is never live, and its lag is the exact number of events left;
// once through, it is live with lag 0. The same holds for a sink that a
// rebuild sends back to the start of the log (the Kafka publisher's
// rebuild), part of the way through.
func TestStatusWhileBehind(t *testing.T) {
	for _, store := range []string{"postgres", "memory"} {
		t.Run(store, func(t *testing.T) {
			e := newEnv(t, store)
			e.appendN(t, "t", 1000)
			e.appendN(t, "other", 300) // not the projection's: no lag
			g := make(gate)
			p := &testProjection{name: "behind.v1", filter: onlyT(), after: g.wait}
			run := start(t, e, p, projections.Options{BatchSize: 100})
			log := e.logOf(t, onlyT())
			// left is how many events of the log come after pos.
			left := func(pos eventstore.Position) int64 {
				n := int64(0)
				for _, ev := range log {
					if pos.Less(ev.Position) {
						n++
					}
				}
				return n
			}
			// Each batch waits at the gate: the lag, measured meanwhile,
			// must be exactly what is left after the checkpoint, and the
			// state catching up until nothing is.
			for {
				var st projections.Status
				waitFor(t, within, "the lag measured", func() bool {
					st = run.r.Status()
					l := left(st.Position)
					if st.State == projections.StateLive && l > 0 {
						t.Fatalf("live with %d events left: %+v", l, st)
					}
					if l == 0 {
						return st.State == projections.StateLive
					}
					return st.LagEvents == l && st.LagExact && st.State == projections.StateCatchingUp
				})
				if st.State == projections.StateLive {
					break
				}
				g <- struct{}{}
				waitFor(t, within, "the released batch applied", func() bool { return st.Position.Less(run.r.Status().Position) })
			}
			waitFor(t, within, "live, lag 0", func() bool {
				st := run.r.Status()
				return st.State == projections.StateLive && st.LagEvents == 0 && st.LagExact
			})
			waitFor(t, within, "the report live", func() bool {
				rep := report(t, e, p.name)
				return rep.State == projections.StateLive && rep.LagEvents == 0 && rep.LagExact
			})
		})
	}

	t.Run("sink sent back to the start", func(t *testing.T) {
		e := newEnv(t, "postgres")
		e.appendN(t, "t", 600)
		g := make(gate)
		s := &orderedSink{name: "restart.v1", check: g.wait}
		close(g) // open while it first catches up
		run := startRunner(t, projections.NewSinkRunner(e.pool, e.store, s, testOptions(projections.Options{BatchSize: 100})))
		waitFor(t, within, "live", func() bool { return s.count() == 600 && run.r.Status().State == projections.StateLive })

		g = make(gate)
		s2 := &orderedSink{name: s.name, check: g.wait}
		run.stop(t)
		run = startRunner(t, projections.NewSinkRunner(e.pool, e.store, s2, testOptions(projections.Options{BatchSize: 100})))
		waitFor(t, within, "live again", func() bool { return run.r.Status().State == projections.StateLive })
		if err := projections.RequestRebuild(context.Background(), e.pool, s.name); err != nil {
			t.Fatal(err)
		}
		waitFor(t, within, "back at the start, 600 behind", func() bool {
			st := run.r.Status()
			return st.State == projections.StateCatchingUp && st.LagEvents == 600 && st.LagExact && st.Position == eventstore.Start
		})
		g <- struct{}{}
		log := e.logOf(t, onlyT())
		waitFor(t, within, "part of the way, behind by what is left", func() bool {
			st := run.r.Status()
			if st.State == projections.StateLive {
				t.Fatalf("live part of the way through: %+v", st)
			}
			n := int64(0)
			for _, ev := range log {
				if st.Position.Less(ev.Position) {
					n++
				}
			}
			return st.Position != eventstore.Start && n > 0 && st.LagEvents == n && st.State == projections.StateCatchingUp
		})
		close(g)
		waitFor(t, within, "live at the end", func() bool {
			st := run.r.Status()
			return st.State == projections.StateLive && st.LagEvents == 0 && s2.count() == 600
		})
	})
}

// TestLastErrorClears: a failure shown in LastError is gone once the
// projection has recovered.
func TestLastErrorClears(t *testing.T) {
	e := newEnv(t, "memory")
	e.appendN(t, "t", 20)
	var bad poisons
	log := e.logOf(t, onlyT())
	bad.set(log[5].ID, projections.Transient(context.DeadlineExceeded))
	p := &testProjection{name: "clears.v1", filter: onlyT(), after: bad.check}
	run := start(t, e, p, projections.Options{RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	waitFor(t, within, "failing", func() bool { return run.r.Status().LastError != "" })
	waitFor(t, within, "the report's error", func() bool { return report(t, e, p.name).LastError != "" })
	bad.heal(log[5].ID)
	waitFor(t, within, "recovered: live, no error", func() bool {
		st, rep := run.r.Status(), report(t, e, p.name)
		return st.State == projections.StateLive && st.LastError == "" && rep.LastError == "" && rep.State == projections.StateLive
	})
}

// TestNeverLiveWithLagZeroWhileBehind: through a catch-up of a long log in
// batches that do not always fill (the subscription delivers in pages), the
// status never says live with lag 0 while the checkpoint is short of the
// log's end.
func TestNeverLiveWithLagZeroWhileBehind(t *testing.T) {
	e := newEnv(t, "memory")
	e.appendN(t, "t", 20_000)
	log := e.logOf(t, onlyT())
	end := log[len(log)-1].Position
	p := &testProjection{name: "neverlive.v1", filter: onlyT()}
	run := start(t, e, p, projections.Options{BatchSize: 500, BatchWait: time.Millisecond})
	polls := 0
	waitFor(t, 60*time.Second, "caught up, live", func() bool {
		polls++
		st := run.r.Status()
		if st.State == projections.StateLive && st.LagEvents == 0 && st.Position.Less(end) {
			t.Fatalf("live with lag 0 at %s, short of the end %s (%d applied of %d)", st.Position, end, st.Applied, len(log))
		}
		return st.State == projections.StateLive && st.Position == end
	})
	t.Logf("%d polls of the status during the catch-up", polls)
}
