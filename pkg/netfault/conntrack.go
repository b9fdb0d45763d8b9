package netfault

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Flow is one connection tracking entry: the tuple of the original
// direction as the sender wrote it and the tuple of the reply direction as
// the answering side sent it. When Reply.Src differs from Orig.Dst the
// destination was rewritten (DNAT, REDIRECT), whoever wrote the rule:
// iptables, nft, netavark, docker or kube-proxy.
type Flow struct {
	Proto       uint8 // IPPROTO_TCP, IPPROTO_UDP, ...
	Orig, Reply struct{ Src, Dst netip.AddrPort }
}

// Conntrack reads the connection tracking table of a network namespace.
type Conntrack interface {
	// Flows lists the tracked connections of one family in netns ("" =
	// the caller's own).
	//
	// Equivalent to: `ip netns exec NETNS conntrack -L -f ipv4` (ipv6).
	Flows(netns string, v6 bool) ([]Flow, error)
}

// ctTranslation is one rewrite conntrack shows for the fault's traffic.
type ctTranslation struct {
	orig, answered netip.AddrPort
	srcNAT         netip.Addr // the source the answer went to, when rewritten too
	example        Flow
	count          int
}

// translations groups the flows to pfx (port 0 = any) over proto whose
// answer came from another address or port than the one dialled.
func translations(flows []Flow, pfx netip.Prefix, port int, proto string) []ctTranslation {
	num := uint8(protoNumbers[proto])
	by := map[[2]netip.AddrPort]*ctTranslation{}
	var order [][2]netip.AddrPort
	for _, f := range flows {
		if f.Proto != num || !pfx.Contains(f.Orig.Dst.Addr()) || (port != 0 && int(f.Orig.Dst.Port()) != port) {
			continue
		}
		if f.Reply.Src == f.Orig.Dst {
			continue
		}
		k := [2]netip.AddrPort{f.Orig.Dst, f.Reply.Src}
		t := by[k]
		if t == nil {
			t = &ctTranslation{orig: f.Orig.Dst, answered: f.Reply.Src, example: f}
			by[k] = t
			order = append(order, k)
		}
		t.count++
		if f.Reply.Dst.Addr() != f.Orig.Src.Addr() {
			t.srcNAT = f.Reply.Dst.Addr()
		}
	}
	out := make([]ctTranslation, 0, len(order))
	for _, k := range order {
		out = append(out, *by[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].count > out[j].count })
	return out
}

// conntrackFindings reports what the kernel's connection tracking saw
// become of connections to the fault's destination.
func conntrackFindings(ts []ctTranslation, netns, proto string) []Finding {
	const most = 3
	var out []Finding
	for i, t := range ts {
		if i == most {
			break
		}
		var b strings.Builder
		fmt.Fprintf(&b, "conntrack in %s shows %d %s connection(s) to %s answered by %s (e.g. %s -> %s, reply from %s to %s)",
			nsLabel(netns), t.count, proto, t.orig, t.answered,
			t.example.Orig.Src, t.example.Orig.Dst, t.example.Reply.Src, t.example.Reply.Dst)
		b.WriteString(": the kernel rewrites the destination (DNAT/REDIRECT) before filter OUTPUT sees the packet, whichever tool wrote the NAT")
		if t.srcNAT.IsValid() {
			fmt.Fprintf(&b, "; the source is rewritten too, to %s (masquerade/SNAT)", t.srcNAT)
		}
		out = append(out, Finding{Cause: CauseNATBeforeFilter, Detail: b.String(),
			Fix: fmt.Sprintf("re-apply with --match-original (matches conntrack's original destination %s), or aim the fault at %s", t.orig, t.answered)})
	}
	return out
}
