package load

import (
	"fmt"
	"strings"
	"time"
)

// Goals are what a phase must meet to pass: issue 14's goals by default.
type Goals struct {
	// MaxErrorRate is the largest share of failed requests, counting
	// arrivals the generator could not start (0: none may fail).
	MaxErrorRate float64
	GetP99       time.Duration // every GET route but the read-back, which waits for its position by design
	PostP99      time.Duration // every POST route
	FlowP99      time.Duration // place → pay → visible, from the due time
	// MailWithin is how soon after the timed window every mail it caused
	// must be listed as sent (checked once per run, not per step).
	MailWithin time.Duration
}

// DefaultGoals are the issue's: 0 errors, GET p99 ≤ 100 ms, POST p99 ≤
// 250 ms, place → pay → visible p99 ≤ 500 ms.
var DefaultGoals = Goals{GetP99: 100 * time.Millisecond, PostP99: 250 * time.Millisecond, FlowP99: 500 * time.Millisecond,
	MailWithin: 5 * time.Second}

// Verdict is one goal checked against one phase.
type Verdict struct {
	Goal string `json:"goal"`
	Pass bool   `json:"pass"`
	Got  string `json:"got"`
}

// Check holds routes and tally to the goals, in a fixed order: errors,
// GET p99, POST p99, flow p99. A latency goal with no route of its kind
// (the orders mix asks no GET but the read-back) passes; the error goal
// fails a phase that asked nothing.
func (g Goals) Check(routes []RouteSummary, t Tally) []Verdict {
	var requests, errs int64
	worst := map[string]RouteSummary{}
	for _, r := range routes {
		class := routeClass(r.Route)
		if class != "flow" {
			requests += r.Count
			errs += r.Errors
		}
		if class == "" {
			continue
		}
		if w, ok := worst[class]; !ok || r.P99 > w.P99 {
			worst[class] = r
		}
	}
	failed := errs + t.Dropped
	rate := float64(failed) / float64(max(requests+t.Dropped, 1))
	v := []Verdict{{
		Goal: errorGoal(g.MaxErrorRate),
		Pass: rate <= g.MaxErrorRate && requests+t.Dropped > 0,
		Got: fmt.Sprintf("%d failed of %d requests (%.2f%%), %d of them arrivals not scheduled (in-flight cap)",
			failed, requests+t.Dropped, 100*rate, t.Dropped),
	}}
	for _, c := range []struct {
		class, name string
		limit       time.Duration
	}{{"GET", "GET p99", g.GetP99}, {"POST", "POST p99", g.PostP99}, {"flow", "place→pay→visible p99", g.FlowP99}} {
		w, ok := worst[c.class]
		got := "none in this mix"
		if ok {
			got = fmt.Sprintf("worst %s: %s", w.Route, fmtDur(w.P99))
		}
		v = append(v, Verdict{Goal: fmt.Sprintf("%s ≤ %s", c.name, fmtDur(c.limit)), Pass: !ok || w.P99 <= c.limit, Got: got})
	}
	return v
}

func errorGoal(rate float64) string {
	if rate == 0 {
		return "0 errors"
	}
	return fmt.Sprintf("errors ≤ %.2f%%", 100*rate)
}

// routeClass is the goal a route counts towards: "GET", "POST", "flow",
// or "" (the read-back, whose wait for its position the flow's goal
// covers).
func routeClass(route string) string {
	switch {
	case route == RouteFlow:
		return "flow"
	case route == RouteReadBack:
		return ""
	case strings.HasPrefix(route, "GET "):
		return "GET"
	case strings.HasPrefix(route, "POST "):
		return "POST"
	}
	return ""
}

// passed says whether every verdict passed.
func passed(vs []Verdict) bool {
	for _, v := range vs {
		if !v.Pass {
			return false
		}
	}
	return len(vs) > 0
}

// fmtDur prints a latency with three significant digits: in milliseconds
// below a second, else in seconds.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 10_000:
		return fmt.Sprintf("%.1fs", ms/1000)
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fms", ms)
}
