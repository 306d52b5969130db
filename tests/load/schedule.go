package load

import (
	"context"
	"math"
	"sync"
	"time"
)

// Phase is one constant arrival rate held for a while.
type Phase struct {
	Rate     float64 // arrivals per second
	Duration time.Duration
}

// Arrivals is how many arrivals the phase holds: its rate times its
// duration, rounded down.
func (p Phase) Arrivals() int64 {
	if p.Rate <= 0 || p.Duration <= 0 {
		return 0
	}
	return int64(math.Floor(p.Rate*p.Duration.Seconds() + 1e-9))
}

// due is when arrival i of a phase that started at start is due.
func (p Phase) due(start time.Time, i int64) time.Time {
	return start.Add(time.Duration(float64(i) / p.Rate * float64(time.Second)))
}

// Tally counts what a schedule did with its arrivals.
type Tally struct {
	Scheduled int64 // arrivals that fell due
	Started   int64 // arrivals handed to their goroutine
	// Dropped arrivals were not started because MaxInFlight were already
	// in flight: the rate the server was offered fell short by them.
	Dropped int64
	// Cancelled arrivals were still in flight when the drain ran out, and
	// had their context cancelled.
	Cancelled int64
	// MaxLag is the furthest the generator fell behind a due time before
	// it started an arrival (its own lateness; it counts in the latency).
	MaxLag time.Duration
	Took   time.Duration // from the first due time to the last return
}

// Arrival does the work of one arrival, in a goroutine of its own; due is
// when it was due, and every latency it records counts from there.
type Arrival func(ctx context.Context, due time.Time)

// Scheduler runs phases of arrivals.
type Scheduler struct {
	// MaxInFlight bounds the arrivals in flight at once (at least 1).
	MaxInFlight int
	// Drain is how long, after the last arrival fell due, the ones still
	// in flight may take before their context is cancelled.
	Drain time.Duration
	// OnDrop, if set, hears of every dropped arrival.
	OnDrop func(due time.Time)
}

// Run plays p: arrival i falls due at start + i/rate and is started then,
// whether or not the earlier ones have come back. If the generator wakes
// late it starts every arrival already due at once, each with its own due
// time. Run returns when every started arrival has returned; a cancelled
// ctx stops the schedule and cancels the arrivals in flight.
func (s Scheduler) Run(ctx context.Context, p Phase, arrive Arrival) Tally {
	var t Tally
	n := p.Arrivals()
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make(chan struct{}, max(s.MaxInFlight, 1))
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
schedule:
	for i := int64(0); i < n; i++ {
		due := p.due(start, i)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break schedule
			case <-timer.C:
			}
		}
		t.Scheduled++
		t.MaxLag = max(t.MaxLag, time.Since(due))
		select {
		case slots <- struct{}{}:
			t.Started++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				arrive(reqCtx, due)
			}()
		default:
			t.Dropped++
			if s.OnDrop != nil {
				s.OnDrop(due)
			}
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drain := time.NewTimer(s.Drain)
	defer drain.Stop()
	select {
	case <-done:
	case <-drain.C:
		t.Cancelled = int64(len(slots))
		cancel()
		<-done
	case <-ctx.Done():
		t.Cancelled = int64(len(slots))
		<-done
	}
	t.Took = time.Since(start)
	return t
}
