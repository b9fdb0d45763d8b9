package report

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
)

// Colours used in the plots. FaultFill is solid (no opacity) so a test can
// find it in a screenshot.
const (
	FaultFill = "#f6c6c6"
	HitColour = "#6a1b9a"
)

var palette = []string{"#1565c0", "#2e7d32", "#ef6c00", "#c62828", "#6d4c41", "#00838f"}

type series struct {
	name   string
	colour string
	points []Point
}

type window struct {
	from, to time.Time
	label    string
}

type marker struct {
	t      time.Time
	label  string
	detail string
}

type plot struct {
	id, title, unit string
	t0, t1          time.Time
	series          []series
	windows         []window
	markers         []marker
}

const (
	svgW, svgH                     = 1100, 250
	marginL, marginR, marginT, mgB = 64, 34, 34, 36
)

// niceStep returns a round tick step for a range split into about n parts.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return fmt.Sprintf("%.0f", v)
	}
	if math.Abs(v) >= 10 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func fmtOffset(d time.Duration) string {
	if d >= time.Minute {
		m := int(d / time.Minute)
		s := int((d % time.Minute) / time.Second)
		if s == 0 {
			return fmt.Sprintf("+%dm", m)
		}
		return fmt.Sprintf("+%dm%02ds", m, s)
	}
	return fmt.Sprintf("+%ss", fmtNum(d.Seconds()))
}

// render draws the plot as an inline SVG element.
func (p *plot) render() string {
	b := &strings.Builder{}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	esc := html.EscapeString
	span := p.t1.Sub(p.t0).Seconds()
	if span <= 0 {
		span = 1
	}
	pw, ph := float64(svgW-marginL-marginR), float64(svgH-marginT-mgB)
	x := func(t time.Time) float64 {
		v := t.Sub(p.t0).Seconds() / span
		return float64(marginL) + math.Max(0, math.Min(1, v))*pw
	}
	ymax := 0.0
	for _, s := range p.series {
		for _, pt := range s.points {
			if !math.IsNaN(pt.V) {
				ymax = math.Max(ymax, pt.V)
			}
		}
	}
	ystep := niceStep(ymax, 4)
	if ymax == 0 {
		ystep = 1
	}
	ytop := math.Ceil(ymax/ystep) * ystep
	if ytop == 0 {
		ytop = ystep * 4
	}
	y := func(v float64) float64 { return float64(marginT) + ph - v/ytop*ph }

	w(`<svg class="plot" id="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`+"\n",
		esc(p.id), svgW, svgH, svgW, svgH, esc(p.title))
	w(`<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgW, svgH)
	w(`<text x="%d" y="18" class="ptitle">%s</text>`+"\n", marginL, esc(p.title))
	// Fault windows under everything else.
	for _, win := range p.windows {
		x0, x1 := x(win.from), x(win.to)
		if x1-x0 < 2 {
			x1 = x0 + 2
		}
		w(`<rect class="fault-window" x="%.1f" y="%d" width="%.1f" height="%.0f" fill="%s"><title>%s</title></rect>`+"\n",
			x0, marginT, x1-x0, ph, FaultFill, esc(win.label))
		w(`<text class="wlabel" x="%.1f" y="%d">%s</text>`+"\n", x0+3, marginT+12, esc(win.label))
	}
	// Grid and axes.
	for v := 0.0; v <= ytop+ystep/2; v += ystep {
		w(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, marginL, svgW-marginR, y(v), y(v))
		w(`<text x="%d" y="%.1f" class="ytick">%s</text>`+"\n", marginL-6, y(v)+4, fmtNum(v))
	}
	xstep := niceStep(span, 8)
	for s := 0.0; s <= span+1e-9; s += xstep {
		xx := float64(marginL) + s/span*pw
		w(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="grid"/>`, xx, xx, marginT, svgH-mgB)
		w(`<text x="%.1f" y="%d" class="xtick">%s</text>`+"\n", xx, svgH-mgB+16, fmtOffset(time.Duration(s*float64(time.Second))))
	}
	w(`<rect x="%d" y="%d" width="%.0f" height="%.0f" class="frame"/>`+"\n", marginL, marginT, pw, ph)
	w(`<text x="14" y="%.0f" class="unit" transform="rotate(-90 14 %.0f)">%s</text>`+"\n", float64(marginT)+ph/2, float64(marginT)+ph/2, esc(p.unit))
	// Series.
	empty := true
	for _, s := range p.series {
		if len(s.points) == 0 {
			continue
		}
		empty = false
		// NaN marks a gap (no value in that sample): the line breaks there
		// instead of bridging it.
		var pts []string
		flush := func() {
			if len(pts) == 1 {
				pts = append(pts, pts[0])
			}
			if len(pts) > 0 {
				w(`<polyline class="series" fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n",
					s.colour, strings.Join(pts, " "), esc(s.name))
			}
			pts = pts[:0]
		}
		for _, pt := range s.points {
			if math.IsNaN(pt.V) {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(pt.T), y(pt.V)))
		}
		flush()
	}
	if empty {
		w(`<text x="%.0f" y="%.0f" class="nodata">no samples</text>`+"\n", float64(marginL)+pw/2, float64(marginT)+ph/2)
	}
	// Detector hits: dashed verticals with staggered labels.
	ms := append([]marker(nil), p.markers...)
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].t.Before(ms[j].t) })
	for i, m := range ms {
		xx := x(m.t)
		ly := marginT + 26 + (i%4)*13
		w(`<g class="hit-marker"><line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"/>`,
			xx, xx, marginT, svgH-mgB, HitColour)
		w(`<circle cx="%.1f" cy="%d" r="3.5" fill="%s"/>`, xx, ly-4, HitColour)
		w(`<text x="%.1f" y="%d" class="hlabel">%s</text><title>%s</title></g>`+"\n", xx+5, ly, esc(m.label), esc(m.detail))
	}
	// Legend.
	lx := svgW - marginR - 10
	for i := len(p.series) - 1; i >= 0; i-- {
		s := p.series[i]
		tw := 7*len(s.name) + 26
		lx -= tw
		w(`<rect x="%d" y="9" width="14" height="4" fill="%s"/><text x="%d" y="16" class="legend">%s</text>`+"\n", lx, s.colour, lx+18, esc(s.name))
	}
	w("</svg>\n")
	return b.String()
}

// plots builds the experiment's three plots.
func (e *Experiment) plots(idx int) []*plot {
	t0, t1 := e.Start, e.End
	for _, s := range e.Samples {
		if s.T.After(t1) {
			t1 = s.T
		}
	}
	for _, h := range e.Hits {
		if h.Time.After(t1) {
			t1 = h.Time
		}
	}
	if !t1.After(t0) {
		t1 = t0.Add(time.Second)
	}
	var wins []window
	for _, f := range e.Faults {
		if f.Applied.IsZero() {
			continue
		}
		from, to := f.Window(t1)
		label := f.Kind
		if label == "" {
			label = "fault"
		}
		label += " " + f.ID
		if f.HasCounters && f.Counters.Counted {
			label += fmt.Sprintf(" (%d pkts)", f.Counters.Packets)
		}
		wins = append(wins, window{from, to, label})
	}
	var marks []marker
	for _, h := range e.Hits {
		d := ""
		if len(h.Evidence) > 0 {
			d = h.Evidence[0]
			for _, l := range h.Evidence {
				if strings.Contains(l, "Exception") || strings.Contains(l, "SIGBUS") {
					d = l
					break
				}
			}
		}
		marks = append(marks, marker{h.Time, h.Detector, h.Detector + " at " + e.Offset(h.Time) + ": " + d})
	}
	base := func(id, title, unit string) *plot {
		return &plot{id: fmt.Sprintf("exp%d-%s", idx+1, id), title: title, unit: unit, t0: t0, t1: t1, windows: wins, markers: marks}
	}
	probe := e.Probe()
	perSec := func(n int, iv time.Duration) float64 {
		if iv <= 0 {
			iv = time.Second
		}
		return float64(n) / iv.Seconds()
	}
	thr := base("throughput", "Throughput", "per second")
	if probe {
		var pts []Point
		for _, s := range e.Samples {
			pts = append(pts, Point{s.T, s.AppendRate})
		}
		thr.title = "Throughput: JVM probe appends per second"
		thr.series = []series{{"appends/s", palette[0], pts}}
	} else {
		var cr, co []Point
		for _, s := range e.Samples {
			cr = append(cr, Point{s.T, perSec(s.Created, s.Interval)})
			co = append(co, Point{s.T, perSec(s.Completed, s.Interval)})
		}
		thr.title = "Throughput: instances created and jobs completed per second"
		thr.series = []series{{"created/s", palette[0], cr}, {"completed/s", palette[1], co}}
	}
	errp := base("errors", "Errors per second by gRPC code", "errors/s")
	codes := map[string]bool{}
	for _, s := range e.Samples {
		for k := range s.Errors {
			codes[k] = true
		}
	}
	var names []string
	for k := range codes {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		var pts []Point
		for _, s := range e.Samples {
			pts = append(pts, Point{s.T, perSec(s.Errors[k], s.Interval)})
		}
		errp.series = append(errp.series, series{k, palette[(i+2)%len(palette)], pts})
	}
	if len(names) == 0 {
		var pts []Point
		for _, s := range e.Samples {
			pts = append(pts, Point{s.T, 0})
		}
		errp.series = []series{{"errors/s", palette[3], pts}}
	}
	lat := base("latency", "Create-instance latency", "ms")
	// The probe's latency is force()'s (msync); a Zeebe client's is the
	// create-instance call's. An interval without either is a gap.
	p50of, p99of := func(s journal.LoadSample) time.Duration { return s.LatencyP50 }, func(s journal.LoadSample) time.Duration { return s.LatencyP99 }
	if probe {
		lat.title = "Latency: JVM probe force() (msync)"
		p50of, p99of = func(s journal.LoadSample) time.Duration { return s.ForceP50 }, func(s journal.LoadSample) time.Duration { return s.ForceP99 }
	}
	var p50, p95, p99 []Point
	gap := math.NaN()
	for _, s := range e.Samples {
		if p50of(s) == 0 && p99of(s) == 0 {
			p50, p95, p99 = append(p50, Point{s.T, gap}), append(p95, Point{s.T, gap}), append(p99, Point{s.T, gap})
			continue
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		p50 = append(p50, Point{s.T, ms(p50of(s))})
		p95 = append(p95, Point{s.T, ms(s.LatencyP95)})
		p99 = append(p99, Point{s.T, ms(p99of(s))})
	}
	lat.series = []series{{"p50", palette[0], p50}, {"p95", palette[2], p95}, {"p99", palette[3], p99}}
	if probe {
		// The probe reports no p95.
		lat.series = []series{{"p50", palette[0], p50}, {"p99", palette[3], p99}}
	}
	hasLatency := false
	for _, pt := range p50 {
		if !math.IsNaN(pt.V) {
			hasLatency = true
		}
	}
	if probe && !hasLatency {
		return []*plot{thr, errp}
	}
	return []*plot{thr, errp, lat}
}
