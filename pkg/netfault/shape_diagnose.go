package netfault

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nfslab/nfslab/internal/ownchain"
)

// Causes of a shaping fault that matches no traffic.
const (
	// CauseShapeOffRoute: the traffic to the destination now leaves by
	// another device than the one holding the fault's class.
	CauseShapeOffRoute = "shape-off-route"
	// CauseShapeClassMissing: the fault's rule classifies into a class
	// that is gone (its root qdisc was replaced or deleted by another
	// tool), or its ingress filter or ifb is gone.
	CauseShapeClassMissing = "shape-class-missing"
)

// shapeFindings explains why a delay or limit fault's class counts no
// packets; Diagnose adds the causes it shares with drop (no connection,
// userspace proxy, localio).
func (m *Manager) shapeFindings(inv *inventory, e *entry, s Spec, pfx netip.Prefix, isLocal bool) []Finding {
	var out []Finding
	var mangle *located
	for i := range e.rules {
		if e.rules[i].table == TableMangle {
			mangle = &e.rules[i]
		}
	}
	onDev := map[string]bool{}
	hasEgressClass, hasIfb := false, e.ifb != nil
	for _, o := range e.shapes {
		if o.ifb == nil {
			hasEgressClass = true
			onDev[o.link.Attrs().Name] = true
		}
	}
	if s.Dir != DirIn {
		switch {
		case mangle != nil && !hasEgressClass:
			out = append(out, Finding{Cause: CauseShapeClassMissing,
				Detail: fmt.Sprintf("the rule classifies into --set-class %s, but no class of nfslab's exists for it: its root qdisc was replaced or deleted by another tool", mangle.rule.Opt["--set-class"]),
				Fix:    "heal the fault and apply it again (nfslab refuses a root qdisc it did not make: remove that first)"})
		case hasEgressClass && inv.shape != nil:
			if l, err := routeDev(inv.shape, s); err == nil && !onDev[l.Attrs().Name] {
				out = append(out, Finding{Cause: CauseShapeOffRoute,
					Detail: fmt.Sprintf("the route to %s leaves by %s now, but the fault's class is on %s", s.Dst, l.Attrs().Name, strings.Join(keys(onDev), ", ")),
					Fix:    "heal the fault and apply it again: it follows the route at apply time"})
			}
		}
		if mangle != nil {
			out = append(out, shapeJumpFindings(mangle.ipt)...)
			out = append(out, natRewrites(mangle.ipt, pfx, s.Port, isLocal)...)
		}
	}
	if s.Dir != DirOut && (!hasIfb || len(e.ingress) == 0) {
		out = append(out, Finding{Cause: CauseShapeClassMissing,
			Detail: fmt.Sprintf("the ingress half is incomplete: ifb device %s present: %v, ingress filters: %d", ifbName(e.id), hasIfb, len(e.ingress)),
			Fix:    "heal the fault and apply it again"})
	}
	return out
}

// shapeJumpFindings reports a rule above nfslab's jump in mangle
// POSTROUTING that ends the traffic's walk (ACCEPT, RETURN), or a missing
// jump: the classifying rule is then never reached.
func shapeJumpFindings(ipt IPTables) []Finding {
	c := shapeChain()
	lines, err := ipt.List(c.Table, c.Builtin)
	if err != nil {
		return nil
	}
	for _, l := range lines {
		r, ok := ownchain.ParseRule(l)
		if !ok {
			continue
		}
		switch r.Target() {
		case c.Name:
			return nil
		case "ACCEPT", "RETURN":
			return []Finding{{Cause: CauseEarlierAccept,
				Detail: fmt.Sprintf("mangle %s has %q above nfslab's jump to %s", c.Builtin, joinArgs(r.Args), c.Name),
				Fix:    "apply the fault again (the jump goes back to position 1)"}}
		}
	}
	return []Finding{{Cause: CauseEarlierAccept, Detail: fmt.Sprintf("mangle %s has no jump to %s", c.Builtin, c.Name),
		Fix: "apply the fault again"}}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
