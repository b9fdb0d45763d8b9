package engine

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// State of a verdict.
type State string

const (
	Pending State = "pending"
	Held    State = "held"
	Failed  State = "failed"
)

// Verdict is one expectation judged.
type Verdict struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	State   State  `json:"state"`
	Detail  string `json:"detail,omitempty"`
	Skipped bool   `json:"skipped,omitempty"` // does not apply to this target kind
}

type seenHit struct {
	at  time.Time
	hit journal.Hit
}

type seenSample struct {
	at time.Time
	s  journal.LoadSample
}

// evalData is what the run observed; evaluate judges it.
type evalData struct {
	start, now time.Time
	ended      bool
	steps      []stepState
	effects    []*effect
	hits       []seenHit
	samples    []seenSample
	exits      []Exit
	events     map[string]time.Time
}

// DefaultBaseline is the steady-state window before a fault.
const DefaultBaseline = 20 * time.Second

// ExpectationName is e's name, or a generated one.
func ExpectationName(e *scenario.Expectation) string {
	if e.Name != "" {
		return e.Name
	}
	var parts []string
	parts = append(parts, e.Kind)
	for _, s := range []string{e.Detector, e.Code, e.By, e.Metric, e.Step, e.Cause} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if e.ExitCode != nil {
		parts = append(parts, strconv.Itoa(*e.ExitCode))
	}
	if e.Fraction != 0 {
		parts = append(parts, fmt.Sprintf("%.0f%% of baseline", 100*e.Fraction))
	}
	if e.After != "" {
		parts = append(parts, "after "+e.After)
	}
	if e.Within != 0 {
		parts = append(parts, "within "+e.Within.String())
	}
	return strings.Join(parts, " ")
}

func evaluate(sc *scenario.Scenario, d *evalData) []Verdict {
	out := make([]Verdict, 0, len(sc.Expectations))
	for i := range sc.Expectations {
		e := &sc.Expectations[i]
		v := Verdict{Name: ExpectationName(e), Kind: e.Kind}
		if !e.Applies(sc.Target.Kind) {
			v.Skipped = true
			v.State = Held
			v.Detail = "applies only to target " + strings.Join(e.Targets, ", ")
			out = append(out, v)
			continue
		}
		v.State, v.Detail = judge(sc, d, e)
		out = append(out, v)
	}
	return out
}

func stepIndex(sc *scenario.Scenario, id string) int {
	for i := range sc.Timeline {
		if sc.Timeline[i].ID == id {
			return i
		}
	}
	return -1
}

// anchor is the start of e's window: the start of step After (for
// recovery: the end of its For, i.e. the heal), or the timeline's start.
func anchor(sc *scenario.Scenario, d *evalData, e *scenario.Expectation) (time.Time, bool) {
	if e.After == "" {
		return d.start, !d.start.IsZero()
	}
	i := stepIndex(sc, e.After)
	if i < 0 || i >= len(d.steps) {
		return time.Time{}, false
	}
	ss := d.steps[i]
	if e.Kind == scenario.ExpectRecovery && sc.Timeline[i].For > 0 {
		return ss.ended, !ss.ended.IsZero()
	}
	return ss.started, !ss.started.IsZero()
}

func judge(sc *scenario.Scenario, d *evalData, e *scenario.Expectation) (State, string) {
	switch e.Kind {
	case scenario.ExpectFaultHits, scenario.ExpectFaultNoHits:
		return judgeHits(sc, d, e)
	}
	a, ok := anchor(sc, d, e)
	if !ok {
		if d.ended {
			return Failed, fmt.Sprintf("step %s never started (or never ended), so the window never opened", e.After)
		}
		return Pending, "waiting for step " + e.After
	}
	from, to := a.Add(e.Settle.D()), a.Add(e.Within.D())
	closed := !d.now.Before(to)
	since := func(t time.Time) string { return t.Sub(a).Round(100 * time.Millisecond).String() }
	switch e.Kind {
	case scenario.ExpectDetectorFires, scenario.ExpectDetectorAbsent:
		var hit *seenHit
		for i := range d.hits {
			h := &d.hits[i]
			if h.hit.Detector == e.Detector && !h.at.Before(from) && !h.at.After(to) {
				hit = h
				break
			}
		}
		if e.Kind == scenario.ExpectDetectorFires {
			if hit != nil {
				return Held, fmt.Sprintf("%s fired %s after %s: %s", e.Detector, since(hit.at), cmp.Or(e.After, "the start"), bestLine(e.Detector, hit.hit.Evidence))
			}
			if closed || d.ended {
				return Failed, fmt.Sprintf("%s did not fire within %v of %s", e.Detector, e.Within, cmp.Or(e.After, "the start"))
			}
			return Pending, ""
		}
		if hit != nil {
			return Failed, fmt.Sprintf("%s fired %s after %s: %s", e.Detector, since(hit.at), cmp.Or(e.After, "the start"), firstLine(hit.hit.Evidence))
		}
		if closed {
			return Held, fmt.Sprintf("%s did not fire within %v of %s", e.Detector, e.Within, cmp.Or(e.After, "the start"))
		}
		if d.ended {
			return Failed, fmt.Sprintf("the run ended %s into the %v window; absence not shown", since(d.now), e.Within)
		}
		return Pending, ""
	case scenario.ExpectRateBelow, scenario.ExpectRateAbove:
		if !closed && !d.ended {
			return Pending, ""
		}
		base, bdesc, ok := baseline(sc, d, e)
		if !ok {
			return Failed, bdesc
		}
		mean, n := meanRate(sc, d, e.Metric, from, to)
		if n == 0 {
			return Failed, fmt.Sprintf("no load samples in the window %s..%s after %s", e.Settle, e.Within, cmp.Or(e.After, "the start"))
		}
		ratio := mean / base
		desc := fmt.Sprintf("%s rate %.1f/s over the window = %.0f%% of the %s", metricName(sc, e.Metric), mean, 100*ratio, bdesc)
		below := ratio < e.Fraction
		if e.Kind == scenario.ExpectRateBelow {
			if below {
				return Held, desc + fmt.Sprintf(" (below %.0f%%)", 100*e.Fraction)
			}
			return Failed, desc + fmt.Sprintf(" (not below %.0f%%)", 100*e.Fraction)
		}
		if !below {
			return Held, desc + fmt.Sprintf(" (at least %.0f%%)", 100*e.Fraction)
		}
		return Failed, desc + fmt.Sprintf(" (under %.0f%%)", 100*e.Fraction)
	case scenario.ExpectErrorsAppear, scenario.ExpectErrorsAbsent:
		n, first := 0, time.Time{}
		for _, s := range d.samples {
			if s.at.Before(from) || s.at.After(to) {
				continue
			}
			c := s.s.Errors[e.Code]
			if e.Code == "any" {
				c = s.s.ErrorTotal()
			}
			if c > 0 && first.IsZero() {
				first = s.at
			}
			n += c
		}
		if e.Kind == scenario.ExpectErrorsAppear {
			if n > 0 {
				return Held, fmt.Sprintf("%d %s error(s), the first %s after %s", n, e.Code, since(first), cmp.Or(e.After, "the start"))
			}
			if closed || d.ended {
				return Failed, fmt.Sprintf("no %s errors within %v", e.Code, e.Within)
			}
			return Pending, ""
		}
		if n > 0 {
			return Failed, fmt.Sprintf("%d %s error(s), the first %s after %s", n, e.Code, since(first), cmp.Or(e.After, "the start"))
		}
		if closed {
			return Held, fmt.Sprintf("no %s errors within %v", e.Code, e.Within)
		}
		if d.ended {
			return Failed, "the run ended before the window closed"
		}
		return Pending, ""
	case scenario.ExpectRecovery:
		return judgeRecovery(sc, d, e, a, to, closed)
	case scenario.ExpectExitCode:
		for _, x := range d.exits {
			if x.Time.Before(a) || x.Time.After(to) {
				continue
			}
			if x.Code == *e.ExitCode {
				return Held, fmt.Sprintf("%s exited with %d %s after %s", cmp.Or(x.Name, "target"), x.Code, since(x.Time), cmp.Or(e.After, "the start"))
			}
			return Failed, fmt.Sprintf("%s exited with %d, not %d", cmp.Or(x.Name, "target"), x.Code, *e.ExitCode)
		}
		if closed || d.ended {
			return Failed, fmt.Sprintf("the target did not exit within %v", e.Within)
		}
		return Pending, ""
	}
	return Failed, "unknown expectation kind " + e.Kind
}

func judgeRecovery(sc *scenario.Scenario, d *evalData, e *scenario.Expectation, a, to time.Time, closed bool) (State, string) {
	fail := func(why string) (State, string) {
		if closed || d.ended {
			return Failed, why
		}
		return Pending, ""
	}
	switch e.By {
	case scenario.RecoverByDetector:
		for _, h := range d.hits {
			if h.hit.Detector == e.Detector && !h.at.Before(a) && !h.at.After(to) {
				return Held, fmt.Sprintf("%s %v after the heal: %s", e.Detector, h.at.Sub(a).Round(100*time.Millisecond), firstLine(h.hit.Evidence))
			}
		}
		return fail(fmt.Sprintf("%s did not fire within %v of the heal", e.Detector, e.Within))
	case scenario.RecoverByAppending:
		for _, s := range d.samples {
			if !s.at.Before(a) && !s.at.After(to) && rate(sc, s.s, e.Metric) > 0 {
				return Held, fmt.Sprintf("appending again %v after the heal (%.1f/s)", s.at.Sub(a).Round(100*time.Millisecond), rate(sc, s.s, e.Metric))
			}
		}
		return fail(fmt.Sprintf("no appends within %v of the heal", e.Within))
	default:
		base, bdesc, ok := baseline(sc, d, e)
		if !ok {
			if closed || d.ended {
				return Failed, bdesc
			}
			return Pending, ""
		}
		// A 3-sample moving mean, so one lucky second is not a recovery.
		var win []float64
		for _, s := range d.samples {
			if s.at.Before(a) || s.at.After(to) {
				continue
			}
			win = append(win, rate(sc, s.s, e.Metric))
			if len(win) > 3 {
				win = win[1:]
			}
			if len(win) == 3 && mean(win) >= e.Fraction*base {
				return Held, fmt.Sprintf("%s rate back to %.1f/s (%.0f%% of the %s) %v after the heal", metricName(sc, e.Metric), mean(win), 100*mean(win)/base, bdesc, s.at.Sub(a).Round(100*time.Millisecond))
			}
		}
		return fail(fmt.Sprintf("%s rate not back above %.0f%% of the %s within %v of the heal", metricName(sc, e.Metric), 100*e.Fraction, bdesc, e.Within))
	}
}

// bestLine picks the evidence line that names what the detector is about
// (the "SIGBUS (0x7)" line of a JVM crash banner), else the first line
// that says something.
func bestLine(detector string, ev []string) string {
	key := ""
	for _, tok := range strings.Split(detector, "-") {
		if len(tok) > len(key) {
			key = tok
		}
	}
	for _, l := range ev {
		if key != "" && strings.Contains(strings.ToLower(l), key) {
			return strings.TrimSpace(strings.Trim(strings.TrimSpace(l), "#"))
		}
	}
	return firstLine(ev)
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// baseline is the steady-state rate before the fault: the mean over
// Baseline (default 20s) before step BaselineBefore (default After; for
// recovery the first fault step).
func baseline(sc *scenario.Scenario, d *evalData, e *scenario.Expectation) (float64, string, bool) {
	ref := e.BaselineBefore
	if ref == "" {
		ref = e.After
		if e.Kind == scenario.ExpectRecovery {
			ref = firstFaultStep(sc)
		}
	}
	end := d.start
	if ref != "" {
		i := stepIndex(sc, ref)
		if i < 0 || i >= len(d.steps) || d.steps[i].started.IsZero() {
			return 0, fmt.Sprintf("no baseline: step %s never started", ref), false
		}
		end = d.steps[i].started
	}
	w := e.Baseline.D()
	if w == 0 {
		w = DefaultBaseline
	}
	m, n := meanRate(sc, d, e.Metric, end.Add(-w), end)
	if n == 0 || m <= 0 {
		return 0, fmt.Sprintf("no steady-state baseline: %d samples, mean %.1f/s in the %v before %s", n, m, w, cmp.Or(ref, "the start")), false
	}
	return m, fmt.Sprintf("baseline %.1f/s (%v before %s)", m, w, cmp.Or(ref, "the start")), true
}

func firstFaultStep(sc *scenario.Scenario) string {
	for _, st := range sc.Timeline {
		if scenario.IsNetworkFault(st.Action) {
			return st.ID
		}
		switch st.Action {
		case scenario.ActionFaultfsSet, scenario.ActionPause, scenario.ActionStop, scenario.ActionKill:
			return st.ID
		}
		if _, ok := serverFaults[st.Action]; ok {
			return st.ID
		}
	}
	return ""
}

func meanRate(sc *scenario.Scenario, d *evalData, metric string, from, to time.Time) (float64, int) {
	var sum float64
	n := 0
	for _, s := range d.samples {
		if s.at.Before(from) || s.at.After(to) {
			continue
		}
		sum += rate(sc, s.s, metric)
		n++
	}
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n
}

var partRE = regexp.MustCompile(`^created-partition-([0-9]+)$`)

func metricName(sc *scenario.Scenario, m string) string {
	if m != "" {
		return m
	}
	if sc.LoadKind() == scenario.LoadZeebe {
		return "completed"
	}
	return "appends"
}

// rate is the per-second value of metric in s.
func rate(sc *scenario.Scenario, s journal.LoadSample, metric string) float64 {
	iv := s.Interval.Seconds()
	if iv <= 0 {
		iv = 1
	}
	switch m := metricName(sc, metric); {
	case m == "appends":
		return s.AppendRate
	case m == "created":
		return float64(s.Created) / iv
	case m == "completed":
		return float64(s.Completed) / iv
	case partRE.MatchString(m):
		p, _ := strconv.Atoi(partRE.FindStringSubmatch(m)[1])
		return float64(s.ByPartition[int32(p)]) / iv
	}
	return 0
}

func judgeHits(sc *scenario.Scenario, d *evalData, e *scenario.Expectation) (State, string) {
	i := stepIndex(sc, e.Step)
	if i < 0 || i >= len(d.steps) || d.steps[i].started.IsZero() {
		if d.ended {
			return Failed, "step " + e.Step + " never ran"
		}
		return Pending, ""
	}
	var pk, by uint64
	var n int
	healed := true
	for _, f := range d.effects {
		if f.step != e.Step || !f.network() {
			continue
		}
		n++
		pk += f.packets
		by += f.bytes
		healed = healed && f.undone
	}
	if n == 0 {
		if d.ended || !d.steps[i].done.IsZero() || d.steps[i].err != nil {
			return Failed, "step " + e.Step + " created no fault"
		}
		return Pending, ""
	}
	finished := healed || d.ended
	findings := d.steps[i].findings
	var causes []string
	for _, f := range findings {
		causes = append(causes, f.Cause)
	}
	if e.Kind == scenario.ExpectFaultHits {
		if pk > 0 {
			return Held, fmt.Sprintf("%d packets (%d bytes) matched", pk, by)
		}
		if finished {
			return Failed, fmt.Sprintf("0 packets matched; findings: %s", cmp.Or(strings.Join(causes, ", "), "none"))
		}
		return Pending, ""
	}
	if pk > 0 {
		return Failed, fmt.Sprintf("%d packets matched, expected none", pk)
	}
	if !finished {
		return Pending, ""
	}
	if e.Cause != "" && !slices.Contains(causes, e.Cause) {
		return Failed, fmt.Sprintf("0 packets matched, but the findings (%s) do not name %s", cmp.Or(strings.Join(causes, ", "), "none"), e.Cause)
	}
	detail := "0 packets matched"
	for _, f := range findings {
		if f.Cause == e.Cause || e.Cause == "" {
			detail += fmt.Sprintf("; %s: %s", f.Cause, f.Detail)
			if f.Fix != "" {
				detail += " (fix: " + f.Fix + ")"
			}
			break
		}
	}
	return Held, detail
}
