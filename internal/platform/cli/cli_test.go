package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestParse: help succeeds with the usage printed, a bad flag is
// ErrUsage with the usage and the complaint printed, and Check names
// every problem, leftover arguments included.
func TestParse(t *testing.T) {
	var out bytes.Buffer
	fs := NewFlags("cmd", "Usage: cmd\n", &out)
	n := fs.Int("n", 0, "a number")
	if err := Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "Usage: cmd") {
		t.Errorf("-h: %v, printed %q", err, out.String())
	}
	out.Reset()
	fs = NewFlags("cmd", "Usage: cmd\n", &out)
	fs.Int("n", 0, "a number")
	if err := Parse(fs, []string{"-n", "x"}); !errors.Is(err, ErrUsage) || !strings.Contains(out.String(), "-n") {
		t.Errorf("-n x: %v, printed %q", err, out.String())
	}
	fs = NewFlags("cmd", "", &out)
	n = fs.Int("n", 0, "a number")
	if err := Parse(fs, []string{"-n", "-1", "extra"}); err != nil {
		t.Fatal(err)
	}
	p := Check("cmd", fs)
	p.If(*n < 0, "-n: want 0 or more")
	p.If(false, "never")
	err := p.Err()
	if err == nil || !strings.Contains(err.Error(), `unexpected arguments ["extra"]`) || !strings.Contains(err.Error(), "-n: want") ||
		strings.Contains(err.Error(), "never") {
		t.Errorf("Check: %v", err)
	}
	if err := Check("cmd", NewFlags("cmd", "", &out)).Err(); err != nil {
		t.Errorf("nothing wrong: %v", err)
	}
}
