package report

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Phase is the load during one part of an experiment.
type Phase struct {
	Name               string // "before faults", "during faults", "after heal"
	From, To           time.Time
	Seconds            float64
	Created, Completed float64 // per second
	AppendRate         float64 // mean, probe only
	Errors             map[string]int
	MaxP99             time.Duration
	// ForceP50 and ForceP99 are the probe's force() latency in the phase:
	// the median of its per-interval p50s and the largest per-interval p99
	// (a stalled force() shows in the p99 of the interval it ended in).
	ForceP50, ForceP99 time.Duration
	Samples            int
}

// Phases splits the load samples at the first fault applied and the last
// fault healed.
func (e *Experiment) Phases() []Phase {
	if len(e.Samples) == 0 {
		return nil
	}
	var first, last time.Time
	for _, f := range e.Faults {
		if !f.Applied.IsZero() && (first.IsZero() || f.Applied.Before(first)) {
			first = f.Applied
		}
		_, to := f.Window(e.End)
		if to.After(last) {
			last = to
		}
	}
	ph := []Phase{{Name: "whole run"}}
	if !first.IsZero() {
		ph = []Phase{{Name: "before faults", To: first}, {Name: "during faults", From: first, To: last}, {Name: "after heal", From: last}}
	}
	for i := range ph {
		ph[i].Errors = map[string]int{}
	}
	appendSum := make([]float64, len(ph))
	p50s := make([][]time.Duration, len(ph))
	for _, s := range e.Samples {
		i := 0
		if !first.IsZero() {
			switch {
			case !s.T.After(first):
				i = 0
			case !s.T.After(last):
				i = 1
			default:
				i = 2
			}
		}
		p := &ph[i]
		iv := s.Interval
		if iv <= 0 {
			iv = time.Second
		}
		p.Seconds += iv.Seconds()
		p.Created += float64(s.Created)
		p.Completed += float64(s.Completed)
		appendSum[i] += s.AppendRate
		for k, v := range s.Errors {
			p.Errors[k] += v
		}
		if s.LatencyP99 > p.MaxP99 {
			p.MaxP99 = s.LatencyP99
		}
		if s.ForceP99 > 0 {
			p50s[i] = append(p50s[i], s.ForceP50)
			p.ForceP99 = max(p.ForceP99, s.ForceP99)
		}
		p.Samples++
	}
	var out []Phase
	for i, p := range ph {
		if p.Samples == 0 {
			continue
		}
		if p.Seconds > 0 {
			p.Created /= p.Seconds
			p.Completed /= p.Seconds
		}
		p.AppendRate = appendSum[i] / float64(p.Samples)
		if n := len(p50s[i]); n > 0 {
			slices.Sort(p50s[i])
			p.ForceP50 = p50s[i][n/2]
		}
		out = append(out, p)
	}
	return out
}

// Verdict is the one-line TL;DR.
func (r *Report) Verdict() string {
	var failed []string
	total, held := 0, 0
	for i, e := range r.Experiments {
		for _, x := range e.Expectations {
			total++
			if x.Held {
				held++
			} else if len(r.Experiments) > 1 {
				failed = append(failed, fmt.Sprintf("%s (experiment %d)", x.Name, i+1))
			} else {
				failed = append(failed, x.Name)
			}
		}
		if e.Result == nil {
			failed = append(failed, fmt.Sprintf("experiment %d did not finish", i+1))
		} else if !e.Result.Passed && e.Result.Reason != "" {
			failed = append(failed, e.Result.Reason)
		}
	}
	if r.Passed {
		return fmt.Sprintf("PASSED: all %d expectations held in %d experiment(s).", total, len(r.Experiments))
	}
	return fmt.Sprintf("FAILED: %d of %d expectations held; not met: %s.", held, total, strings.Join(dedupe(failed), "; "))
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// HitSummary counts hits by detector, in first-seen order.
func (e *Experiment) HitSummary() string {
	if len(e.Hits) == 0 {
		return "no detector hits"
	}
	count := map[string]int{}
	first := map[string]time.Time{}
	var order []string
	for _, h := range e.Hits {
		if count[h.Detector] == 0 {
			order = append(order, h.Detector)
			first[h.Detector] = h.Time
		}
		count[h.Detector]++
	}
	var parts []string
	for _, d := range order {
		parts = append(parts, fmt.Sprintf("%s ×%d (first at %s)", d, count[d], e.Offset(first[d])))
	}
	return strings.Join(parts, ", ")
}

// Title of an experiment for headings.
func (e *Experiment) Title(i int) string {
	name := e.Run.Title
	if name == "" {
		name = e.Run.Scenario
	}
	if name == "" {
		name = "run"
	}
	s := fmt.Sprintf("Experiment %d: %s", i+1, name)
	if e.Run.Iteration > 0 {
		s += fmt.Sprintf(" (iteration %d)", e.Run.Iteration)
	}
	return s
}

func formatErrors(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// fence returns a code fence longer than any backtick run in lines.
func fence(lines []string) string {
	f := "```"
	for _, l := range lines {
		for strings.Contains(l, f) {
			f += "`"
		}
	}
	return f
}

// WriteMarkdown renders report.md.
func WriteMarkdown(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("# %s\n\n", r.Title)
	p("**TL;DR;** %s", r.Verdict())
	if len(r.Experiments) == 1 {
		p(" Seen: %s.", r.Experiments[0].HitSummary())
	}
	p("\n\n")

	p("## Setup\n\n")
	if len(r.Experiments) > 0 {
		e := r.Experiments[0]
		if e.Run.Scenario != "" {
			p("- scenario: `%s`\n", e.Run.Scenario)
		}
		for _, s := range e.Run.Setup {
			p("- %s\n", s)
		}
		if e.Run.Summary != "" {
			p("\n%s\n", e.Run.Summary)
		}
	}
	p("\n")

	for i, e := range r.Experiments {
		p("## %s\n\n", e.Title(i))
		p("Started %s, ran %s.\n\n", e.Start.UTC().Format(time.RFC3339), e.End.Sub(e.Start).Round(100*time.Millisecond))

		p("### Expected\n\n")
		if e.Run.Expected != "" {
			p("%s\n\n", e.Run.Expected)
		}
		for _, x := range e.Expectations {
			p("- %s\n", x.Name)
		}
		if len(e.Expectations) == 0 && e.Run.Expected == "" {
			p("No expectations were recorded.\n")
		}
		p("\n### Actual\n\n")
		writeSteps(p, e)
		writeFaults(p, e)
		writeLoad(p, e)
		writeHits(p, e)
		if len(e.Notes) > 0 {
			p("Notes:\n\n")
			for _, n := range e.Notes {
				p("- %s %s\n", e.Offset(n.Time), n.Note)
			}
			p("\n")
		}

		p("### Results\n\n")
		for _, x := range e.Expectations {
			mark := "✅ held"
			if !x.Held {
				mark = "❌ did not hold"
			}
			p("- %s: **%s**", x.Name, mark)
			if x.Detail != "" {
				p(" (%s)", x.Detail)
			}
			p("\n")
		}
		switch {
		case e.Result == nil:
			p("- **did not finish**: the journal ends before run-end.\n")
		default:
			v := "PASSED"
			if !e.Passed() {
				v = "FAILED"
			}
			p("- verdict: **%s**", v)
			if e.Result.Reason != "" {
				p(" (%s)", e.Result.Reason)
			}
			if e.Result.Interrupted {
				p(", interrupted")
			}
			p("\n")
			if len(e.Result.RolledBack) > 0 {
				p("- rolled back: %s\n", strings.Join(e.Result.RolledBack, ", "))
			}
		}
		p("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type printer func(format string, a ...any)

func writeSteps(p printer, e *Experiment) {
	if len(e.Steps) == 0 {
		return
	}
	p("Timeline:\n\n| # | planned | started (lag) | action | detail |\n|---|---|---|---|---|\n")
	for _, s := range e.Steps {
		started := "not started"
		if !s.ActualAt.IsZero() {
			started = fmt.Sprintf("%s (%s)", e.Offset(s.ActualAt), s.Lag)
		}
		detail := s.Detail
		if s.Name != "" {
			detail = strings.TrimSpace(s.Name + ": " + detail)
		}
		if s.On != "" {
			detail += " (on " + s.On + ")"
		}
		if s.For > 0 {
			detail += fmt.Sprintf(" for %s", s.For)
		}
		if s.Err != "" {
			detail += " — error: " + s.Err
		}
		planned := e.Offset(s.PlannedAt)
		if s.PlannedAt.IsZero() {
			planned = "+" + s.Offset.String()
		}
		p("| %d | %s | %s | %s | %s |\n", s.Index, planned, started, mdCell(s.Action), mdCell(detail))
	}
	p("\n")
}

func writeFaults(p printer, e *Experiment) {
	if len(e.Faults) == 0 {
		return
	}
	p("Faults (packet counters prove each fault matched traffic):\n\n| fault | kind | applied | healed | packets | bytes |\n|---|---|---|---|---|---|\n")
	for _, f := range e.Faults {
		pk, by := "-", "-"
		if f.HasCounters && f.Counters.Counted {
			pk, by = fmt.Sprint(f.Counters.Packets), fmt.Sprint(f.Counters.Bytes)
		} else if f.HasCounters {
			pk, by = "n/a (no counters)", "n/a"
		}
		healed := e.Offset(f.Healed)
		if f.Healed.IsZero() {
			healed = "not healed"
		}
		p("| `%s` | %s | %s | %s | %s | %s |\n", mdCell(f.ID), mdCell(f.Kind), e.Offset(f.Applied), healed, pk, by)
	}
	p("\n")
	for _, f := range e.Faults {
		if len(f.Rules) == 0 && len(f.Findings) == 0 && f.Description == "" {
			continue
		}
		p("`%s`", f.ID)
		if f.Description != "" {
			p(": %s", f.Description)
		}
		p("\n\n")
		if len(f.Rules) > 0 {
			fc := fence(f.Rules)
			p("%s\n%s\n%s\n\n", fc, strings.Join(f.Rules, "\n"), fc)
		}
		if f.HasCounters && f.Counters.Counted && f.Counters.Packets == 0 {
			p("**This fault matched no packets.**\n\n")
		}
		for _, x := range f.Findings {
			p("- likely cause: %s\n", x)
		}
		if len(f.Findings) > 0 {
			p("\n")
		}
	}
}

func writeLoad(p printer, e *Experiment) {
	ph := e.Phases()
	if len(ph) == 0 {
		return
	}
	if e.Probe() {
		p("Load (JVM journal probe):\n\n| phase | samples | appends/s | force() p50 | force() p99 | errors |\n|---|---|---|---|---|---|\n")
		for _, x := range ph {
			p("| %s | %d | %.1f | %s | %s | %s |\n", x.Name, x.Samples, x.AppendRate, forceText(x.ForceP50), forceText(x.ForceP99), formatErrors(x.Errors))
		}
	} else {
		p("Load:\n\n| phase | samples | created/s | completed/s | errors | max p99 |\n|---|---|---|---|---|---|\n")
		for _, x := range ph {
			p("| %s | %d | %.2f | %.2f | %s | %s |\n", x.Name, x.Samples, x.Created, x.Completed, formatErrors(x.Errors), x.MaxP99.Round(time.Millisecond))
		}
	}
	p("\n")
}

func writeHits(p printer, e *Experiment) {
	if len(e.Hits) == 0 {
		p("Detectors: no hits.\n\n")
		return
	}
	p("Detectors: %s.\n\n", e.HitSummary())
	for _, h := range e.Hits {
		p("#### `%s` at %s", h.Detector, e.Offset(h.Time))
		if h.Source != "" {
			p(" in %s", h.Source)
			if h.Line > 0 {
				p(":%d", h.Line)
			}
		}
		p("\n\n")
		if len(h.Fields) > 0 {
			keys := make([]string, 0, len(h.Fields))
			for k := range h.Fields {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s=`%s`", k, h.Fields[k]))
			}
			p("%s\n\n", strings.Join(parts, ", "))
		}
		ev := h.Evidence
		const maxLines = 40
		cut := 0
		if len(ev) > maxLines {
			cut = len(ev) - maxLines
			ev = ev[:maxLines]
		}
		fc := fence(ev)
		p("%s\n%s\n", fc, strings.Join(ev, "\n"))
		if cut > 0 {
			p("... %d more lines\n", cut)
		}
		p("%s\n\n", fc)
	}
}

// Probe reports whether the load came from the JVM journal probe (appends
// and force() latency) rather than a Zeebe client (instances and jobs).
func (e *Experiment) Probe() bool {
	for _, s := range e.Samples {
		if s.AppendRate > 0 {
			return true
		}
	}
	return false
}

// forceText is a force() latency for the load table ("-" when unknown).
func forceText(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
