// Package cli parses the flags of eventshop's subcommands, each the same
// way: help prints the usage and succeeds, a bad flag prints what is wrong
// with the usage and fails with ErrUsage, and the checks of the values
// fail with one error naming every flag that is wrong.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage says the usage has been printed with what was wrong: the
// program exits 1 and adds nothing.
var ErrUsage = errors.New("usage")

// NewFlags is a flag set named name whose usage is usage, then the
// flags, on stderr.
func NewFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	return fs
}

// Parse parses args with fs. It returns flag.ErrHelp for -h (the usage is
// printed) and ErrUsage for a flag it cannot parse (the flag package has
// said what is wrong).
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	return nil
}

// Problems collects what is wrong with the parsed values of a command.
type Problems struct {
	command string
	bad     []string
}

// Check is a Problems for command (such as "consume"), which notes
// arguments left after the flags of fs.
func Check(command string, fs *flag.FlagSet) *Problems {
	p := &Problems{command: command}
	p.If(fs.NArg() > 0, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	return p
}

// If notes msg when wrong.
func (p *Problems) If(wrong bool, msg string) {
	if wrong {
		p.bad = append(p.bad, msg)
	}
}

// Err is one error naming every problem, or nil.
func (p *Problems) Err() error {
	if len(p.bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", p.command, strings.Join(p.bad, "; "))
}
