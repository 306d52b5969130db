package postgres_test

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"text/tabwriter"
)

// measured is one line of the summary `make bench` ends with.
type measured struct {
	what, unit, rawUnit string
	store, raw          float64
	goal                float64 // least acceptable ratio; 0 when none is set
}

var (
	summaryMu sync.Mutex
	summary   []measured // the last figure of each benchmark, in first-run order
)

// record keeps m for the summary; a benchmark reports several times as b.N
// grows, and the last, longest run is the one that counts.
func record(m measured) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	for i := range summary {
		if summary[i].what == m.what {
			summary[i] = m
			return
		}
	}
	summary = append(summary, m)
}

func TestMain(m *testing.M) {
	code := m.Run()
	printSummary(os.Stdout)
	os.Exit(code)
}

// printSummary writes the table of store figures next to their raw
// baselines from the same run.
func printSummary(w io.Writer) {
	if len(summary) == 0 {
		return
	}
	fmt.Fprintln(w, "\nevent store next to raw PostgreSQL, measured in the same run:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\teventshop\t\traw baseline\t\tratio\tgoal\t")
	for _, m := range summary {
		goal := ""
		if m.goal > 0 {
			verdict := "met"
			if m.store/m.raw < m.goal {
				verdict = "MISSED"
			}
			goal = fmt.Sprintf("≥ %.2f %s", m.goal, verdict)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.0f\t%s\t%.2f\t%s\t\n", m.what, m.store, m.unit, m.raw, m.rawUnit, m.store/m.raw, goal)
	}
	tw.Flush()
}
