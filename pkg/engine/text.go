package engine

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

func specText(s netfault.Spec) string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	if s.Selects() {
		fmt.Fprintf(&b, " %s", s.Proto)
		if s.Port != 0 {
			fmt.Fprintf(&b, " to %s port %d", s.Dst, s.Port)
		} else {
			fmt.Fprintf(&b, " to %s", s.Dst)
		}
		if s.LocalPort != 0 {
			fmt.Fprintf(&b, " local port %d", s.LocalPort)
		}
		fmt.Fprintf(&b, " dir %s", s.Dir)
		if s.Prob > 0 && s.Prob < 1 {
			fmt.Fprintf(&b, " prob %.2f", s.Prob)
		}
		if s.MatchOriginal {
			b.WriteString(" matching the original destination")
		}
		if s.Kind == netfault.KindDelay {
			fmt.Fprintf(&b, " by %v", s.Delay)
			if s.Jitter != 0 {
				fmt.Fprintf(&b, "±%v", s.Jitter)
			}
			if s.Loss != 0 {
				fmt.Fprintf(&b, " loss %g%%", s.Loss)
			}
		}
		if s.Kind == netfault.KindLimit {
			fmt.Fprintf(&b, " to %s", s.Rate)
		}
	} else {
		fmt.Fprintf(&b, " route %s %s", s.RouteType, s.Dst)
	}
	if s.Netns != "" {
		fmt.Fprintf(&b, " in netns %s", s.Netns)
	}
	return b.String()
}

func faultfsText(r *scenario.FaultfsRule) string {
	if r == nil {
		return ""
	}
	var parts []string
	parts = append(parts, strings.Join(r.Ops, ","))
	if r.Path != "" {
		parts = append(parts, "path "+r.Path)
	}
	if r.Offset != 0 || r.Length != 0 {
		rng := "from " + r.Offset.String()
		if r.Length != 0 {
			rng += " for " + r.Length.String()
		}
		parts = append(parts, rng)
	}
	if r.Errno != "" {
		parts = append(parts, "errno "+r.Errno)
	}
	if r.Latency > 0 {
		parts = append(parts, "latency "+r.Latency.String())
	}
	if r.Prob > 0 {
		parts = append(parts, fmt.Sprintf("prob %.2f", r.Prob))
	}
	return strings.Join(parts, " ")
}

func stepDetail(st *scenario.Step) string {
	var parts []string
	switch {
	case st.Fault != nil:
		f := st.Fault
		s := f.Dst
		if f.Port != 0 {
			s += fmt.Sprintf(":%d", f.Port)
		}
		if f.LocalPort != 0 {
			s += fmt.Sprintf(" local_port %d", f.LocalPort)
		}
		if f.Prob > 0 {
			s += fmt.Sprintf(" prob %.2f", f.Prob)
		}
		if f.MatchOriginal {
			s += " match_original"
		}
		if f.In != "" {
			s += " in " + f.In
		}
		parts = append(parts, s)
	case st.Faultfs != nil:
		parts = append(parts, faultfsText(st.Faultfs))
	case st.Ref != "":
		parts = append(parts, st.Ref)
	case st.Container != "":
		parts = append(parts, st.Container)
	}
	if st.DropCache {
		parts = append(parts, "dropping the page cache")
	}
	if st.Note != "" {
		parts = append(parts, "("+st.Note+")")
	}
	return strings.Join(parts, " ")
}

// expectedText is the hypothesis in prose, for the report's "Expected";
// the report lists the expectations themselves from their verdicts.
func expectedText(sc *scenario.Scenario) string {
	return strings.TrimSpace(sc.Metadata.Expected)
}

func setupLines(sc *scenario.Scenario) []string {
	var out []string
	st := sc.Storage
	switch st.Kind {
	case scenario.StorageNFS:
		s := "storage: nfs"
		if st.Server != nil {
			s += ", server " + st.Server.Kind
			if st.Server.Address != "" {
				s += " " + st.Server.Address
			}
			if st.Server.Publish != "" {
				s += " published on " + st.Server.Publish
			}
		}
		if st.Options != "" {
			s += ", mount options " + st.Options
		}
		out = append(out, s)
	default:
		out = append(out, "storage: "+st.Kind)
	}
	t := "target: " + sc.Target.Kind
	if sc.Target.Kind == scenario.TargetProbe && sc.Target.Probe != nil {
		p := sc.Target.Probe
		t += fmt.Sprintf(" (JVM journal probe, segments %v, batch %d, rate %v/s", p.SegmentSize, p.Batch, p.Rate)
		if p.Prefill > 0 {
			t += fmt.Sprintf(", prefill %v", p.Prefill)
		}
		if p.Container {
			t += ", in a podman container with the data directory bind-mounted"
		}
		t += ")"
	}
	if sc.Target.Kind == scenario.TargetZeebe && sc.Target.Zeebe != nil {
		z := sc.Target.Zeebe
		t += " " + z.Image
		if z.Brokers > 1 {
			t += fmt.Sprintf(", %d brokers", z.Brokers)
		}
	}
	out = append(out, t)
	out = append(out, "load: "+sc.LoadKind())
	out = append(out, "duration: "+sc.Duration.String())
	return out
}

// PrintPlan writes what a run of sc would do, touching nothing: each step
// with its start, the exact rules of each network fault (through
// faults.Plan, with $references shown by placeholder addresses from
// resolve), and the expectations.
func PrintPlan(ctx context.Context, w io.Writer, sc *scenario.Scenario, faults interface {
	Plan(context.Context, netfault.Spec) (netfault.Plan, error)
}, resolve func(string) (string, error)) error {
	fmt.Fprintf(w, "scenario %s: %s\n", sc.Metadata.Name, sc.Metadata.Title)
	if sc.Metadata.Seed != "" {
		fmt.Fprintf(w, "  seed: %s\n", sc.Metadata.Seed)
	}
	for _, l := range setupLines(sc) {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintf(w, "timeline:\n")
	for i := range sc.Timeline {
		st := &sc.Timeline[i]
		when := ""
		if st.At != nil {
			when = "at +" + st.At.String()
		} else {
			when = "on " + st.On
			if st.Delay > 0 {
				when += " +" + st.Delay.String()
			}
		}
		line := fmt.Sprintf("  %-16s %-12s %s", when, st.Action, st.ID)
		if d := stepDetail(st); d != "" {
			line += ": " + d
		}
		if st.For > 0 {
			line += fmt.Sprintf(" for %v (then healed)", st.For)
		}
		fmt.Fprintln(w, line)
		if st.Fault != nil {
			spec, err := st.NetfaultSpec(resolve)
			if err != nil {
				return fmt.Errorf("step %s: %w", st.ID, err)
			}
			if st.Fault.In != "" {
				spec.Netns = "<netns of " + st.Fault.In + ">"
			}
			life := st.For.D()
			if life == 0 {
				life = sc.Duration.D()
			}
			spec.For = life + time.Minute
			spec.Label = labelFor(sc.Metadata.Name, st.ID)
			if faults == nil {
				fmt.Fprintf(w, "      %s\n", specText(spec))
				continue
			}
			if st.Fault.In != "" {
				spec.Netns = ""
			}
			p, err := faults.Plan(ctx, spec)
			if err != nil {
				return fmt.Errorf("step %s: planning %s: %w", st.ID, specText(spec), err)
			}
			for _, r := range append(p.Rules, p.Routes...) {
				if st.Fault.In != "" {
					r = "(in the network namespace of " + st.Fault.In + ") " + r
				}
				fmt.Fprintf(w, "      %s\n", r)
			}
		}
	}
	fmt.Fprintf(w, "  at +%-13s end\n", sc.Duration.String())
	fmt.Fprintf(w, "expectations:\n")
	for i := range sc.Expectations {
		e := &sc.Expectations[i]
		skip := ""
		if !e.Applies(sc.Target.Kind) {
			skip = " [skipped: target " + sc.Target.Kind + "]"
		}
		detail := ""
		if e.Name != "" {
			c := *e
			c.Name = ""
			detail = "  [" + ExpectationName(&c) + "]"
		}
		fmt.Fprintf(w, "  - %s%s%s\n", ExpectationName(e), detail, skip)
	}
	fmt.Fprintf(w, "rollbacks: heal every fault the run created, clear faultfs rules, unpause paused containers")
	for _, r := range sc.Rollbacks {
		fmt.Fprintf(w, ", %s %s", r.Action, stepDetail(&r))
	}
	fmt.Fprintf(w, ", stop the target, tear down the storage\n")
	return nil
}

// firstLine is the first evidence line that says something: banners such
// as the JVM's fatal error report start with bare "#" lines.
func firstLine(ev []string) string {
	for _, l := range ev {
		t := strings.TrimSpace(strings.Trim(strings.TrimSpace(l), "#"))
		n := 0
		for _, c := range t {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
				n++
			}
		}
		if n >= 3 {
			return t
		}
	}
	if len(ev) == 0 {
		return ""
	}
	return strings.TrimSpace(ev[0])
}
