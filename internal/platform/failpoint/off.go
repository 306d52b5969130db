//go:build !failpoints

package failpoint

// Enabled reports whether this binary has failpoints.
const Enabled = false

// Crash does nothing: this binary was built without failpoints.
func Crash(string) {}
