package netfault

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netlinkConntrack reads conntrack through ctnetlink, one handle per
// namespace.
type netlinkConntrack struct{}

func (netlinkConntrack) Flows(ns string, v6 bool) ([]Flow, error) {
	var h *netlink.Handle
	var err error
	if ns == "" {
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	} else {
		var nh netns.NsHandle
		nh, err = netns.GetFromName(ns)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", ns, err)
		}
		defer nh.Close()
		h, err = netlink.NewHandleAt(nh, unix.NETLINK_NETFILTER)
	}
	if err != nil {
		return nil, fmt.Errorf("opening ctnetlink in %q: %w", ns, err)
	}
	defer h.Close()
	fam := netlink.InetFamily(unix.AF_INET)
	if v6 {
		fam = netlink.InetFamily(unix.AF_INET6)
	}
	var list []*netlink.ConntrackFlow
	for try := 0; try < 3; try++ {
		list, err = h.ConntrackTableList(netlink.ConntrackTable, fam)
		if err == nil || !dumpInterrupted(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing conntrack in %q: %w", ns, err)
	}
	out := make([]Flow, 0, len(list))
	for _, c := range list {
		var f Flow
		f.Proto = c.Forward.Protocol
		f.Orig.Src, f.Orig.Dst = addrPort(c.Forward.SrcIP, c.Forward.SrcPort), addrPort(c.Forward.DstIP, c.Forward.DstPort)
		f.Reply.Src, f.Reply.Dst = addrPort(c.Reverse.SrcIP, c.Reverse.SrcPort), addrPort(c.Reverse.DstIP, c.Reverse.DstPort)
		out = append(out, f)
	}
	return out, nil
}

func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port)
}
