package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestOverloadVerdicts: the detector's verdict on an interval, given what
// happened in it.
func TestOverloadVerdicts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ms := time.Millisecond
	for name, c := range map[string]struct {
		events func(o *overload)
		ask    time.Duration
		want   bool
	}{
		"idle": {func(o *overload) {}, 150 * ms, false},
		"admitted at once": {func(o *overload) {
			o.admitted(at(0), 0)
			o.admitted(at(50*ms), 0)
		}, 150 * ms, false},
		"a burst: one waited, one did not": {func(o *overload) {
			o.admitted(at(0), 0)
			o.admitted(at(10*ms), 40*ms)
			o.admitted(at(60*ms), 0)
		}, 150 * ms, false},
		"a standing queue: every admission waited": {func(o *overload) {
			o.admitted(at(0), 0) // the first interval
			o.admitted(at(101*ms), 6*ms)
			o.admitted(at(150*ms), 20*ms)
			o.admitted(at(190*ms), 8*ms)
		}, 202 * ms, true},
		"a refusal": {func(o *overload) {
			o.admitted(at(0), 0)
			o.refused(at(50 * ms))
		}, 150 * ms, true},
		"the overload is not judged before its interval ends": {func(o *overload) {
			o.admitted(at(0), 0)
			o.refused(at(50 * ms))
		}, 90 * ms, false},
		"refusals go on": {func(o *overload) {
			o.refused(at(0))
			o.refused(at(101 * ms))
			o.refused(at(180 * ms))
		}, 250 * ms, true},
		"a quiet interval after a refusal ends it": {func(o *overload) {
			o.admitted(at(0), 0)
			o.refused(at(50 * ms))
		}, 250 * ms, false},
	} {
		o := &overload{}
		c.events(o)
		if got := o.on(at(c.ask)); got != c.want {
			t.Errorf("%s: overloaded %v, want %v", name, got, c.want)
		}
	}
}

// TestOverloadedPoolRefusesAtOnce: while the class is overloaded, a
// request that finds no free slot is refused at once, though the queue
// has room and maxWait is long; one that finds a free slot is admitted.
func TestOverloadedPoolRefusesAtOnce(t *testing.T) {
	p := &pool{limit: 1, maxQueue: 10, maxWait: time.Hour}
	ctx := context.Background()
	if err := p.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.load = overload{end: time.Now().Add(time.Hour), verdict: true}
	p.mu.Unlock()

	var shed errShed
	if err := p.acquire(ctx); !errors.As(err, &shed) || shed.reason != OutcomeOverloaded {
		t.Fatalf("no free slot while overloaded: %v, want refused at once", err)
	}
	p.release()
	if err := p.acquire(ctx); err != nil {
		t.Fatalf("a free slot while overloaded: %v, want admitted", err)
	}
	p.release()
}
