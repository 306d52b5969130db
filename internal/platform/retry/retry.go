// Package retry holds what work that is tried again waits with: a sleep
// that ends with its context, an exponential backoff, and a worker started
// again whenever it stops.
package retry

import (
	"context"
	"log/slog"
	"time"
)

// Sleep waits d, or until ctx ends if that comes first. Errors: ctx's,
// when it ended first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff is first doubled n times, at most limit: the wait before the
// retry that follows n failed retries.
func Backoff(first, limit time.Duration, n int) time.Duration {
	d := first
	for ; n > 0 && d < limit; n-- {
		d *= 2
	}
	return min(d, limit)
}

// Forever runs run until ctx ends, starting it again whenever it returns
// early, after a wait that doubles from first up to limit; what names it
// in log.
func Forever(ctx context.Context, log *slog.Logger, what string, first, limit time.Duration, run func(context.Context) error) {
	for n := 0; ctx.Err() == nil; n++ {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := Backoff(first, limit, n)
		log.Error(what+" stopped; restarting", "err", err, "in", wait.String())
		if Sleep(ctx, wait) != nil {
			return
		}
	}
}
