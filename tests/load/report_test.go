package load

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatsSummary: percentiles, mean and max of known latencies, to the
// histogram's precision, and errors by kind.
func TestStatsSummary(t *testing.T) {
	s := NewStats()
	for i := 1; i <= 1000; i++ { // 1 ms … 1000 ms
		kind := ""
		if i%100 == 0 {
			kind = "503"
		}
		s.Record(RouteProduct, time.Duration(i)*time.Millisecond, kind)
	}
	s.Record(RouteList, 20*time.Minute, "timeout") // beyond the histogram: kept at its top
	sum := s.Summary()
	if len(sum) != 2 || sum[0].Route != RouteList || sum[1].Route != RouteProduct {
		t.Fatalf("routes %v, want the order of Routes", sum)
	}
	r := sum[1]
	near := func(name string, got, want time.Duration) {
		if d := got - want; d < -want/500 || d > want/500 {
			t.Errorf("%s = %s, want %s within 0.2%%", name, got, want)
		}
	}
	near("p50", r.P50, 500*time.Millisecond)
	near("p95", r.P95, 950*time.Millisecond)
	near("p99", r.P99, 990*time.Millisecond)
	near("max", r.Max, 1000*time.Millisecond)
	near("mean", r.Mean, 500500*time.Microsecond)
	if r.Count != 1000 || r.Errors != 10 || r.ByKind["503"] != 10 {
		t.Errorf("count %d errors %d %v, want 1000, 10 503s", r.Count, r.Errors, r.ByKind)
	}
	if len(r.Spectrum) != len(SpectrumQuantiles) {
		t.Errorf("spectrum of %d values", len(r.Spectrum))
	}
	if l := sum[0]; l.Max < 9*time.Minute || l.ByKind["timeout"] != 1 {
		t.Errorf("an overlong request: %+v", l)
	}
}

// TestGoals: each goal judged against the worst route of its class; the
// read-back's wait is the flow's business; arrivals not scheduled fail
// the error goal.
func TestGoals(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	routes := []RouteSummary{
		{Route: RouteList, Count: 100, P99: ms(90)},
		{Route: RouteProduct, Count: 100, P99: ms(120)},
		{Route: RoutePlace, Count: 10, P99: ms(200)},
		{Route: RouteReadBack, Count: 10, P99: ms(900)},
		{Route: RouteFlow, Count: 10, P99: ms(450)},
	}
	v := DefaultGoals.Check(routes, Tally{})
	want := []bool{true, false, true, true}
	for i, w := range want {
		if v[i].Pass != w {
			t.Errorf("%s: pass %v (%s), want %v", v[i].Goal, v[i].Pass, v[i].Got, w)
		}
	}
	if !strings.Contains(v[1].Got, RouteProduct) {
		t.Errorf("GET verdict names %q, want the worst route", v[1].Got)
	}
	if v := DefaultGoals.Check(routes, Tally{Dropped: 1}); v[0].Pass {
		t.Errorf("an arrival not scheduled passed the error goal: %s", v[0].Got)
	}
	routes[0].Errors = 1
	if v := (Goals{MaxErrorRate: 0.01}).Check(routes, Tally{}); !v[0].Pass {
		t.Errorf("1 error in 230 failed a 1%% goal: %s", v[0].Got)
	}
	if v := DefaultGoals.Check(nil, Tally{}); passed(v) {
		t.Error("a phase with no requests passed")
	}
}

// TestPickerDealsTheMix: every round of a mix's weights holds each
// action exactly its weight.
func TestPickerDealsTheMix(t *testing.T) {
	for name, mix := range Mixes {
		p := picker{mix: mix}
		total := 0
		for _, m := range mix {
			total += m.Weight
		}
		for round := 0; round < 3; round++ {
			got := map[action]int{}
			for range total {
				got[p.next()]++
			}
			for _, m := range mix {
				if got[m.do] != m.Weight {
					t.Fatalf("%s, round %d: %s dealt %d of %d, want %d", name, round, m.Action, got[m.do], total, m.Weight)
				}
			}
		}
	}
}

func TestCheckTarget(t *testing.T) {
	for target, ok := range map[string]bool{
		"http://127.0.0.1:8080":     true,
		"http://127.3.4.5:1":        true,
		"http://localhost:8080/":    true,
		"http://[::1]:8080":         true,
		"https://127.0.0.1":         true,
		"http://10.0.0.1:8080":      false,
		"http://192.168.1.2":        false,
		"http://example.com":        false,
		"ftp://127.0.0.1":           false,
		"127.0.0.1:8080":            false,
		"http://127.0.0.1.nip.io:1": false,
	} {
		if err := checkTarget(target, false); (err == nil) != ok {
			t.Errorf("checkTarget(%q) = %v, want ok %v", target, err, ok)
		}
	}
	if err := checkTarget("http://example.com", true); err != nil {
		t.Errorf("allowed remote refused: %v", err)
	}
}

// TestReportFiles: a result renders to the summary, JSON, HTML and SVG
// files; the SVGs and the page are well-formed XML and the summary says
// PASS or FAIL per goal, and names the knee in step mode.
func TestReportFiles(t *testing.T) {
	phase := func(rate float64, p99 time.Duration) PhaseResult {
		routes := []RouteSummary{
			{Route: RouteList, Count: 80, P50: p99 / 4, P95: p99 / 2, P99: p99, Max: 2 * p99, Spectrum: spectrum(p99)},
			{Route: RouteFlow, Count: 10, P50: p99, P95: p99, P99: 2 * p99, Max: 3 * p99, Spectrum: spectrum(2 * p99)},
		}
		pr := PhaseResult{Phase: Phase{Rate: rate, Duration: 5 * time.Second},
			Tally: Tally{Scheduled: int64(rate * 5), Started: int64(rate * 5), Took: 5 * time.Second}, Routes: routes}
		pr.Verdicts = DefaultGoals.Check(routes, pr.Tally)
		pr.Pass = passed(pr.Verdicts)
		return pr
	}
	res := &Result{Target: "http://127.0.0.1:1", Started: time.Now(), Step: true, Products: 100, Catalogue: 120, Shoppers: 100,
		Phases: []PhaseResult{phase(100, 20*time.Millisecond), phase(200, 40*time.Millisecond), phase(300, 300*time.Millisecond)},
		Knee:   200, BrokeAt: 300, Goals: DefaultGoals}
	for i := range 15 {
		res.Timeline = append(res.Timeline, Second{At: i, Due: 100, OK: 110, Failed: int64(i % 3), P50: time.Millisecond,
			P95: 5 * time.Millisecond, P99: time.Duration(i+1) * 10 * time.Millisecond, Max: time.Second, FlowP99: 80 * time.Millisecond})
	}
	dir := t.TempDir()
	if err := writeReport(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"summary.txt", "summary.json", "report.html", "latency.svg", "throughput.svg", "percentiles.svg", "steps.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".svg") || f == "report.html" {
			if err := wellFormed(strings.TrimPrefix(string(b), "<!DOCTYPE html>")); err != nil {
				t.Errorf("%s is not well-formed: %v", f, err)
			}
		}
	}
	sum, _ := os.ReadFile(filepath.Join(dir, "summary.txt"))
	for _, want := range []string{"knee: 200 arrivals/s", "PASS  0 errors", "FAIL  GET p99 ≤ 100ms", "GET /api/products"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	if n := strings.Count(string(page), "<svg "); n != 4 {
		t.Errorf("report.html holds %d plots, want 4", n)
	}
}

func spectrum(p99 time.Duration) []time.Duration {
	out := make([]time.Duration, len(SpectrumQuantiles))
	for i, q := range SpectrumQuantiles {
		out[i] = time.Duration(float64(p99) * (0.2 + q/125))
	}
	return out
}

// wellFormed parses s as XML to its end.
func wellFormed(s string) error {
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
