package load

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// chart is a line chart drawn as a standalone SVG: series over a linear
// x axis, a linear or logarithmic y axis, optional reference lines.
type chart struct {
	title, xLabel, yLabel string
	logY                  bool
	xTicks                []tick // explicit x ticks; nice ones when empty
	yFormat               func(float64) string
	series                []series
	hlines                []refLine // goals
	vlines                []refLine // phase boundaries
}

type series struct {
	name, color string
	x, y        []float64
	dashed      bool
	dots        bool
}

type refLine struct {
	at           float64
	label, color string
}

type tick struct {
	at    float64
	label string
}

const (
	svgW, svgH                     = 940, 340
	padL, padR, padT, padB float64 = 70, 270, 34, 46
)

// palette is a set of colours that stay apart for readers with a colour
// vision deficiency (Okabe–Ito, black first; a purple instead of its
// yellow, which hardly shows on white).
var palette = []string{"#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#999999", "#7B3294"}

func (c chart) svg() string {
	// The data's extent.
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for i := range s.x {
			if c.logY && s.y[i] <= 0 {
				continue
			}
			xmin, xmax = min(xmin, s.x[i]), max(xmax, s.x[i])
			ymin, ymax = min(ymin, s.y[i]), max(ymax, s.y[i])
		}
	}
	for _, h := range c.hlines {
		ymin, ymax = min(ymin, h.at), max(ymax, h.at)
	}
	for _, t := range c.xTicks {
		xmin, xmax = min(xmin, t.at), max(xmax, t.at)
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax, ymin, ymax = 0, 1, 1, 10
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	var yTicks []tick
	var ylo, yhi float64
	yfmt := c.yFormat
	if yfmt == nil {
		yfmt = func(v float64) string { return trimFloat(v) }
	}
	if c.logY {
		ylo, yhi = math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if yhi == ylo {
			yhi++
		}
		for e := ylo; e <= yhi; e++ {
			yTicks = append(yTicks, tick{e, yfmt(math.Pow(10, e))})
		}
	} else {
		var vs []float64
		ylo = 0
		yhi, vs = niceAxis(max(ymax, 1) * 1.05)
		for _, v := range vs {
			yTicks = append(yTicks, tick{v, yfmt(v)})
		}
	}
	xTicks := c.xTicks
	if len(xTicks) == 0 {
		var vs []float64
		xmin = 0
		xmax, vs = niceAxis(xmax)
		for _, v := range vs {
			xTicks = append(xTicks, tick{v, trimFloat(v)})
		}
	}
	pw, ph := svgW-padL-padR, svgH-padT-padB
	px := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 {
		if c.logY {
			y = math.Log10(y)
		}
		return padT + ph - (y-ylo)/(yhi-ylo)*ph
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="12">`, svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`)
	fmt.Fprintf(&b, `<text x="%g" y="20" font-size="14" font-weight="bold">%s</text>`, padL, esc(c.title))
	// Grid and axes.
	for _, t := range yTicks {
		y := padT + ph - (t.at-ylo)/(yhi-ylo)*ph
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/>`, padL, padL+pw, y, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, padL-6, y, esc(t.label))
	}
	for _, t := range xTicks {
		x := px(t.at)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#e4e4e4"/>`, x, x, padT, padT+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, x, padT+ph+16, esc(t.label))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#888"/>`, padL, padT, pw, ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`, padL+pw/2, float64(svgH)-8, esc(c.xLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %g) rotate(-90)" text-anchor="middle">%s</text>`, padT+ph/2, esc(c.yLabel))
	for _, v := range c.vlines {
		x := px(v.at)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#bbb" stroke-dasharray="2 3"/>`, x, x, padT, padT+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" font-size="10" fill="#666">%s</text>`, x+3, padT+11, esc(v.label))
	}
	for i, h := range c.hlines {
		// Goals at the same height share one line and one label.
		if slices.ContainsFunc(c.hlines[:i], func(o refLine) bool { return o.at == h.at }) {
			continue
		}
		for _, o := range c.hlines[i+1:] {
			if o.at == h.at {
				h.label = strings.Replace(h.label, " ", ", "+strings.Fields(o.label)[0]+" ", 1)
			}
		}
		y := py(h.at)
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`, padL, padL+pw, y, y, h.color)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="10" fill="%s" text-anchor="end">%s</text>`, padL+pw-4, y-4, h.color, esc(h.label))
	}
	// Series, each with its legend entry.
	for i, s := range c.series {
		var d strings.Builder
		move := true
		for j := range s.x {
			if c.logY && s.y[j] <= 0 {
				move = true
				continue
			}
			cmd := "L"
			if move {
				cmd, move = "M", false
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, px(s.x[j]), py(s.y[j]))
			if s.dots {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, px(s.x[j]), py(s.y[j]), s.color)
			}
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.6"%s/>`, strings.TrimSpace(d.String()), s.color, dash)
		ly := padT + 8 + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`, padL+pw+12, padL+pw+32, ly, ly, s.color, dash)
		fmt.Fprintf(&b, `<text x="%g" y="%g" dominant-baseline="middle">%s</text>`, padL+pw+38, ly, esc(s.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p+1e-9 {
			return m * p
		}
	}
	return 10 * p
}

// niceAxis returns an axis from 0 that holds top, with five to ten
// round ticks: its end and the ticks.
func niceAxis(top float64) (end float64, ticks []float64) {
	step := niceCeil(top / 8)
	end = math.Ceil(top/step-1e-9) * step
	for i := 0.0; i*step <= end+1e-9; i++ {
		ticks = append(ticks, i*step)
	}
	return end, ticks
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// msLabel labels a latency axis given in milliseconds.
func msLabel(ms float64) string {
	if ms >= 1000 {
		return trimFloat(ms/1000) + " s"
	}
	return trimFloat(ms) + " ms"
}
