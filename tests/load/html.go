package load

import (
	"bytes"
	_ "embed"
	"html/template"
	"maps"
	"slices"
	"strconv"
	"strings"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur": fmtDur,
	"kinds": func(m map[string]int64) string {
		ks := slices.Sorted(maps.Keys(m))
		parts := make([]string, len(ks))
		for i, k := range ks {
			parts[i] = k + " ×" + strconv.FormatInt(m[k], 10)
		}
		return strings.Join(parts, ", ")
	},
	"rate": func(p PhaseResult) float64 {
		n, failed := requestCounts(p.Routes)
		return float64(n-failed) / max(p.Tally.Took.Seconds(), 1e-3)
	},
	"failed": func(p PhaseResult) int64 { _, f := requestCounts(p.Routes); return f },
}).Parse(reportTemplate))

// htmlReport is the self-contained HTML page: the figures, the goals and
// the plots inline.
func htmlReport(r *Result, plots []Plot) ([]byte, error) {
	type plot struct {
		Title string
		SVG   template.HTML // drawn by svg.go, every text in it escaped
		File  string
	}
	data := struct {
		R       *Result
		Mix     string
		Summary string
		Plots   []plot
		Shown   []PhaseResult
	}{R: r, Mix: mixText(r.Mix), Summary: Summary(r)}
	for _, p := range plots {
		data.Plots = append(data.Plots, plot{Title: p.Title, SVG: template.HTML(p.SVG), File: p.File})
	}
	for _, p := range r.Phases {
		if !r.Step || p.Phase.Rate == r.Knee || p.Phase.Rate == r.BrokeAt {
			data.Shown = append(data.Shown, p)
		}
	}
	var b bytes.Buffer
	if err := reportPage.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
