package benchmarks_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// sampleWindow is how long the benchmark follows a read model too slow
// to rebuild within a bench run (the catalogue on FerretDB): it measures
// the model's steady rate over this window, once past the shop's opening,
// and projects the time the whole log would take.
const sampleWindow = 20 * time.Second

// sample is the progress of a model followed for sampleWindow.
type sample struct {
	opening   time.Duration // until it was past the shop's opening
	from, to  int           // events of the log it had read at the window's start and end
	window    time.Duration
	done      bool          // it reached the end of the log within the window
	projected time.Duration // the whole log, from the start
}

func (s sample) rate() float64 { return float64(s.to-s.from) / s.window.Seconds() }

// project fills in the projected time of a sample of total events.
func (s sample) project(total int) sample {
	s.projected = s.opening + s.window
	if !s.done && s.to > s.from {
		s.projected = s.opening + time.Duration(float64(total-s.from)/s.rate()*float64(time.Second))
	}
	return s
}

// sampleCatchUp follows the catch-up of r, just started from zero: until
// it is past opened, then for sampleWindow (or to the end of the log).
func sampleCatchUp(tb testing.TB, r *running, m *readModel, log logIndex, opened eventstore.Position) sample {
	began := time.Now()
	if err := waitApplied(r.r, opened, 3*time.Minute); err != nil {
		tb.Error(err)
		return sample{}
	}
	s := sample{opening: time.Since(began), from: log.upTo(r.r.Status().Position)}
	t0 := time.Now()
	err := waitApplied(r.r, m.last, sampleWindow)
	s.window, s.to, s.done = time.Since(t0), log.upTo(r.r.Status().Position), err == nil
	return s.project(len(log))
}

// sampleRebuild files a rebuild of m and follows it through the live
// runner r's status: until it has read past the opening's events, then
// for sampleWindow (or until it is swapped in).
func sampleRebuild(tb testing.TB, e *env, r *running, m *readModel, opening int) sample {
	tb.Helper()
	began := time.Now()
	if err := projections.RequestRebuild(context.Background(), e.pool, m.name); err != nil {
		tb.Fatal(err)
	}
	scanned := func() (int, bool) {
		rb := r.r.Status().Rebuild
		if rb == nil {
			return 0, false
		}
		return int(rb.Scanned), true
	}
	var s sample
	for {
		n, ok := scanned()
		if ok && n >= opening {
			s.opening, s.from = time.Since(began), n
			break
		}
		if time.Since(began) > 3*time.Minute {
			tb.Fatalf("%s: the rebuild read %d events in 3 minutes", m.name, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	for time.Since(t0) < sampleWindow {
		n, ok := scanned()
		if !ok {
			s.done = true
			break
		}
		s.to = n
		time.Sleep(20 * time.Millisecond)
	}
	s.window = time.Since(t0)
	return s.project(m.total)
}
