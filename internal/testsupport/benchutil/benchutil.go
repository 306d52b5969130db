// Package benchutil holds what benchmarks share.
package benchutil

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrently runs n calls of op spread over conc workers and returns the
// wall time they took. A call that fails is reported on tb and stops its
// worker.
func Concurrently(tb testing.TB, conc, n int, op func(worker int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := op(w); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
