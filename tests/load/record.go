package load

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The routes a run reports, in the order it reports them. The flow is not
// a request: it is an order placed, paid and read back, from the moment
// its arrival was due to the read that shows it paid.
const (
	RouteList       = "GET /api/products"
	RouteProduct    = "GET /api/products/{id}"
	RouteCategories = "GET /api/products/categories"
	RouteOrders     = "GET /api/orders"
	RouteMe         = "GET /api/auth/me"
	RoutePlace      = "POST /api/orders"
	RoutePay        = "POST /api/orders/{id}/pay"
	RouteReadBack   = "GET /api/orders/{id} +X-Min-Position"
	RouteFlow       = "flow place→pay→visible"
)

// Routes lists every route a run reports, in order.
var Routes = []string{RouteList, RouteProduct, RouteCategories, RouteOrders, RouteMe,
	RoutePlace, RoutePay, RouteReadBack, RouteFlow}

// Latencies are recorded in microseconds, from 1 µs to 10 minutes; a
// longer one is recorded as 10 minutes.
const (
	histMax     = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3 // per route: 0.1% resolution
	secondDigit = 2 // per second of the timeline: 1%
)

func newHist(digits int) *hdrhistogram.Histogram { return hdrhistogram.New(1, histMax, digits) }

func micros(d time.Duration) int64 { return min(max(d.Microseconds(), 1), histMax) }

// Stats gathers per-route latencies and errors. It is safe for
// concurrent use.
type Stats struct {
	mu     sync.Mutex
	routes map[string]*routeStats
}

type routeStats struct {
	hist   *hdrhistogram.Histogram
	errors map[string]int64 // by kind: a status code, "timeout", "network", …
}

// NewStats returns empty Stats.
func NewStats() *Stats { return &Stats{routes: map[string]*routeStats{}} }

// Record adds one request of route that took d; kind is "" for a
// success, else what went wrong. Failed requests count in the latencies
// too: a timeout took as long as it took.
func (s *Stats) Record(route string, d time.Duration, kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.routes[route]
	if r == nil {
		r = &routeStats{hist: newHist(histDigits), errors: map[string]int64{}}
		s.routes[route] = r
	}
	_ = r.hist.RecordValue(micros(d)) // micros keeps it in range
	if kind != "" {
		r.errors[kind]++
	}
}

// RouteSummary is one route's figures.
type RouteSummary struct {
	Route  string           `json:"route"`
	Count  int64            `json:"count"`
	Errors int64            `json:"errors"`
	ByKind map[string]int64 `json:"errors_by_kind,omitempty"`
	Mean   time.Duration    `json:"mean_ns"`
	P50    time.Duration    `json:"p50_ns"`
	P95    time.Duration    `json:"p95_ns"`
	P99    time.Duration    `json:"p99_ns"`
	Max    time.Duration    `json:"max_ns"`
	// Spectrum is the latency at each of SpectrumQuantiles, for the
	// percentile plot.
	Spectrum []time.Duration `json:"-"`
}

// SpectrumQuantiles are the percentiles of the latency-by-percentile plot.
var SpectrumQuantiles = []float64{0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// Summary returns each route's figures, in the order of Routes (routes
// of no request left out, others after them by name).
func (s *Stats) Summary() []RouteSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := slices.Collect(maps.Keys(s.routes))
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(Routes, a), slices.Index(Routes, b)
		if ia < 0 {
			ia = len(Routes)
		}
		if ib < 0 {
			ib = len(Routes)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	out := make([]RouteSummary, 0, len(names))
	for _, name := range names {
		r := s.routes[name]
		h := r.hist
		sum := RouteSummary{Route: name, Count: h.TotalCount(), ByKind: maps.Clone(r.errors),
			Mean: time.Duration(h.Mean() * float64(time.Microsecond)),
			P50:  us(h.ValueAtQuantile(50)), P95: us(h.ValueAtQuantile(95)),
			P99: us(h.ValueAtQuantile(99)), Max: us(h.Max())}
		for _, n := range r.errors {
			sum.Errors += n
		}
		for _, q := range SpectrumQuantiles {
			sum.Spectrum = append(sum.Spectrum, us(h.ValueAtQuantile(q)))
		}
		out = append(out, sum)
	}
	return out
}

// Timeline gathers what happened second by second since its start: the
// arrivals that fell due (by due time), the requests answered and failed
// (by the time they ended), and the latencies of the requests whose
// arrival fell due in that second. It is safe for concurrent use.
type Timeline struct {
	mu    sync.Mutex
	start time.Time
	secs  []*second
}

type second struct {
	due, dropped, ok, failed int64
	hist                     *hdrhistogram.Histogram // requests, not flows
	flow                     *hdrhistogram.Histogram
}

// NewTimeline starts a timeline at start.
func NewTimeline(start time.Time) *Timeline { return &Timeline{start: start} }

// at returns the bucket of t, growing the timeline to hold it; t before
// the start goes into the first second. Call with mu held.
func (tl *Timeline) at(t time.Time) *second {
	i := max(int(t.Sub(tl.start)/time.Second), 0)
	for len(tl.secs) <= i {
		tl.secs = append(tl.secs, &second{hist: newHist(secondDigit), flow: newHist(secondDigit)})
	}
	return tl.secs[i]
}

// Due counts an arrival that fell due at due; dropped says it was not
// started.
func (tl *Timeline) Due(due time.Time, dropped bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	s := tl.at(due)
	s.due++
	if dropped {
		s.dropped++
	}
}

// Record adds a request (or, for RouteFlow, a flow) of an arrival due at
// due that ended at end after taking d.
func (tl *Timeline) Record(route string, due, end time.Time, d time.Duration, failed bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if route == RouteFlow {
		_ = tl.at(due).flow.RecordValue(micros(d))
		return
	}
	_ = tl.at(due).hist.RecordValue(micros(d))
	if e := tl.at(end); failed {
		e.failed++
	} else {
		e.ok++
	}
}

// Second is one second of a timeline.
type Second struct {
	At      int   `json:"t"` // seconds since the start
	Due     int64 `json:"due"`
	Dropped int64 `json:"dropped"`
	OK      int64 `json:"ok"`
	Failed  int64 `json:"failed"`
	// Percentiles of the requests due in this second (zero when none).
	P50, P95, P99, Max time.Duration
	FlowP99            time.Duration
	Requests, Flows    int64
}

// Seconds returns the timeline, one entry a second.
func (tl *Timeline) Seconds() []Second {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := make([]Second, len(tl.secs))
	for i, s := range tl.secs {
		out[i] = Second{At: i, Due: s.due, Dropped: s.dropped, OK: s.ok, Failed: s.failed,
			P50: us(s.hist.ValueAtQuantile(50)), P95: us(s.hist.ValueAtQuantile(95)),
			P99: us(s.hist.ValueAtQuantile(99)), Max: us(s.hist.Max()),
			FlowP99: us(s.flow.ValueAtQuantile(99)), Requests: s.hist.TotalCount(), Flows: s.flow.TotalCount()}
		if s.hist.TotalCount() == 0 {
			out[i].Max = 0
		}
		if s.flow.TotalCount() == 0 {
			out[i].FlowP99 = 0
		}
	}
	return out
}
