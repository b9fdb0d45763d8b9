package netfault

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nfslab/nfslab/internal/ownchain"
)

// Shaping faults (delay, limit) are made of:
//
//   - out: nfslab's htb root qdisc (handle ShapeMajor:) on the device the
//     route to Dst leaves by, one htb class per fault (ShapeMajor:minor)
//     holding the shaping (a netem leaf qdisc, handle LeafMajorBase+minor:,
//     for delay; the class rate for limit), and one rule in nfslab's mangle
//     chain NFSLAB-SHAPE (jumped from POSTROUTING) that selects the traffic
//     like a drop rule and classifies it straight into the class with
//     `-j CLASSIFY --set-class ShapeMajor:minor` (htb takes skb->priority
//     as a class ID when its major is the qdisc's). The rule carries the
//     fault's nfslab:<id> comment and -m time --datestop: at the expiry the
//     kernel stops classifying and the traffic goes through htb's direct
//     queue unshaped, with no nfslab process running. No tc filter is
//     needed (this host's kernel has no cls_fw either).
//   - in: an ifb device named nfslab-<id> with the same htb root, class
//     ShapeMajor:1 (htb's default class there) and leaf, and on the
//     device's ingress a u32 filter of priority ShapeMajor matching the
//     traffic from Dst (src address, protocol, source port) that redirects
//     it to the ifb (mirred). Ingress runs before netfilter, so no mangle
//     rule can select it: the ingress half has no kernel expiry, and the
//     daemon's timer or the direct path's reaper heals it.
//
// Everything is found again by its reserved numbers: qdiscs and classes of
// major ShapeMajor, leaves of major LeafMajorBase+minor, ingress filters of
// priority ShapeMajor, ifb devices named nfslab-<8 hex digits>, rules in
// NFSLAB-SHAPE.
const (
	// ShapeMajor is the major number of nfslab's qdisc handles and class
	// IDs (0x7f73, "s" after nfslab's "N"ot quite random 0x7f), and the
	// priority of its ingress filters.
	ShapeMajor = 0x7f73
	// LeafMajorBase is added to a class's minor for the handle major of its
	// netem leaf: 0x7e01..0x7eff.
	LeafMajorBase = 0x7e00
	// MaxShapeMinor bounds the classes per device (leaf majors stay below
	// ShapeMajor).
	MaxShapeMinor = 0xff
	// ChainShape is nfslab's chain in the mangle table, jumped to from
	// position 1 of POSTROUTING (local and forwarded traffic alike).
	ChainShape = "NFSLAB-SHAPE"
	// TableMangle holds ChainShape.
	TableMangle = "mangle"
	// IfbPrefix starts the name of nfslab's ifb devices: nfslab-<id>.
	IfbPrefix = "nfslab-"

	// delayClassRate is the class rate of a delay fault: high enough never
	// to bound NFS traffic, so only netem shapes it.
	delayClassRate = 10_000_000_000 // bit/s
	// netemLimit is the netem queue in packets: 200 ms at 1 Gbit/s of
	// 1500-byte packets is ~17000; a lab link is slower.
	netemLimit = 20000
	htbQuantum = 60000

	ethPIP   = 0x0800 // ETH_P_IP
	ethPIPv6 = 0x86dd // ETH_P_IPV6
)

// DefaultRoots are the root qdiscs the kernel attaches by itself; nfslab
// replaces only these (and puts them back on heal). Anything else is the
// user's queueing set-up and makes Apply refuse.
var DefaultRoots = []string{"noqueue", "pfifo_fast", "fq_codel", "mq"}

func isDefaultRoot(kind string) bool {
	for _, k := range DefaultRoots {
		if k == kind {
			return true
		}
	}
	return false
}

// shapeRecord is what a shaping fault's state record adds: where its class
// is and what nfslab's root qdisc replaced, so heal (also after a crash)
// can put that back.
type shapeRecord struct {
	Dev     string `json:"dev,omitempty"`
	Ifindex int    `json:"ifindex,omitempty"`
	Minor   int    `json:"minor,omitempty"`
	// Replaced is the kind of the root qdisc nfslab's htb replaced on Dev
	// ("noqueue", "pfifo_fast", ...); "" when the root was already
	// nfslab's.
	Replaced string `json:"replaced,omitempty"`
	// Ifb is the ifb device of the ingress half; CreatedIngress says
	// whether nfslab added the ingress qdisc of Dev (else it only adds a
	// filter to the user's).
	Ifb            string `json:"ifb,omitempty"`
	CreatedIngress bool   `json:"created_ingress,omitempty"`
}

func shapeChain() ownchain.Chain {
	return ownchain.Chain{Table: TableMangle, Name: ChainShape, Builtin: "POSTROUTING", Comment: JumpComment}
}

func classID(minor int) uint32 { return netlink.MakeHandle(ShapeMajor, uint16(minor)) }

func leafHandle(minor int) uint32 { return netlink.MakeHandle(uint16(LeafMajorBase+minor), 0) }

// classArg writes a class ID the way iptables -S prints --set-class.
func classArg(minor int) string { return fmt.Sprintf("%x:%x", ShapeMajor, minor) }

// ifbName is the ifb device of fault id's ingress half (15 characters,
// IFNAMSIZ-1).
func ifbName(id string) string { return IfbPrefix + id }

// ifbID returns the fault ID of an ifb device nfslab made, or "".
func ifbID(name string) string {
	id, ok := strings.CutPrefix(name, IfbPrefix)
	if !ok || !isFaultID(id) {
		return ""
	}
	return id
}

// renderShapeRule returns the mangle rule that classifies the fault's
// outgoing traffic into class minor: the selectors of a drop rule, the
// lifetime, the tag, and CLASSIFY.
func renderShapeRule(id string, s Spec, minor int, expires time.Time) (ruleSpec, error) {
	pfx, err := s.Prefix()
	if err != nil {
		return ruleSpec{}, err
	}
	a := []string{"-d", addrArg(pfx)}
	if z := s.Zone(); z != "" {
		a = append(a, "-o", z)
	}
	a = append(a, "-p", s.Proto)
	if s.Port != 0 {
		a = append(a, "-m", s.Proto, "--dport", strconv.Itoa(s.Port))
	}
	a = append(a, "-m", "time", "--datestop", datestop(expires))
	a = append(a, "-m", "comment", "--comment", CommentPrefix+id)
	mn := "<n>"
	if minor > 0 {
		mn = strconv.FormatInt(int64(minor), 16)
	}
	a = append(a, "-j", "CLASSIFY", "--set-class", fmt.Sprintf("%x:%s", ShapeMajor, mn))
	return ruleSpec{V6: pfx.Addr().Is6(), Chain: ChainShape, Args: a}, nil
}

// shapeMinorOf returns the class minor a CLASSIFY rule of nfslab's sets.
func shapeMinorOf(args map[string]string) int {
	v, ok := args["--set-class"]
	if !ok {
		return 0
	}
	maj, mn, ok := strings.Cut(v, ":")
	if !ok {
		return 0
	}
	if x, err := strconv.ParseUint(maj, 16, 16); err != nil || x != ShapeMajor {
		return 0
	}
	n, err := strconv.ParseUint(mn, 16, 16)
	if err != nil || n == 0 || n > MaxShapeMinor {
		return 0
	}
	return int(n)
}

// netemAttrs is the netem configuration of a delay fault.
func netemAttrs(s Spec) netlink.NetemQdiscAttrs {
	return netlink.NetemQdiscAttrs{
		Latency:     uint32(s.Delay / time.Microsecond),
		Jitter:      uint32(s.Jitter / time.Microsecond),
		DelayCorr:   float32(s.Correlation),
		Limit:       netemLimit,
		Loss:        float32(s.Loss),
		Duplicate:   float32(s.Duplicate),
		CorruptProb: float32(s.Corrupt),
		ReorderProb: float32(s.Reorder),
	}
}

// shapeRoot is nfslab's htb root on a device; defcls is the class of
// unclassified traffic (0: htb's direct queue, unshaped).
func shapeRoot(ifindex int, defcls uint32) *netlink.Htb {
	q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(ShapeMajor, 0), Parent: netlink.HANDLE_ROOT})
	q.Defcls = defcls
	qlen := uint32(1000)
	q.DirectQlen = &qlen
	return q
}

// u32Percent reads netem's probability (a fraction of 2^32-1) back as a
// percentage, rounded to what a user gives (three decimals).
func u32Percent(v uint32) float64 {
	p := float64(v) / float64(^uint32(0)) * 100
	return math.Round(p*1000) / 1000
}

// ---- commands a user would type for the same objects (Plan, Fault.Rules) ----

func tcPrefix(netns string) string {
	if netns != "" {
		return "tc -n " + netns
	}
	return "tc"
}

func fmtDur(d time.Duration) string {
	if d%time.Millisecond == 0 {
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
}

func fmtPct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

// netemArgs writes a delay fault's netem options as tc does.
func netemArgs(s Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "netem limit %d", netemLimit)
	if s.Delay != 0 || s.Jitter != 0 {
		fmt.Fprintf(&b, " delay %s", fmtDur(s.Delay))
		if s.Jitter != 0 {
			fmt.Fprintf(&b, " %s", fmtDur(s.Jitter))
			if s.Correlation != 0 {
				fmt.Fprintf(&b, " %s", fmtPct(s.Correlation))
			}
		}
	}
	for _, o := range []struct {
		n string
		v float64
	}{{"loss", s.Loss}, {"duplicate", s.Duplicate}, {"corrupt", s.Corrupt}, {"reorder", s.Reorder}} {
		if o.v != 0 {
			fmt.Fprintf(&b, " %s %s", o.n, fmtPct(o.v))
		}
	}
	return b.String()
}

func classArgs(s Spec) string {
	if s.Kind == KindLimit {
		a := fmt.Sprintf("htb rate %s ceil %s", s.Rate, s.Rate)
		if s.Burst != 0 {
			a += fmt.Sprintf(" burst %s cburst %s", s.Burst, s.Burst)
		}
		return a + fmt.Sprintf(" quantum %d", htbQuantum)
	}
	return fmt.Sprintf("htb rate %s ceil %s quantum %d", Rate(delayClassRate), Rate(delayClassRate), htbQuantum)
}

// shapeCommands writes what makes a shaping fault as tc, ip and iptables
// commands. minor 0 and id PlanID write placeholders; root says whether
// nfslab's root qdisc is added (replacing a default one); ingress whether
// the ingress qdisc is added.
func shapeCommands(netns, iptCmd, id string, s Spec, dev string, minor int, root, ingress bool, expires time.Time) ([]string, error) {
	var out []string
	tc := tcPrefix(netns)
	mn := "<n>"
	if minor > 0 {
		mn = strconv.FormatInt(int64(minor), 16)
	}
	if s.Dir == DirOut || s.Dir == DirBoth {
		if root {
			out = append(out, fmt.Sprintf("%s qdisc replace dev %s root handle %x: htb default 0 direct_qlen 1000", tc, dev, ShapeMajor))
		}
		out = append(out, fmt.Sprintf("%s class add dev %s parent %x: classid %x:%s %s", tc, dev, ShapeMajor, ShapeMajor, mn, classArgs(s)))
		if s.Kind == KindDelay {
			leaf := "<7e00+n>"
			if minor > 0 {
				leaf = fmt.Sprintf("%x", LeafMajorBase+minor)
			}
			out = append(out, fmt.Sprintf("%s qdisc add dev %s parent %x:%s handle %s: %s", tc, dev, ShapeMajor, mn, leaf, netemArgs(s)))
		}
		r, err := renderShapeRule(id, s, minor, expires)
		if err != nil {
			return nil, err
		}
		out = append(out, ownchain.Command(netns, iptCmd, append([]string{"-t", TableMangle, "-A", r.Chain}, r.Args...)))
	}
	if s.Dir == DirIn || s.Dir == DirBoth {
		ifb := ifbName(id)
		ip := "ip"
		if netns != "" {
			ip += " -n " + netns
		}
		out = append(out,
			fmt.Sprintf("%s link add %s type ifb && %s link set %s up", ip, ifb, ip, ifb),
			fmt.Sprintf("%s qdisc add dev %s root handle %x: htb default 1 direct_qlen 1000", tc, ifb, ShapeMajor),
			fmt.Sprintf("%s class add dev %s parent %x: classid %x:1 %s", tc, ifb, ShapeMajor, ShapeMajor, classArgs(s)))
		if s.Kind == KindDelay {
			out = append(out, fmt.Sprintf("%s qdisc add dev %s parent %x:1 handle %x: %s", tc, ifb, ShapeMajor, LeafMajorBase+1, netemArgs(s)))
		}
		if ingress {
			out = append(out, fmt.Sprintf("%s qdisc add dev %s ingress", tc, dev))
		}
		pfx, err := s.Prefix()
		if err != nil {
			return nil, err
		}
		fam, l3 := "ip", "ip"
		if pfx.Addr().Is6() {
			fam, l3 = "ipv6", "ip6"
		}
		m := fmt.Sprintf("match %s src %s match %s protocol %d 0xff", l3, pfx, l3, protoNum(s.Proto))
		if s.Port != 0 {
			m += fmt.Sprintf(" match %s sport %d 0xffff", l3, s.Port)
		}
		out = append(out, fmt.Sprintf("%s filter add dev %s ingress protocol %s prio %d u32 %s action mirred egress redirect dev %s", tc, dev, fam, ShapeMajor, m, ifb))
	}
	return out, nil
}

func protoNum(p string) int {
	if p == "udp" {
		return 17
	}
	return 6
}

// routeDev returns the device index the route to dst leaves by, or the
// zone's device.
func routeDev(h ShapeHandle, s Spec) (netlink.Link, error) {
	if z := s.Zone(); z != "" {
		l, err := h.LinkByName(z)
		if err != nil {
			return nil, fmt.Errorf("finding interface %s: %w", z, err)
		}
		return l, nil
	}
	pfx, err := s.Prefix()
	if err != nil {
		return nil, err
	}
	rs, err := h.RouteGet(net.IP(pfx.Addr().AsSlice()))
	if err != nil {
		return nil, fmt.Errorf("finding the route to %s: %w", pfx.Addr(), err)
	}
	for _, r := range rs {
		if r.LinkIndex > 0 {
			l, err := h.LinkByIndex(r.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("finding device %d of the route to %s: %w", r.LinkIndex, pfx.Addr(), err)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("the route to %s leaves by no device (a local or unreachable route): nothing to shape", pfx.Addr())
}

// rootQdisc returns the device's root qdisc, nil when the dump shows none.
func rootQdisc(qs []netlink.Qdisc) netlink.Qdisc {
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_ROOT {
			return q
		}
	}
	return nil
}

func ingressQdisc(qs []netlink.Qdisc) netlink.Qdisc {
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_INGRESS {
			return q
		}
	}
	return nil
}

// ours reports whether q is nfslab's htb root.
func ours(q netlink.Qdisc) bool {
	if q == nil {
		return false
	}
	maj, _ := netlink.MajorMinor(q.Attrs().Handle)
	return maj == ShapeMajor && q.Type() == "htb"
}

func handleStr(h uint32) string {
	maj, mn := netlink.MajorMinor(h)
	if mn == 0 {
		return fmt.Sprintf("%x:", maj)
	}
	return fmt.Sprintf("%x:%x", maj, mn)
}

// specFromShape rebuilds a shaping fault's Spec from its kernel objects:
// the mangle rule (selectors, expiry) and the class and leaf (shaping).
func specFromShape(e *entry, netns string) (Spec, time.Time) {
	var s Spec
	var expires time.Time
	if len(e.rules) > 0 {
		var parsed []ownchain.Rule
		for _, l := range e.rules {
			parsed = append(parsed, l.rule)
		}
		s, expires = specFromRules(parsed, netns)
	}
	s.Kind = KindLimit
	for _, o := range e.shapes {
		if n, ok := o.leaf.(*netlink.Netem); ok {
			s.Kind = KindDelay
			s.Delay = ticksToDuration(n.Latency)
			s.Jitter = ticksToDuration(n.Jitter)
			s.Correlation = u32Percent(n.DelayCorr)
			s.Loss = u32Percent(n.Loss)
			s.Duplicate = u32Percent(n.Duplicate)
			s.Corrupt = u32Percent(n.CorruptProb)
			s.Reorder = u32Percent(n.ReorderProb)
		} else if o.class != nil {
			if c, ok := o.class.(*netlink.HtbClass); ok {
				s.Rate = Rate(c.Rate * 8)
			}
		}
		if o.ifb != nil {
			if s.Dir == DirOut && len(e.rules) > 0 {
				s.Dir = DirBoth
			} else if len(e.rules) == 0 {
				s.Dir = DirIn
			}
		}
	}
	if s.Kind == KindDelay {
		s.Rate = 0
	}
	s.Netns = netns
	return s, expires
}
