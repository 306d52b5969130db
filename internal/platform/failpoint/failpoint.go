//go:build failpoints

// Package failpoint lets a fault-injection run crash the process at a
// named point of the code, the worst moment for what is done there. It
// does anything only in a binary built with -tags failpoints (`make
// chaos` builds one); in every other build Crash is an empty function.
//
// EVENTSHOP_FAILPOINT=name makes the first Crash(name) end the process at
// once, with exit status 137, as a kill -9 would: no deferred function
// runs and nothing is flushed.
package failpoint

import (
	"os"
	"sync"
)

var armed = os.Getenv("EVENTSHOP_FAILPOINT")

var once sync.Once

// Enabled reports whether this binary has failpoints.
const Enabled = true

// Crash ends the process if name is the armed failpoint.
func Crash(name string) {
	if name == armed {
		once.Do(func() { os.Exit(137) })
	}
}
