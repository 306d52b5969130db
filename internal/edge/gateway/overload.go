package gateway

import "time"

// The overload detector's parameters: CoDel's (Nichols and Jacobson,
// "Controlling Queue Delay", 2012).
const (
	// codelTarget is the wait for a slot a class may have at all times
	// without being overloaded.
	codelTarget = 5 * time.Millisecond
	// codelInterval is how long the evidence must hold; one interval
	// without any also ends an overload.
	codelInterval = 100 * time.Millisecond
)

// overload tells when a class is overloaded rather than passing through
// a burst, after CoDel as servers use it for requests: it is overloaded
// for the next interval when, in an interval, a request was refused or
// even the request admitted with the least wait waited more than
// codelTarget (a standing queue). While it is, the pool refuses at once
// what it cannot admit at once: under a sustained overload a queue only
// delays the refusals (by up to QueueWait each) and the requests it
// admits, while a burst on an idle class is still queued.
//
// Measured at twice the capacity of the read routes (README,
// Performance; 16 slots), a queue waiting QueueWait (50 ms) answered the
// 503s at a median of 100 ms, one cut to CoDel's 2×codelTarget while
// overloaded at 55-60 ms, and refusing at once while overloaded at
// 25-33 ms, each serving as many requests within the noise.
//
// overload is not safe for concurrent use: the pool's lock guards it.
type overload struct {
	end      time.Time     // of the current interval
	admits   bool          // a request was admitted in it
	minWait  time.Duration // the least wait of those
	refusals bool          // a request was refused in it
	verdict  bool          // on the last interval
}

// on reports whether the class is overloaded at now.
func (o *overload) on(now time.Time) bool {
	if now.After(o.end) {
		// A whole interval without requests is not an overload.
		quiet := now.Sub(o.end) > codelInterval
		o.verdict = !o.end.IsZero() && !quiet && (o.refusals || o.admits && o.minWait > codelTarget)
		o.end, o.admits, o.refusals = now.Add(codelInterval), false, false
	}
	return o.verdict
}

// admitted records a request admitted at now after waiting wait.
func (o *overload) admitted(now time.Time, wait time.Duration) {
	o.on(now)
	if !o.admits || wait < o.minWait {
		o.minWait = wait
	}
	o.admits = true
}

// refused records a request refused at now.
func (o *overload) refused(now time.Time) {
	o.on(now)
	o.refusals = true
}
