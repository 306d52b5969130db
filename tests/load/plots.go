package load

import (
	"fmt"
	"math"
	"time"
)

// Plot is one chart of the report, as an SVG document.
type Plot struct {
	File  string // its file name in the report's directory
	Title string
	SVG   string
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Plots draws the report's charts: latency and throughput over time, the
// latency by percentile of each route and, in step mode, p99 by rate.
func Plots(r *Result) []Plot {
	ps := []Plot{latencyPlot(r), throughputPlot(r)}
	if p, ok := percentilePlot(r); ok {
		ps = append(ps, p)
	}
	if r.Step && len(r.Phases) > 0 {
		ps = append(ps, stepPlot(r))
	}
	return ps
}

// phaseLines marks where each phase began, in step mode.
func phaseLines(r *Result) []refLine {
	if !r.Step {
		return nil
	}
	var ls []refLine
	at := 0.0
	for _, p := range r.Phases {
		ls = append(ls, refLine{at: at, label: fmt.Sprintf("%.0f/s", p.Phase.Rate)})
		at += p.Tally.Took.Seconds()
	}
	return ls
}

func latencyPlot(r *Result) Plot {
	names := []string{"p50", "p95", "p99", "max"}
	ss := make([]series, 0, 5)
	for i, n := range names {
		ss = append(ss, series{name: n + " (requests)", color: palette[[]int{3, 2, 4, 7}[i]]})
	}
	ss = append(ss, series{name: "p99 place→pay→visible", color: palette[0], dashed: true})
	for _, s := range r.Timeline {
		x := float64(s.At) + 0.5
		for i, v := range []time.Duration{s.P50, s.P95, s.P99, s.Max, s.FlowP99} {
			ss[i].x = append(ss[i].x, x)
			ss[i].y = append(ss[i].y, ms(v))
		}
	}
	g := r.goals()
	c := chart{title: "Latency over time, from each arrival's due time", xLabel: "seconds into the run (by due time)",
		yLabel: "latency", logY: true, yFormat: msLabel, series: ss, vlines: phaseLines(r),
		hlines: []refLine{{at: ms(g.GetP99), label: "GET goal " + fmtDur(g.GetP99), color: palette[4]},
			{at: ms(g.FlowP99), label: "flow goal " + fmtDur(g.FlowP99), color: palette[0]}}}
	return Plot{File: "latency.svg", Title: c.title, SVG: c.svg()}
}

func throughputPlot(r *Result) Plot {
	ss := []series{
		{name: "arrivals due", color: palette[7], dashed: true},
		{name: "requests answered ok", color: palette[3]},
		{name: "requests failed", color: palette[4]},
		{name: "arrivals not scheduled", color: palette[1]},
	}
	for _, s := range r.Timeline {
		x := float64(s.At) + 0.5
		for i, v := range []int64{s.Due, s.OK, s.Failed, s.Dropped} {
			ss[i].x = append(ss[i].x, x)
			ss[i].y = append(ss[i].y, float64(v))
		}
	}
	c := chart{title: "Throughput and errors, per second", xLabel: "seconds into the run",
		yLabel: "per second", series: ss, vlines: phaseLines(r)}
	return Plot{File: "throughput.svg", Title: c.title, SVG: c.svg()}
}

// spectrumPhase is the phase whose latency spectrum is drawn: the only
// one, or in step mode the knee's (the first step if none passed).
func spectrumPhase(r *Result) (PhaseResult, bool) {
	if len(r.Phases) == 0 {
		return PhaseResult{}, false
	}
	for _, p := range r.Phases {
		if r.Step && p.Phase.Rate == r.Knee {
			return p, true
		}
	}
	return r.Phases[0], true
}

// percentilePlot draws each route's latency by percentile, the x axis
// spread by nines (50, 90, 99, 99.9, 99.99) so the tail shows.
func percentilePlot(r *Result) (Plot, bool) {
	p, ok := spectrumPhase(r)
	if !ok || len(p.Routes) == 0 {
		return Plot{}, false
	}
	nines := func(q float64) float64 { return -math.Log10(1 - q/100) }
	var ss []series
	for i, rt := range p.Routes {
		s := series{name: rt.Route, color: palette[1+i%(len(palette)-1)], dots: true}
		if rt.Route == RouteFlow {
			s.color, s.dashed = palette[0], true
		}
		for j, q := range SpectrumQuantiles {
			if q <= 0 {
				continue
			}
			x := 4.6 // max
			if q < 100 {
				x = nines(q)
			}
			s.x = append(s.x, x)
			s.y = append(s.y, ms(rt.Spectrum[j]))
		}
		ss = append(ss, s)
	}
	ticks := []tick{{nines(50), "50%"}, {nines(90), "90%"}, {nines(99), "99%"}, {nines(99.9), "99.9%"}, {nines(99.99), "99.99%"}, {4.6, "max"}}
	c := chart{title: fmt.Sprintf("Latency by percentile, per route, at %.0f arrivals/s", p.Phase.Rate),
		xLabel: "percentile", yLabel: "latency", logY: true, yFormat: msLabel, xTicks: ticks, series: ss}
	return Plot{File: "percentiles.svg", Title: c.title, SVG: c.svg()}, true
}

// stepPlot draws, for each step's rate, the worst p99 of each goal's
// routes against the goals.
func stepPlot(r *Result) Plot {
	ss := []series{
		{name: "GET p99 (worst route)", color: palette[2], dots: true},
		{name: "POST p99 (worst route)", color: palette[1], dots: true},
		{name: "place→pay→visible p99", color: palette[0], dots: true, dashed: true},
	}
	classes := []string{"GET", "POST", "flow"}
	for _, p := range r.Phases {
		worst := map[string]time.Duration{}
		for _, rt := range p.Routes {
			if c := routeClass(rt.Route); c != "" {
				worst[c] = max(worst[c], rt.P99)
			}
		}
		for i, c := range classes {
			ss[i].x = append(ss[i].x, p.Phase.Rate)
			ss[i].y = append(ss[i].y, ms(worst[c]))
		}
	}
	g := r.goals()
	var vl []refLine
	if r.Knee > 0 {
		vl = []refLine{{at: r.Knee, label: fmt.Sprintf("knee %.0f/s", r.Knee)}}
	}
	c := chart{title: "p99 by offered rate (step mode)", xLabel: "arrivals per second", yLabel: "p99 latency",
		logY: true, yFormat: msLabel, series: ss, vlines: vl,
		hlines: []refLine{{at: ms(g.GetP99), label: "GET " + fmtDur(g.GetP99), color: palette[2]},
			{at: ms(g.PostP99), label: "POST " + fmtDur(g.PostP99), color: palette[1]},
			{at: ms(g.FlowP99), label: "flow " + fmtDur(g.FlowP99), color: palette[0]}}}
	return Plot{File: "steps.svg", Title: c.title, SVG: c.svg()}
}

// goals are the run's goals, the defaults when it named none.
func (r *Result) goals() Goals {
	if r.Goals == (Goals{}) {
		return DefaultGoals
	}
	return r.Goals
}
