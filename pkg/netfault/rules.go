package netfault

import (
	"cmp"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nfslab/nfslab/internal/ownchain"
)

// Names of nfslab's kernel objects.
const (
	// TableFilter is the only table nfslab adds rules to.
	TableFilter = "filter"
	// ChainOut and ChainIn are nfslab's own chains, jumped to from position
	// 1 of OUTPUT and INPUT.
	ChainOut = "NFSLAB-OUTPUT"
	ChainIn  = "NFSLAB-INPUT"
	// CommentPrefix starts the comment on every fault rule: nfslab:<id>.
	CommentPrefix = "nfslab:"
	// JumpComment marks the jumps from the built-in chains.
	JumpComment = "nfslab"
	// RouteProtocol is the rtnetlink protocol number on nfslab's routes
	// (`ip route ... proto 73`; name it with rt_protos.d, see docs).
	RouteProtocol = 73
	// timeLayout is the format of -m time --datestop (UTC).
	timeLayout = "2006-01-02T15:04:05"
)

// builtinFor maps nfslab's chain to the built-in chain that jumps to it.
func builtinFor(chain string) string {
	if chain == ChainIn {
		return "INPUT"
	}
	return "OUTPUT"
}

// ruleSpec is one iptables rule nfslab will append to one of its chains.
type ruleSpec struct {
	V6    bool
	Chain string
	Args  []string
}

// chainFor is nfslab's chain name in the filter table, jumped to from its
// built-in chain.
func chainFor(name string) ownchain.Chain {
	return ownchain.Chain{Table: TableFilter, Name: name, Builtin: builtinFor(name), Comment: JumpComment}
}

// expiryFor rounds the end of a lifetime up to a whole second, the
// granularity of -m time.
func expiryFor(created time.Time, life time.Duration) time.Time {
	e := created.Add(cmp.Or(life, DefaultLifetime))
	if t := e.Truncate(time.Second); !t.Equal(e) {
		e = t.Add(time.Second)
	}
	return e.UTC()
}

// datestop is the last second in which a rule still matches: xt_time
// compares whole seconds and matches while now <= datestop.
func datestop(expires time.Time) string {
	return expires.Add(-time.Second).UTC().Format(timeLayout)
}

func formatProb(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// addrArg renders a prefix the way iptables -S prints it for -s/-d.
func addrArg(p netip.Prefix) string { return p.String() }

// ctAddrArg renders a prefix the way iptables -S prints --ctorigdst: a
// host address has no length.
func ctAddrArg(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// renderRules returns the rules of a rule fault in creation order, in the
// canonical order iptables -S prints their options.
func renderRules(id string, s Spec, expires time.Time) ([]ruleSpec, error) {
	if !s.IsRule() {
		return nil, nil
	}
	pfx, err := s.Prefix()
	if err != nil {
		return nil, err
	}
	v6 := pfx.Addr().Is6()
	one := func(chain string) ruleSpec {
		in := chain == ChainIn
		var a []string
		if !s.MatchOriginal {
			if in {
				a = append(a, "-s", addrArg(pfx))
			} else {
				a = append(a, "-d", addrArg(pfx))
			}
		}
		// The zone of a link-local destination names the interface: the
		// rule matches only there, as the address means only there.
		if z := s.Zone(); z != "" {
			if in {
				a = append(a, "-i", z)
			} else {
				a = append(a, "-o", z)
			}
		}
		a = append(a, "-p", s.Proto)
		if s.MatchOriginal {
			a = append(a, "-m", "conntrack", "--ctorigdst", ctAddrArg(pfx))
			if s.Port != 0 {
				a = append(a, "--ctorigdstport", strconv.Itoa(s.Port))
			}
		} else if s.Port != 0 || s.LocalPort != 0 {
			// iptables -S prints --sport before --dport. Port is the
			// peer's: the destination port going out, the source port
			// coming in; LocalPort the other way round.
			sport, dport := s.LocalPort, s.Port
			if in {
				sport, dport = s.Port, s.LocalPort
			}
			a = append(a, "-m", s.Proto)
			if sport != 0 {
				a = append(a, "--sport", strconv.Itoa(sport))
			}
			if dport != 0 {
				a = append(a, "--dport", strconv.Itoa(dport))
			}
		}
		if s.Kind == KindDrop && s.Prob > 0 && s.Prob < 1 {
			a = append(a, "-m", "statistic", "--mode", "random", "--probability", formatProb(s.Prob))
		}
		a = append(a, "-m", "time", "--datestop", datestop(expires))
		a = append(a, "-m", "comment", "--comment", CommentPrefix+id)
		if s.Kind == KindDrop {
			a = append(a, "-j", "DROP")
		} else {
			with := "tcp-reset"
			if s.Proto != "tcp" {
				with = "icmp-port-unreachable"
				if v6 {
					with = "icmp6-port-unreachable"
				}
			}
			a = append(a, "-j", "REJECT", "--reject-with", with)
		}
		return ruleSpec{V6: v6, Chain: chain, Args: a}
	}
	var out []ruleSpec
	if s.Dir == DirOut || s.Dir == DirBoth || s.Dir == "" {
		out = append(out, one(ChainOut))
	}
	if s.Dir == DirIn || s.Dir == DirBoth {
		out = append(out, one(ChainIn))
	}
	return out, nil
}

// ruleID returns the fault ID from a rule's nfslab:<id> comment, or "".
func ruleID(r ownchain.Rule) string {
	if strings.HasPrefix(r.Comment, CommentPrefix) {
		return strings.TrimPrefix(r.Comment, CommentPrefix)
	}
	return ""
}

// specFromRules rebuilds what can be known of a fault's Spec from its
// rules alone (the kernel copy); the state file adds label and lifetime.
func specFromRules(rules []ownchain.Rule, netns string) (Spec, time.Time) {
	var s Spec
	var expires time.Time
	var zone string
	out, in := false, false
	for _, r := range rules {
		if r.Chain == ChainIn {
			in = true
		} else {
			out = true
		}
		switch r.Target() {
		case "DROP":
			s.Kind = KindDrop
		case "REJECT":
			s.Kind = KindReject
		}
		s.Proto = r.Opt["-p"]
		if v, ok := r.Opt["--ctorigdst"]; ok {
			s.MatchOriginal = true
			s.Dst = v
			s.Port, _ = strconv.Atoi(r.Opt["--ctorigdstport"])
		} else if r.Chain == ChainIn {
			s.Dst = r.Opt["-s"]
			s.Port, _ = strconv.Atoi(r.Opt["--sport"])
			s.LocalPort, _ = strconv.Atoi(r.Opt["--dport"])
		} else {
			s.Dst = r.Opt["-d"]
			s.Port, _ = strconv.Atoi(r.Opt["--dport"])
			s.LocalPort, _ = strconv.Atoi(r.Opt["--sport"])
		}
		if r.Chain == ChainIn {
			zone = cmp.Or(r.Opt["-i"], zone)
		} else {
			zone = cmp.Or(r.Opt["-o"], zone)
		}
		if v, ok := r.Opt["--probability"]; ok {
			if p, err := strconv.ParseFloat(v, 64); err == nil {
				// The kernel keeps 32 bits: 0.8 reads back as 0.79999999981.
				s.Prob, _ = strconv.ParseFloat(strconv.FormatFloat(p, 'f', 6, 64), 64)
			}
		}
		if v, ok := r.Opt["--datestop"]; ok {
			if t, err := time.ParseInLocation(timeLayout, v, time.UTC); err == nil {
				expires = t.Add(time.Second)
			}
		}
	}
	switch {
	case out && in:
		s.Dir = DirBoth
	case in:
		s.Dir = DirIn
	default:
		s.Dir = DirOut
	}
	if p, err := (Spec{Dst: s.Dst}).Prefix(); err == nil {
		if p.IsSingleIP() {
			s.Dst = p.Addr().WithZone(zone).String()
		} else {
			s.Dst = p.String()
		}
	}
	s.Netns = netns
	return s, expires
}
