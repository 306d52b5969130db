// Package testwait is how tests wait for a condition: polled, with a
// deadline, never a fixed sleep standing in for the outcome.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often Until asks again.
const Interval = 10 * time.Millisecond

// Until calls cond every Interval until it returns "", and fails tb with
// cond's last answer (what is still missing) once within has passed.
func Until(tb testing.TB, within time.Duration, cond func() string) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s: %s", within, why)
		}
		time.Sleep(Interval)
	}
}
