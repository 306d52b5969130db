package benchmarks_test

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// line is one line of the summary the run ends with: a figure of
// eventshop, the raw baseline measured beside it in the same run, their
// ratio, and the goal with its verdict. Goals are printed, never
// enforced: the machines are shared and noisy.
type line struct {
	group    string // the benchmark
	what     string
	measured string
	raw      string
	ratio    string
	goal     string // with "met" or "MISSED"; "" when none is set
}

var (
	summaryMu sync.Mutex
	summary   []line // the last figure of each line, in first-run order
	notes     []string
)

// record keeps l for the summary; a benchmark may report several times as
// b.N grows, and the last, longest run is the one that counts.
func record(l line) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	for i := range summary {
		if summary[i].group == l.group && summary[i].what == l.what {
			summary[i] = l
			return
		}
	}
	summary = append(summary, l)
}

// note keeps a remark printed under the table, once.
func note(format string, args ...any) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if s := fmt.Sprintf(format, args...); !slices.Contains(notes, s) {
		notes = append(notes, s)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func TestMain(m *testing.M) {
	code := m.Run()
	printSummary(os.Stdout)
	os.Exit(code)
}

// printSummary writes the table of figures next to their raw baselines.
func printSummary(w io.Writer) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if len(summary) == 0 {
		return
	}
	fmt.Fprintln(w, "\nread side next to raw baselines, measured in the same run:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\twhat\teventshop\traw baseline\tratio\tgoal\t")
	// The benchmarks run in file order; the table follows the read side's
	// order instead: rebuilding the models, keeping them current, reading.
	rank := map[string]int{"rebuild": 0, "lag": 1, "notifier": 2, "routes": 3, "auth": 4}
	slices.SortStableFunc(summary, func(a, b line) int { return rank[a.group] - rank[b.group] })
	for _, l := range summary {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", l.group, l.what, l.measured, l.raw, l.ratio, l.goal)
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, "- "+n)
	}
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the p-th percentile (0 < p < 100) of sorted, which must
// not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)) * p / 100)
	return sorted[min(i, len(sorted)-1)]
}

// thousands formats n with thin separators: 1234567 → "1,234,567".
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
