package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowServer answers every request after d, and counts what it served
// and the most it held at once.
func slowServer(t *testing.T, d time.Duration) (url string, served, peak *atomic.Int64) {
	t.Helper()
	served, peak = &atomic.Int64{}, &atomic.Int64{}
	var now atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-time.After(d): // the server's own service time
		case <-r.Context().Done():
		}
		served.Add(1)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, served, peak
}

// TestScheduleCountsFromDueTime: the server takes 50 ms a request but
// the client can send only one request at a time (one connection), so
// requests queue on the client's side. A closed-loop generator would
// report 50 ms each; the open model counts from each arrival's due time,
// so the queueing shows: the k-th request, due at k×25 ms, ends near
// (k+1)×50 ms. The requests go through the scenario's own recording.
func TestScheduleCountsFromDueTime(t *testing.T) {
	url, served, peak := slowServer(t, 50*time.Millisecond)
	c := newClient(url, 1, 10*time.Second)
	c.http.Transport.(*http.Transport).MaxConnsPerHost = 1
	defer c.close()
	play := newScenario(c, &World{}, Mixes[MixShoppers], NewTimeline(time.Now()))
	s := Scheduler{MaxInFlight: 100, Drain: 10 * time.Second}
	tally := s.Run(context.Background(), Phase{Rate: 40, Duration: 500 * time.Millisecond}, func(ctx context.Context, due time.Time) {
		play.get(ctx, due, RouteList, "/", "")
	})
	if tally.Scheduled != 20 || tally.Started != 20 || tally.Dropped != 0 || tally.Cancelled != 0 {
		t.Fatalf("tally %+v, want 20 scheduled and started, none dropped or cancelled", tally)
	}
	if served.Load() != 20 || peak.Load() != 1 {
		t.Fatalf("server served %d, at most %d at once; want 20, one at a time", served.Load(), peak.Load())
	}
	sum := play.stats.Summary()
	if len(sum) != 1 || sum[0].Count != 20 || sum[0].Errors != 0 {
		t.Fatalf("summary %+v", sum)
	}
	r := sum[0]
	// The last request was due at 475 ms and could not end before 20×50 ms:
	// it waited about 525 ms. The median one waited about 300 ms.
	if r.Max < 450*time.Millisecond || r.P50 < 200*time.Millisecond || r.Mean < 200*time.Millisecond {
		t.Fatalf("latencies from due time: p50 %s mean %s max %s; want the client-side queueing in them (p50 ≳ 300ms, max ≳ 525ms)",
			r.P50, r.Mean, r.Max)
	}
}

// TestScheduleDropsBeyondInFlight: with two in flight allowed against a
// server that takes 300 ms, arrivals beyond them are counted as not
// scheduled instead of waiting, and the schedule keeps its rate.
func TestScheduleDropsBeyondInFlight(t *testing.T) {
	url, served, _ := slowServer(t, 300*time.Millisecond)
	c := newClient(url, 4, 10*time.Second)
	defer c.close()
	var dropped atomic.Int64
	s := Scheduler{MaxInFlight: 2, Drain: 10 * time.Second, OnDrop: func(time.Time) { dropped.Add(1) }}
	start := time.Now()
	tally := s.Run(context.Background(), Phase{Rate: 50, Duration: 400 * time.Millisecond}, func(ctx context.Context, due time.Time) {
		c.do(ctx, request{method: "GET", path: "/"}, http.StatusOK)
	})
	if tally.Scheduled != 20 || tally.Started+tally.Dropped != 20 || tally.Dropped != dropped.Load() {
		t.Fatalf("tally %+v, OnDrop heard %d; want 20 scheduled = started + dropped", tally, dropped.Load())
	}
	// 400 ms at two at a time of 300 ms each: at most four could start.
	if tally.Started > 4 || tally.Dropped < 16 || served.Load() != tally.Started {
		t.Fatalf("tally %+v, served %d: want at most 4 started, the rest dropped", tally, served.Load())
	}
	// Dropping did not slow the schedule: the last arrival fell due on time.
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the schedule took %s", took)
	}
}

// TestScheduleDrainCancels: arrivals still in flight when the drain runs
// out are cancelled, so a run's length is bounded whatever the server does.
func TestScheduleDrainCancels(t *testing.T) {
	url, _, _ := slowServer(t, time.Minute)
	c := newClient(url, 8, time.Minute)
	defer c.close()
	stats := NewStats()
	s := Scheduler{MaxInFlight: 10, Drain: 200 * time.Millisecond}
	start := time.Now()
	tally := s.Run(context.Background(), Phase{Rate: 20, Duration: 200 * time.Millisecond}, func(ctx context.Context, due time.Time) {
		_, kind := c.do(ctx, request{method: "GET", path: "/"}, http.StatusOK)
		stats.Record(RouteList, time.Since(due), kind)
	})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("run took %s with a 200ms drain", took)
	}
	if tally.Started != 4 || tally.Cancelled != 4 {
		t.Fatalf("tally %+v, want 4 started and cancelled", tally)
	}
	if sum := stats.Summary(); sum[0].Errors != 4 || sum[0].ByKind["timeout"] != 4 {
		t.Fatalf("summary %+v, want 4 timeouts", sum)
	}
}

// TestScheduleRate: arrivals come at the rate asked for, evenly by due
// time, even when the generator wakes late and starts a burst at once.
func TestScheduleRate(t *testing.T) {
	var mu sync.Mutex
	var dues []time.Time
	s := Scheduler{MaxInFlight: 1000, Drain: time.Second}
	tally := s.Run(context.Background(), Phase{Rate: 200, Duration: 2 * time.Second}, func(ctx context.Context, due time.Time) {
		mu.Lock()
		dues = append(dues, due)
		mu.Unlock()
	})
	if tally.Scheduled != 400 || tally.Started != 400 || len(dues) != 400 {
		t.Fatalf("tally %+v, %d arrivals ran; want 400", tally, len(dues))
	}
	first := slices.MinFunc(dues, time.Time.Compare)
	perSecond := map[int]int{}
	for _, d := range dues {
		perSecond[int(d.Sub(first)/time.Second)]++
	}
	if perSecond[0] != 200 || perSecond[1] != 200 {
		t.Fatalf("arrivals by second of due time: %v, want 200 in each of 2", perSecond)
	}
}

func TestPhaseArrivals(t *testing.T) {
	for _, c := range []struct {
		p    Phase
		want int64
	}{
		{Phase{1000, 60 * time.Second}, 60000},
		{Phase{0.5, 3 * time.Second}, 1},
		{Phase{333, time.Second}, 333},
		{Phase{0, time.Second}, 0},
	} {
		if got := c.p.Arrivals(); got != c.want {
			t.Errorf("%+v: %d arrivals, want %d", c.p, got, c.want)
		}
	}
}
