package netfault

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Kernel route types and constants (linux/rtnetlink.h), kept here so the
// package builds everywhere.
const (
	rtnUnreachable = 7
	rtnBlackhole   = 6
	rtnProhibit    = 8
	rtTableMain    = 254
	familyV4       = 2  // AF_INET
	familyV6       = 10 // AF_INET6
	familyAll      = 0
)

func routeTypeNum(t RouteType) int {
	switch t {
	case RouteBlackhole:
		return rtnBlackhole
	case RouteProhibit:
		return rtnProhibit
	default:
		return rtnUnreachable
	}
}

func routeTypeName(n int) RouteType {
	switch n {
	case rtnBlackhole:
		return RouteBlackhole
	case rtnProhibit:
		return RouteProhibit
	case rtnUnreachable:
		return RouteUnreachable
	}
	return RouteType(fmt.Sprintf("type-%d", n))
}

// routeFor builds the route of an unreachable fault, tagged with the
// fault's 32-bit ID so that each fault is told apart from any other on the
// same prefix. IPv4 routes carry it in their realm (RTA_FLOW). IPv6 routes
// cannot (the kernel ignores RTA_FLOW there), so they carry it in the
// RTAX_WINDOW metric: a TCP window clamp, which the kernel keeps and dumps
// with the route but never consults on a reject route (connect fails before
// any window is chosen). Neither is part of the route's key, so the kernel
// still holds one route per prefix.
//
// Equivalent to: `ip route add unreachable 10.0.0.5/32 proto 73 realm ID`
// (IPv6: `ip -6 route add unreachable fd00::5/128 proto 73 window ID`).
func routeFor(id string, s Spec) (*netlink.Route, error) {
	p, err := s.Prefix()
	if err != nil {
		return nil, err
	}
	var tag uint32 // a plan's route carries no tag yet
	if id != PlanID {
		if _, err := fmt.Sscanf(id, "%08x", &tag); err != nil || !isFaultID(id) {
			return nil, fmt.Errorf("fault id %q is not 8 hex digits", id)
		}
	}
	r := &netlink.Route{
		Dst:      &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Type:     routeTypeNum(s.RouteType),
		Protocol: netlink.RouteProtocol(RouteProtocol),
		Table:    rtTableMain,
		Family:   familyV4,
	}
	if p.Addr().Is6() {
		r.Family = familyV6
		r.Window = int(tag)
	} else {
		r.Realm = int(tag)
	}
	return r, nil
}

// routePrefix returns the route's destination as a prefix.
func routePrefix(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// routeIDOf returns the fault ID a route of nfslab's protocol belongs to.
func routeIDOf(r netlink.Route) string {
	p, ok := routePrefix(r)
	if !ok {
		return ""
	}
	if p.Addr().Is4() && r.Realm != 0 {
		return fmt.Sprintf("%08x", uint32(r.Realm))
	}
	if p.Addr().Is6() && r.Window != 0 {
		return fmt.Sprintf("%08x", uint32(r.Window))
	}
	return ""
}

// routeCommand renders the route of fault id as the ip command a user would
// type; a plan's route (id PlanID) shows the placeholder as its realm.
func routeCommand(netns, id string, r *netlink.Route) string {
	p, _ := routePrefix(*r)
	cmd := "ip"
	if netns != "" {
		cmd += " -n " + netns
	}
	if p.Addr().Is6() {
		cmd += " -6"
	}
	s := fmt.Sprintf("%s route add %s %s proto %d", cmd, routeTypeName(r.Type), p, RouteProtocol)
	switch {
	case id == PlanID && p.Addr().Is4():
		s += " realm " + PlanID
	case id == PlanID:
		s += " window " + PlanID
	case r.Realm != 0:
		s += fmt.Sprintf(" realm 0x%08x", uint32(r.Realm))
	}
	if r.Window != 0 {
		s += fmt.Sprintf(" window 0x%08x", uint32(r.Window))
	}
	return s
}

func specFromRoute(r netlink.Route, netns string) Spec {
	p, _ := routePrefix(r)
	dst := p.String()
	if p.IsSingleIP() {
		dst = p.Addr().String()
	}
	return Spec{Kind: KindUnreachable, Dst: dst, RouteType: routeTypeName(r.Type), Netns: netns}
}
