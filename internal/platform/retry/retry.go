// Package retry holds what work that is tried again waits with: a sleep
// that ends with its context, and an exponential backoff.
package retry

import (
	"context"
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
