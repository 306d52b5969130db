package gateway

import (
	"container/list"
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/eventshop/eventshop/internal/edge/problem"
)

// The classes of requests admission control keeps apart, each with a
// budget of its own, so that a flood of one cannot starve another.
const (
	// ClassRead is GET, HEAD and OPTIONS.
	ClassRead = "read"
	// ClassFresh is a GET or HEAD with X-Min-Position: it may wait (up
	// to 2 s, API.md) for a read model to catch up, using little but
	// time, so it has a budget of its own, freshPerSlot times as large,
	// and cannot starve the other reads however far the projections lag.
	ClassFresh = "fresh"
	// ClassWrite is every other method: the commands.
	ClassWrite = "write"
	// ClassOps is the Exempt paths (probes and scrapes), under a small
	// fixed budget (opsInFlight, opsQueue).
	ClassOps = "ops"
)

// Classes are the classes.
var Classes = []string{ClassRead, ClassFresh, ClassWrite, ClassOps}

// The outcomes Config.Observe is told.
const (
	// OutcomeQueueFull: refused at once, the class's queue was full.
	OutcomeQueueFull = "queue_full"
	// OutcomeQueueWait: refused after waiting QueueWait for a slot.
	OutcomeQueueWait = "queue_wait"
	// OutcomeOverloaded: refused at once, no slot being free while the
	// class is overloaded (see overload).
	OutcomeOverloaded = "overloaded"
	// OutcomeTimeout: admitted, and still being served at its deadline
	// (RequestTimeout).
	OutcomeTimeout = "timeout"
)

// Defaults applied by New where admission control is on.
const (
	// DefaultQueueWait is how long a request waits for a slot before it
	// is refused: long enough to ride out a burst, short enough that a
	// refusal comes well within 100 ms.
	DefaultQueueWait = 50 * time.Millisecond
	// InFlightPerCPU is DefaultMaxInFlight's slots per CPU. Requests wait
	// on PostgreSQL, MongoDB and Redis, so a CPU serves several at once.
	// Under the shopper mix at 1,000 arrivals/s on 2 CPUs (README,
	// Overload), 4 a CPU refused 0.7–7.6% as overloaded, 8 refused
	// 0.1–0.5% within the same latency goals, 12 0.4% with GET p99 at the
	// goal's edge.
	InFlightPerCPU = 8
)

// The probes' and scrapes' own budget: small, since each is cheap, and
// fixed, since they must be answered whatever the API's budgets are.
const (
	opsInFlight = 4
	opsQueue    = 16
)

// freshPerSlot is ClassFresh's slots per MaxInFlight.
const freshPerSlot = 4

// connGrace is how long past a request's deadline its connection may
// still be read and written: time for the handler to answer 503 once its
// context has ended.
const connGrace = time.Second

// DefaultMaxInFlight is InFlightPerCPU slots for each CPU the process may
// use (GOMAXPROCS).
func DefaultMaxInFlight() int { return InFlightPerCPU * runtime.GOMAXPROCS(0) }

// pool is one class's budget: at most limit requests in flight, and at
// most maxQueue more waiting for a slot, each up to maxWait; but while the
// class is overloaded (see overload) a request that finds no free slot is
// refused at once. A slot freed while requests wait goes straight to the
// longest waiting one (FIFO), so the count in flight never dips and no
// newcomer overtakes the queue.
type pool struct {
	limit    int
	maxQueue int
	maxWait  time.Duration

	mu       sync.Mutex
	inFlight int
	waiting  list.List // of *waiter
	load     overload
}

// waiter is a queued request.
type waiter struct {
	since   time.Time
	granted chan struct{} // closed when the request is given a slot
}

// errShed is a request refused by a pool; reason is an Outcome.
type errShed struct{ reason string }

func (e errShed) Error() string { return "gateway: request shed: " + e.reason }

// acquire takes a slot, waiting for one up to maxWait, and returns nil, or
// an errShed when the class is overloaded, the queue is full or the wait
// ran out, or ctx's error when ctx ended first. Each nil return is paired
// with one release.
func (p *pool) acquire(ctx context.Context) error {
	now := time.Now()
	p.mu.Lock()
	if p.inFlight < p.limit {
		p.inFlight++
		p.load.admitted(now, 0)
		p.mu.Unlock()
		return nil
	}
	var refused error
	switch {
	case p.load.on(now):
		refused = errShed{OutcomeOverloaded}
	case p.waiting.Len() >= p.maxQueue:
		refused = errShed{OutcomeQueueFull}
	}
	if refused != nil {
		p.load.refused(now)
		p.mu.Unlock()
		return refused
	}
	w := &waiter{since: now, granted: make(chan struct{})}
	e := p.waiting.PushBack(w)
	p.mu.Unlock()

	t := time.NewTimer(p.maxWait)
	defer t.Stop()
	var err error
	select {
	case <-w.granted:
		return nil
	case <-t.C:
		err = errShed{OutcomeQueueWait}
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.granted:
		// Granted as the wait ended: the slot is ours to serve with, or
		// to pass on when the client has gone.
		if ctx.Err() == nil {
			return nil
		}
		p.releaseLocked()
	default:
		p.waiting.Remove(e)
		if _, shed := err.(errShed); shed {
			p.load.refused(time.Now())
		}
	}
	return err
}

// release frees a slot acquire took: to the longest waiting request, or
// back to the pool.
func (p *pool) release() {
	p.mu.Lock()
	p.releaseLocked()
	p.mu.Unlock()
}

func (p *pool) releaseLocked() {
	if e := p.waiting.Front(); e != nil {
		w := p.waiting.Remove(e).(*waiter)
		now := time.Now()
		p.load.admitted(now, now.Sub(w.since))
		close(w.granted)
		return
	}
	p.inFlight--
}

// occupancy is how many requests are in flight and waiting.
func (p *pool) occupancy() (inFlight, queued int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inFlight, p.waiting.Len()
}

// classOf is the class of r.
func (g *Gateway) classOf(r *http.Request) string {
	switch {
	case g.exempt[r.URL.Path]:
		return ClassOps
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("X-Min-Position") != "":
		return ClassFresh
	case r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions:
		return ClassRead
	}
	return ClassWrite
}

// admit serves a request only with a slot of its class's pool; a request
// refused one is answered 503 problem+json with Retry-After: 1 at once,
// before any handler runs. A class without a pool is not bounded.
func (g *Gateway) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		class := g.classOf(r)
		p := g.pools[class]
		if p == nil {
			next.ServeHTTP(w, r)
			return
		}
		if err := p.acquire(r.Context()); err != nil {
			var shed errShed
			if errors.As(err, &shed) {
				g.observe(class, shed.reason)
			}
			w.Header().Set("Retry-After", "1")
			problem.Write(w, problem.New(http.StatusServiceUnavailable, "the server is busy; retry"))
			return
		}
		defer p.release()
		next.ServeHTTP(w, r)
	})
}

// deadline gives each request RequestTimeout from the moment the gateway
// sees it (its wait for a slot included): its context ends then, so every
// call to PostgreSQL, MongoDB or Redis made with it ends too, and the
// handler answers 503 (edge.WriteError). The connection's read and write
// deadlines follow, connGrace later, so a client that sends its body or
// reads its answer slowly cannot hold a slot (or a graceful shutdown)
// longer than that either.
func (g *Gateway) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		end := time.Now().Add(g.requestTimeout)
		ctx, cancel := context.WithDeadline(r.Context(), end)
		defer cancel()
		// Not every ResponseWriter can (a test recorder cannot): then
		// the server's own timeouts are all there is.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(end.Add(connGrace))
		_ = rc.SetWriteDeadline(end.Add(connGrace))
		next.ServeHTTP(w, r.WithContext(ctx))
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
			g.observe(g.classOf(r), OutcomeTimeout)
		}
	})
}

// observe tells Config.Observe, when set, of one outcome.
func (g *Gateway) observe(class, outcome string) {
	if g.onOutcome != nil {
		g.onOutcome(class, outcome)
	}
}

// Occupancy is how many requests of class (one of Classes) are being
// served and how many are waiting for a slot; zero for a class without a
// budget.
func (g *Gateway) Occupancy(class string) (inFlight, queued int) {
	if p := g.pools[class]; p != nil {
		return p.occupancy()
	}
	return 0, 0
}
