package benchmarks_test

import (
	"fmt"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	"slices"
	"testing"
	"time"
)

// rebuildEvents is the least length of the simulated log the rebuild
// benchmark replays.
const rebuildEvents = 200_000

// rebuildGoal is the rate a rebuild should reach, in events of the log
// per second (every model reads the whole log, whatever it keeps).
const rebuildGoal = 50_000

// rawPage is the page size of the raw ReadAll baseline: the rebuild
// builder's own page.
const rawPage = 5_000

// BenchmarkRebuild writes a simulated history of at least 200,000 events
// (see shop), then measures, each case against a raw ReadAll of the whole
// log in pages of 5,000 run right before it:
//   - from-zero/<model>: the read model (users.v1, orders.v1, products.v1, catalog.v1)
//     caught up from zero by a fresh runner whose checkpoint is at Start,
//     alone;
//   - from-zero/all: all of them caught up from zero at once, as a projector
//     process starts on an empty database;
//   - rebuild/<model>: the model rebuilt through the runtime's rebuild
//     path, RequestRebuild to its running (caught-up) runner until its
//     report shows it rebuilt and swapped in.
//
// Rates are events of the log per second: every model reads all of it.
// One iteration of a case is the whole catch-up or rebuild; run it with
// -benchtime 1x.
func BenchmarkRebuild(b *testing.B) {
	e := newEnv(b, false)
	e.mongo = mongotest.NewDatabase(b) // an embedded FerretDB, as in the local run
	began := time.Now()
	sh := newShop(1, rebuildEvents)
	simulated := time.Since(began)
	began = time.Now()
	writeLog(b, e.store.Pool(), sh.events)
	b.Logf("simulated %d events in %s, wrote them in %s", len(sh.events), simulated.Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
	note("rebuild: the simulated log holds %d events (%d of them the shop's opening: %d users, %d products): %s",
		len(sh.events), sh.opened, 1+shopVendors+shopCustomers, shopProducts, sh.mix())

	rb := &rebuildBench{e: e, sh: sh, models: rebuildModels(e, sh), owner: b, live: map[string]*running{}}
	rb.log = scanLog(b, e.store, rb.models)
	if len(rb.log) != len(sh.events) {
		b.Fatalf("the log holds %d events, want %d", len(rb.log), len(sh.events))
	}
	defer rb.stopLive()
	for _, m := range rb.models {
		b.Run("from-zero/"+m.name, func(b *testing.B) { rb.fromZero(b, m) })
	}
	b.Run("from-zero/all", rb.fromZeroAll)
	for _, m := range rb.models {
		b.Run("rebuild/"+m.name, func(b *testing.B) { rb.rebuild(b, m) })
	}
	note("rebuild: rates are events of the log per second (every model reads all of it) and, in brackets, of the events the model applies; "+
		"the raw baseline is ReadAll of the whole log in pages of %d, run right before each case", rawPage)
}

// rebuildBench is the state the cases of BenchmarkRebuild share.
type rebuildBench struct {
	e      *env
	sh     *shop
	models []*readModel
	log    logIndex
	// owner is the parent benchmark: the runners in live outlive the case
	// that started them and stop when owner ends, if not before.
	owner testing.TB
	live  map[string]*running // runners of caught-up models, by name
}

func (rb *rebuildBench) stopLive() {
	for name, r := range rb.live {
		r.stop()
		delete(rb.live, name)
	}
}

// fromZero catches m up from zero with a fresh runner, alone.
func (rb *rebuildBench) fromZero(b *testing.B, m *readModel) {
	b.StopTimer()
	rb.stopLive()
	total := len(rb.log)
	var rate float64
	for range b.N {
		raw := rawReadAll(b, rb.e.store, total)
		m.reset(b)
		b.StartTimer()
		r := start(b, m.runner())
		took := waitAll(b, []*running{r}, []*readModel{m})[0]
		b.StopTimer()
		r.stop()
		checkModel(b, m)
		rate = rebuildLine(m.name+" from zero, alone", total, m.applied, took, raw)
	}
	b.ReportMetric(rate, "events/s")
}

// fromZeroAll catches every model up from zero at once and leaves the
// runners of those that caught up running, for the rebuild cases.
func (rb *rebuildBench) fromZeroAll(b *testing.B) {
	b.StopTimer()
	total := len(rb.log)
	var rate float64
	for range b.N {
		rb.stopLive()
		raw := rawReadAll(b, rb.e.store, total)
		for _, m := range rb.models {
			m.reset(b)
		}
		b.StartTimer()
		runners := make([]*running, len(rb.models))
		for i, m := range rb.models {
			runners[i] = start(rb.owner, m.runner())
		}
		took := waitAll(b, runners, rb.models)
		b.StopTimer()
		applied := 0
		for i, m := range rb.models {
			rb.live[m.name] = runners[i]
			checkModel(b, m)
			applied += m.applied
		}
		rate = rebuildLine(fmt.Sprintf("all %d from zero, at once", len(rb.models)), total, applied, slices.Max(took), raw)
	}
	b.ReportMetric(rate, "events/s")
}

// rebuild has m rebuilt through the rebuild path by its caught-up runner.
func (rb *rebuildBench) rebuild(b *testing.B, m *readModel) {
	b.StopTimer()
	total := len(rb.log)
	var rate float64
	for range b.N {
		r := rb.live[m.name]
		if r == nil {
			r = startCaughtUp(b, rb.owner, m)
			rb.live[m.name] = r
		}
		raw := rawReadAll(b, rb.e.store, total)
		b.StartTimer()
		took := rebuildPath(b, rb.e, m)
		b.StopTimer()
		checkModel(b, m)
		rate = rebuildLine(m.name+" rebuilt (RequestRebuild)", total, m.applied, took, raw)
	}
	b.ReportMetric(rate, "events/s")
}

// rebuildLine records one case and returns its rate in events of the log
// per second.
func rebuildLine(what string, total, applied int, took, raw time.Duration) float64 {
	rate := float64(total) / took.Seconds()
	rawRate := float64(total) / raw.Seconds()
	record(line{
		group: "rebuild", what: what,
		measured: fmt.Sprintf("%s ev/s (%s applied/s) in %.1f s", thousands(rate), thousands(float64(applied)/took.Seconds()), took.Seconds()),
		raw:      fmt.Sprintf("ReadAll %s ev/s", thousands(rawRate)),
		ratio:    fmt.Sprintf("%.3f", rate/rawRate),
		goal:     fmt.Sprintf("≥ %s ev/s %s", thousands(rebuildGoal), verdict(rate >= rebuildGoal)),
	})
	return rate
}
