package load

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ProjectionLag is how far one read model's projection fell behind the
// log over the timed window, in events, as GET /api/admin/projections
// reports it (each runner measures about once a second).
type ProjectionLag struct {
	Name string `json:"name"`
	Max  int64  `json:"max"` // the most any sample saw
	End  int64  `json:"end"` // the last sample of the window
	// CaughtUp is how long after the window's end it first reported no
	// lag; -1 when it did not within lagWait.
	CaughtUp time.Duration `json:"caught_up_ns"`
}

// lagWait bounds the wait after the load for the projections to catch up.
const lagWait = time.Minute

// lagWatch samples every projection's lag once a second while the load
// runs.
type lagWatch struct {
	a    *admin
	stop context.CancelFunc
	done chan struct{}

	mu    sync.Mutex
	max   map[string]int64
	last  map[string]int64
	names []string
	err   error // the last failed sample's
}

// watchLag starts sampling.
func watchLag(ctx context.Context, a *admin) *lagWatch {
	ctx, stop := context.WithCancel(ctx)
	w := &lagWatch{a: a, stop: stop, done: make(chan struct{}), max: map[string]int64{}, last: map[string]int64{}}
	go func() {
		defer close(w.done)
		for {
			lags, err := a.lags(ctx)
			w.mu.Lock()
			if err != nil && ctx.Err() == nil {
				w.err = err
			}
			for name, n := range lags {
				if _, ok := w.last[name]; !ok {
					w.names = append(w.names, name)
				}
				w.last[name] = n
				w.max[name] = max(w.max[name], n)
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return w
}

// finish stops sampling, then waits, up to lagWait, for each projection
// to report no lag, and returns what it saw, in the order the server
// lists the projections; when one did not catch up within the wait, the
// last error of a sample that failed, if any, says why it may not have been
// seen to (it keeps CaughtUp -1).
func (w *lagWatch) finish(ctx context.Context) ([]ProjectionLag, error) {
	end := time.Now()
	w.stop()
	<-w.done
	out := make([]ProjectionLag, len(w.names))
	for i, name := range w.names {
		out[i] = ProjectionLag{Name: name, Max: w.max[name], End: w.last[name], CaughtUp: -1}
	}
	ctx, cancel := context.WithTimeout(ctx, lagWait)
	defer cancel()
	for {
		lags, err := w.a.lags(ctx)
		if err != nil {
			// An overloaded server refuses with 503 for a while: ask
			// again until the wait is over.
			w.err = err
			select {
			case <-ctx.Done():
				return out, w.err
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		waiting := false
		for i := range out {
			if out[i].CaughtUp >= 0 {
				continue
			}
			if n, ok := lags[out[i].Name]; ok && n == 0 {
				out[i].CaughtUp = time.Since(end)
			} else {
				waiting = true
			}
		}
		if !waiting {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, w.err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// lags is each projection's lag in events; -1 when not measured yet.
func (a *admin) lags(ctx context.Context) (map[string]int64, error) {
	reports, err := a.projections(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(reports))
	for _, r := range reports {
		out[r.Name] = r.lag()
	}
	return out, nil
}

// lagText is the lags in words, for the summary.
func lagText(lags []ProjectionLag) string {
	if len(lags) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "projection lag in events, most during the load / at its end / caught up after the end:\n")
	for _, l := range lags {
		caught := "not within " + lagWait.String()
		if l.CaughtUp >= 0 {
			caught = l.CaughtUp.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "  %-12s %7d / %7d / %s\n", l.Name, l.Max, l.End, caught)
	}
	return b.String()
}
