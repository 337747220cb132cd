package schedbench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// chartSeries are the bars drawn per run, in order.
var chartSeries = []struct {
	name, color string
	value       func(Run) float64
}{
	{"write limit (Bindings/s, one client)", "#9e9e9e", func(r Run) float64 { return r.WriteLimit.PerSecond }},
	{"kube-scheduler binds/s", "#1f77b4", func(r Run) float64 { return r.KubeScheduler.BindsPerSecond }},
	{"kubemesos binds/s", "#ff7f0e", func(r Run) float64 { return r.Kubemesos.BindsPerSecond }},
	{"kubemesos Running/s", "#2ca02c", func(r Run) float64 { return r.Kubemesos.RunningPerSecond }},
}

// WriteSVG draws a grouped bar chart of the completed runs (failed ones are left out): per run (agents/pods, limits) the write limit,
// kube-scheduler's bind rate and kubemesos' bind and Running rates, with the values written on the bars.
func WriteSVG(w io.Writer, r *Report) error {
	var runs []Run
	for _, run := range r.Runs {
		if run.Error == "" {
			runs = append(runs, run)
		}
	}
	const (
		left, top, bottom, right = 60, 40, 70, 20
		plotH                    = 300
		barW, gap                = 28, 30
	)
	n := len(chartSeries)
	groupW := n*barW + gap
	width := left + right + max(len(runs), 1)*groupW
	height := top + plotH + bottom + 20*n
	var maxV float64
	for _, run := range runs {
		for _, s := range chartSeries {
			maxV = math.Max(maxV, s.value(run))
		}
	}
	scale := niceCeil(maxV)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">%s</text>`+"\n", left, html.EscapeString("Pods per second: kube-scheduler vs kubemesos on one API server"))
	// Axis with 5 ticks.
	for i := 0; i <= 5; i++ {
		v := scale * float64(i) / 5
		y := top + plotH - int(float64(plotH)*float64(i)/5)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/>`+"\n", left, y, width-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%g</text>`+"\n", left-5, y+4, v)
	}
	for gi, run := range runs {
		x0 := left + gi*groupW + gap/2
		for si, s := range chartSeries {
			v := s.value(run)
			h := 0
			if scale > 0 {
				h = int(math.Round(float64(plotH) * v / scale))
			}
			x := x0 + si*barW
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %.1f</title></rect>`+"\n",
				x, top+plotH-h, barW-2, h, s.color, html.EscapeString(s.name), v)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="9">%.0f</text>`+"\n", x+barW/2-1, top+plotH-h-3, v)
		}
		label := fmt.Sprintf("%d agents / %d pods", run.Agents, run.Pods)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x0+n*barW/2, top+plotH+15, html.EscapeString(label))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x0+n*barW/2, top+plotH+29, html.EscapeString(run.Limits+" limits"))
	}
	for si, s := range chartSeries {
		y := top + plotH + bottom + 20*si
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", left, y-10, s.color, left+18, y, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1), the axis' top.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
