package load

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Refusal is how many requests the server's admission control answered
// 503 during the timed window, for one class (read, write, ops) and
// outcome (overloaded, queue_full, queue_wait, timeout), as its /metrics
// counts them in eventshop_http_overload_total.
type Refusal struct {
	Class   string `json:"class"`
	Outcome string `json:"outcome"`
	Count   int64  `json:"count"`
}

// overloadMetric is the counter refusalsBetween reads.
const overloadMetric = "eventshop_http_overload_total"

// refusalCounts reads the server's refusal counters by class and outcome.
func refusalCounts(ctx context.Context, c *client) (map[[2]string]float64, error) {
	a, kind := c.do(ctx, request{method: http.MethodGet, path: "/metrics"}, http.StatusOK)
	if kind != "" {
		return nil, fmt.Errorf("GET /metrics: %s", kind)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(a.body))
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	out := map[[2]string]float64{}
	for _, m := range fams[overloadMetric].GetMetric() {
		var key [2]string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "class":
				key[0] = l.GetValue()
			case "outcome":
				key[1] = l.GetValue()
			}
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out, nil
}

// refusalsBetween is what the counters grew by from before to after,
// ordered by class and outcome; none when nothing was refused.
func refusalsBetween(before, after map[[2]string]float64) []Refusal {
	var out []Refusal
	for k, v := range after {
		if n := int64(v - before[k]); n > 0 {
			out = append(out, Refusal{Class: k[0], Outcome: k[1], Count: n})
		}
	}
	slices.SortFunc(out, func(a, b Refusal) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Outcome, b.Outcome))
	})
	return out
}

// refusalText is the summary's line of the refusals.
func refusalText(measured bool, rs []Refusal) string {
	if !measured {
		return ""
	}
	if len(rs) == 0 {
		return "the server's admission control refused nothing (eventshop_http_overload_total)\n"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s/%s %d", r.Class, r.Outcome, r.Count)
	}
	return "the server's admission control refused (class/outcome, eventshop_http_overload_total): " + strings.Join(parts, ", ") + "\n"
}
