//go:build linux

package netfault

import (
	"github.com/vishvananda/netlink"
)

// Constructors of the netlink objects of shaping faults; vishvananda/netlink
// defines them for Linux only.

// shapeClass is the htb class of a fault (rates in bits per second).
func shapeClass(ifindex, minor int, s Spec) *netlink.HtbClass {
	rate := uint64(delayClassRate)
	var burst uint32
	if s.Kind == KindLimit {
		rate = uint64(s.Rate)
		burst = uint32(s.Burst)
	}
	c := netlink.NewHtbClass(netlink.ClassAttrs{
		LinkIndex: ifindex,
		Parent:    netlink.MakeHandle(ShapeMajor, 0),
		Handle:    classID(minor),
	}, netlink.HtbClassAttrs{Rate: rate, Ceil: rate, Buffer: burst, Cbuffer: burst, Quantum: htbQuantum})
	return c
}

func shapeLeaf(ifindex, minor int, s Spec) *netlink.Netem {
	return netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: ifindex, Handle: leafHandle(minor), Parent: classID(minor)}, netemAttrs(s))
}

// ingressSel selects packets from the fault's destination (its source
// address, protocol and source port) in the network header, as
// `tc filter ... u32 match ip src DST match ip protocol 6 0xff match ip
// sport PORT 0xffff` would (the port offset assumes no IP options or IPv6
// extension headers, as tc's does).
func ingressSel(s Spec) (*netlink.TcU32Sel, uint16, error) {
	pfx, err := s.Prefix()
	if err != nil {
		return nil, 0, err
	}
	proto := uint32(6)
	if s.Proto == "udp" {
		proto = 17
	}
	sel := &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL}
	addr := pfx.Addr().AsSlice()
	if pfx.Addr().Is4() {
		sel.Keys = append(sel.Keys, netlink.TcU32Key{Off: 8, Mask: 0x00ff0000, Val: proto << 16})
		if k, ok := addrKey(addr, pfx.Bits(), 0, 12); ok {
			sel.Keys = append(sel.Keys, k)
		}
		if s.Port != 0 {
			sel.Keys = append(sel.Keys, netlink.TcU32Key{Off: 20, Mask: 0xffff0000, Val: uint32(s.Port) << 16})
		}
		return sel, ethPIP, nil
	}
	sel.Keys = append(sel.Keys, netlink.TcU32Key{Off: 4, Mask: 0x0000ff00, Val: proto << 8})
	for w := 0; w < 4; w++ {
		if k, ok := addrKey(addr, pfx.Bits(), w, 8); ok {
			sel.Keys = append(sel.Keys, k)
		}
	}
	if s.Port != 0 {
		sel.Keys = append(sel.Keys, netlink.TcU32Key{Off: 40, Mask: 0xffff0000, Val: uint32(s.Port) << 16})
	}
	return sel, ethPIPv6, nil
}

// addrKey is the u32 key of 32-bit word w of an address starting at off,
// masked to the prefix length; ok is false when the word is all wildcard.
func addrKey(addr []byte, bits, w int, off int32) (netlink.TcU32Key, bool) {
	ones := min(max(bits-32*w, 0), 32)
	if ones == 0 {
		return netlink.TcU32Key{}, false
	}
	mask := uint32(0xffffffff) << (32 - ones)
	val := uint32(addr[4*w])<<24 | uint32(addr[4*w+1])<<16 | uint32(addr[4*w+2])<<8 | uint32(addr[4*w+3])
	return netlink.TcU32Key{Off: off + int32(4*w), Mask: mask, Val: val & mask}, true
}

// ingressFilter redirects the fault's incoming traffic on ifindex to its
// ifb device.
func ingressFilter(ifindex, ifbIndex int, s Spec) (*netlink.U32, error) {
	sel, proto, err := ingressSel(s)
	if err != nil {
		return nil, err
	}
	return &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS, Priority: ShapeMajor, Protocol: proto},
		Sel:         sel,
		Actions:     []netlink.Action{netlink.NewMirredAction(ifbIndex)},
	}, nil
}

// mirredTarget returns the device index a filter redirects to, or 0.
func mirredTarget(f netlink.Filter) int {
	u, ok := f.(*netlink.U32)
	if !ok {
		return 0
	}
	for _, a := range u.Actions {
		if m, ok := a.(*netlink.MirredAction); ok {
			return m.Ifindex
		}
	}
	return 0
}
