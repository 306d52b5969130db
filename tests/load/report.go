package load

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// requestCounts adds up the requests of a phase (flows left out) and
// those that failed.
func requestCounts(routes []RouteSummary) (n, failed int64) {
	for _, r := range routes {
		if r.Route != RouteFlow {
			n += r.Count
			failed += r.Errors
		}
	}
	return n, failed
}

// phaseLine is a phase in one line: rate offered and achieved, errors
// and the worst p99 of each goal.
func phaseLine(p PhaseResult) string {
	n, failed := requestCounts(p.Routes)
	verdict := "PASS"
	if !p.Pass {
		verdict = "FAIL"
	}
	gots := make([]string, 0, len(p.Verdicts))
	for _, v := range p.Verdicts[1:] {
		gots = append(gots, v.Got)
	}
	return fmt.Sprintf("%s at %.0f/s: %d of %d arrivals started, %.1f requests/s answered ok, %d failed, %d not scheduled; %s",
		verdict, p.Phase.Rate, p.Tally.Started, p.Tally.Scheduled, float64(n-failed)/max(p.Tally.Took.Seconds(), 1e-3),
		failed, p.Tally.Dropped, strings.Join(gots, "; "))
}

// Summary is the plain-text report.
func Summary(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\neventshop load test of %s, %s\n", r.Target, r.Started.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "catalogue: %d products (seeded up to %d); %d shoppers signed in; mix: %s\n",
		r.Catalogue, r.Products, r.Shoppers, mixText(r.Mix))
	if r.Step && len(r.Phases) > 0 {
		stepTable(&b, r)
		for _, p := range r.Phases {
			if p.Phase.Rate == r.Knee || p.Phase.Rate == r.BrokeAt {
				phaseDetail(&b, p)
			}
		}
	} else {
		for _, p := range r.Phases {
			phaseDetail(&b, p)
		}
	}
	fmt.Fprintf(&b, "\nCPU over the whole run: %s\n", r.CPU)
	b.WriteString(mailText(r.Mail))
	b.WriteString(lagText(r.Lag))
	b.WriteString(refusalText(r.RefusalsMeasured, r.Refusals))
	return b.String()
}

func mixText(name string) string {
	mix := Mixes[name]
	total := 0
	for _, m := range mix {
		total += m.Weight
	}
	parts := make([]string, len(mix))
	for i, m := range mix {
		parts[i] = fmt.Sprintf("%d%% %s", 100*m.Weight/total, m.Action)
	}
	return strings.Join(parts, ", ")
}

// stepTable lists the steps and names the knee.
func stepTable(b *strings.Builder, r *Result) {
	fmt.Fprintf(b, "\nstep mode, %s a step:\n", r.Phases[0].Phase.Duration)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rate/s\tstarted\tnot sched.\tok req/s\tfailed\tGET p99\tPOST p99\tflow p99\t\tverdict\t")
	for _, p := range r.Phases {
		n, failed := requestCounts(p.Routes)
		worst := map[string]string{"GET": "-", "POST": "-", "flow": "-"}
		var w99 = map[string]int64{}
		for _, rt := range p.Routes {
			c := routeClass(rt.Route)
			if c != "" && int64(rt.P99) >= w99[c] {
				w99[c], worst[c] = int64(rt.P99), fmtDur(rt.P99)
			}
		}
		verdict := "PASS"
		if !p.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%.0f\t%d\t%d\t%.1f\t%d\t%s\t%s\t%s\t\t%s\t\n", p.Phase.Rate, p.Tally.Started, p.Tally.Dropped,
			float64(n-failed)/max(p.Tally.Took.Seconds(), 1e-3), failed, worst["GET"], worst["POST"], worst["flow"], verdict)
	}
	tw.Flush()
	switch {
	case r.Knee == 0:
		fmt.Fprintf(b, "knee: none: the first step (%.0f/s) already failed a goal\n", r.Phases[0].Phase.Rate)
	case r.BrokeAt == 0:
		fmt.Fprintf(b, "knee: not reached: every step up to %.0f/s passed\n", r.Knee)
	default:
		fmt.Fprintf(b, "knee: %.0f arrivals/s, the last step to pass every goal (%.0f/s failed)\n", r.Knee, r.BrokeAt)
	}
}

// lagWarning is how late the generator may start an arrival before the
// report says its own lateness is in the figures.
const lagWarning = 50 * time.Millisecond

// phaseDetail is one phase's table of routes, errors, CPU and goals.
func phaseDetail(b *strings.Builder, p PhaseResult) {
	t := p.Tally
	n, failed := requestCounts(p.Routes)
	fmt.Fprintf(b, "\n%.0f arrivals/s for %s: %d due (%.1f/s), %d started, %d not scheduled (in-flight cap), %d cancelled at the end; generator late by at most %s\n",
		p.Phase.Rate, p.Phase.Duration, t.Scheduled, float64(t.Scheduled)/p.Phase.Duration.Seconds(), t.Started,
		t.Dropped, t.Cancelled, fmtDur(t.MaxLag))
	if t.MaxLag > lagWarning {
		fmt.Fprintf(b, "note: the generator fell %s behind its schedule (short of CPU); the delay counts in the latencies, as the server's\n",
			fmtDur(t.MaxLag))
	}
	fmt.Fprintf(b, "requests: %d in %s, %d failed; %.1f requests/s answered ok\n", n, t.Took.Round(1e6), failed,
		float64(n-failed)/max(t.Took.Seconds(), 1e-3))
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "route\tcount\terrors\tmean\tp50\tp95\tp99\tmax\t")
	for _, r := range p.Routes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.Route, r.Count, r.Errors,
			fmtDur(r.Mean), fmtDur(r.P50), fmtDur(r.P95), fmtDur(r.P99), fmtDur(r.Max))
	}
	tw.Flush()
	for _, r := range p.Routes {
		if r.Errors == 0 {
			continue
		}
		kinds := slices.Sorted(maps.Keys(r.ByKind))
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s ×%d", k, r.ByKind[k])
		}
		fmt.Fprintf(b, "errors of %s: %s\n", r.Route, strings.Join(parts, ", "))
	}
	fmt.Fprintf(b, "CPU: %s\n", p.CPU)
	fmt.Fprintln(b, "goals:")
	for _, v := range p.Verdicts {
		verdict := "PASS"
		if !v.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(b, "  %s  %-28s %s\n", verdict, v.Goal, v.Got)
	}
}

// writeReport writes summary.txt, summary.json, report.html and the
// plots as SVG files into dir.
func writeReport(dir string, r *Result) error {
	plots := Plots(r)
	files := map[string][]byte{"summary.txt": []byte(Summary(r))}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	files["summary.json"] = js
	for _, p := range plots {
		files[p.File] = []byte(p.SVG)
	}
	page, err := htmlReport(r, plots)
	if err != nil {
		return err
	}
	files["report.html"] = page
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// mailText is the summary's line on the mails the window caused.
func mailText(mc MailCheck) string {
	switch {
	case mc.Expected == 0:
		return "mail: the window caused none\n"
	case mc.Done:
		return fmt.Sprintf("mail: all %d confirmations and receipts the window caused were listed as sent %s after its end\n", mc.Expected, fmtDur(mc.AllSent))
	}
	return fmt.Sprintf("mail: %d of %d confirmations and receipts listed as sent; %s\n", mc.Sent, mc.Expected, mc.Error)
}
