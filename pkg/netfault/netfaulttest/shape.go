package netfaulttest

import (
	"fmt"
	"net"
	"sort"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Shape is a fake netlink handle for one namespace's devices, qdiscs,
// classes and filters (netfault.ShapeHandle). It fails like the kernel:
// EEXIST for a handle or device that exists, ENOENT for a missing qdisc,
// class or filter and for a qdisc kind the kernel lacks (netem here, as on
// the host: "Specified qdisc kind is unknown"), ENODEV for a missing
// device.
type Shape struct {
	mu    sync.Mutex
	links []*fakeLink
	next  int
	fh    uint32
	// Unknown lists qdisc kinds the fake kernel lacks; NewShape puts netem
	// (and prio, tbf's absence does not matter to nfslab) there, like the
	// host's kernel. Delete netem from it to model the lab VM's.
	Unknown map[string]bool
	// RouteDev is the device every route leaves by (default "eth0").
	RouteDev string
	// Calls counts calls by method name.
	Calls map[string]int
}

type fakeLink struct {
	attrs   netlink.LinkAttrs
	typ     string
	deflt   string // the kind of the default root qdisc
	root    netlink.Qdisc
	ingress netlink.Qdisc
	leaves  []netlink.Qdisc
	classes []*netlink.HtbClass
	filters []netlink.Filter
}

// NewShape returns a namespace with lo (noqueue) and eth0 (fq_codel).
func NewShape() *Shape {
	s := &Shape{next: 1, fh: 0x800, Unknown: map[string]bool{"netem": true, "prio": true}, RouteDev: "eth0", Calls: map[string]int{}}
	s.AddLink("lo", "noqueue")
	s.AddLink("eth0", "fq_codel")
	return s
}

// AddLink adds a device whose default root qdisc is of kind deflt.
func (s *Shape) AddLink(name, deflt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &fakeLink{attrs: netlink.LinkAttrs{Name: name, Index: s.next}, typ: "device", deflt: deflt}
	s.next++
	l.root = s.defaultRoot(l)
	s.links = append(s.links, l)
	return l.attrs.Index
}

// SetRoot puts a user's root qdisc of kind on name (e.g. "tbf", handle 1:).
func (s *Shape) SetRoot(name, kind string, handle uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byName(name)
	l.root = &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.attrs.Index, Handle: handle, Parent: netlink.HANDLE_ROOT}, QdiscType: kind}
	l.classes, l.leaves = nil, nil
}

// Root returns the kind and handle of name's root qdisc.
func (s *Shape) Root(name string) (string, uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byName(name)
	return l.root.Type(), l.root.Attrs().Handle
}

// Dump describes every device's qdiscs, classes and filters, one line
// each, for assertions.
func (s *Shape) Dump() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.links {
		out = append(out, fmt.Sprintf("%s %s root %s %x", l.attrs.Name, l.typ, l.root.Type(), l.root.Attrs().Handle))
		if l.ingress != nil {
			out = append(out, l.attrs.Name+" ingress")
		}
		for _, q := range l.leaves {
			out = append(out, fmt.Sprintf("%s leaf %s %x parent %x", l.attrs.Name, q.Type(), q.Attrs().Handle, q.Attrs().Parent))
		}
		for _, c := range l.classes {
			out = append(out, fmt.Sprintf("%s class %x rate %d", l.attrs.Name, c.Handle, c.Rate))
		}
		for _, f := range l.filters {
			out = append(out, fmt.Sprintf("%s filter prio %x handle %x", l.attrs.Name, f.Attrs().Priority, f.Attrs().Handle))
		}
	}
	return out
}

// SetClassPackets sets the counters of class handle on name.
func (s *Shape) SetClassPackets(name string, handle uint32, packets uint32, bytes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.byName(name).classes {
		if c.Handle == handle {
			c.Statistics = &netlink.ClassStatistics{Basic: &netlink.GnetStatsBasic{Packets: packets, Bytes: bytes}}
		}
	}
}

func (s *Shape) defaultRoot(l *fakeLink) netlink.Qdisc {
	return &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.attrs.Index, Parent: netlink.HANDLE_ROOT}, QdiscType: l.deflt}
}

func (s *Shape) byName(name string) *fakeLink {
	for _, l := range s.links {
		if l.attrs.Name == name {
			return l
		}
	}
	return nil
}

func (s *Shape) byIndex(i int) *fakeLink {
	for _, l := range s.links {
		if l.attrs.Index == i {
			return l
		}
	}
	return nil
}

func (s *Shape) call(op string) { s.Calls[op]++ }

func (s *Shape) link(l *fakeLink) netlink.Link {
	if l.typ == "ifb" {
		return &netlink.Ifb{LinkAttrs: l.attrs}
	}
	return &netlink.Device{LinkAttrs: l.attrs}
}

func (s *Shape) RouteGet(dst net.IP) ([]netlink.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("RouteGet")
	l := s.byName(s.RouteDev)
	if l == nil {
		return nil, syscall.ENETUNREACH
	}
	return []netlink.Route{{Dst: &net.IPNet{IP: dst}, LinkIndex: l.attrs.Index}}, nil
}

func (s *Shape) LinkByIndex(i int) (netlink.Link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.byIndex(i); l != nil {
		return s.link(l), nil
	}
	return nil, syscall.ENODEV
}

func (s *Shape) LinkByName(name string) (netlink.Link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.byName(name); l != nil {
		return s.link(l), nil
	}
	return nil, syscall.ENODEV
}

func (s *Shape) LinkList() ([]netlink.Link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netlink.Link
	for _, l := range s.links {
		out = append(out, s.link(l))
	}
	return out, nil
}

func (s *Shape) LinkAdd(link netlink.Link) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("LinkAdd")
	if s.byName(link.Attrs().Name) != nil {
		return syscall.EEXIST
	}
	l := &fakeLink{attrs: *link.Attrs(), typ: link.Type(), deflt: "pfifo_fast"}
	l.attrs.Index = s.next
	s.next++
	l.root = s.defaultRoot(l)
	s.links = append(s.links, l)
	return nil
}

func (s *Shape) LinkDel(link netlink.Link) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("LinkDel")
	for i, l := range s.links {
		if l.attrs.Name == link.Attrs().Name || (link.Attrs().Index != 0 && l.attrs.Index == link.Attrs().Index) {
			s.links = append(s.links[:i], s.links[i+1:]...)
			// Filters elsewhere redirecting here stay, as in the kernel.
			return nil
		}
	}
	return syscall.ENODEV
}

func (s *Shape) LinkSetUp(link netlink.Link) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName(link.Attrs().Name) == nil {
		return syscall.ENODEV
	}
	return nil
}

func (s *Shape) QdiscList(link netlink.Link) ([]netlink.Qdisc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byIndex(link.Attrs().Index)
	if l == nil {
		return nil, syscall.ENODEV
	}
	out := []netlink.Qdisc{l.root}
	if l.ingress != nil {
		out = append(out, l.ingress)
	}
	return append(out, l.leaves...), nil
}

func isDefault(q netlink.Qdisc) bool { return q.Attrs().Handle == 0 }

func (s *Shape) add(q netlink.Qdisc, replace bool) error {
	a := q.Attrs()
	l := s.byIndex(a.LinkIndex)
	if l == nil {
		return syscall.ENODEV
	}
	if s.Unknown[q.Type()] {
		return syscall.ENOENT // "Error: Specified qdisc kind is unknown."
	}
	switch a.Parent {
	case netlink.HANDLE_ROOT:
		if !replace && !isDefault(l.root) {
			return syscall.EEXIST
		}
		l.root, l.classes, l.leaves = q, nil, nil
		return nil
	case netlink.HANDLE_INGRESS:
		if l.ingress != nil {
			return syscall.EEXIST
		}
		l.ingress = q
		return nil
	}
	for _, x := range l.leaves {
		if x.Attrs().Handle == a.Handle || x.Attrs().Parent == a.Parent {
			return syscall.EEXIST
		}
	}
	for _, c := range l.classes {
		if c.Handle == a.Parent {
			l.leaves = append(l.leaves, q)
			return nil
		}
	}
	return syscall.ENOENT
}

func (s *Shape) QdiscAdd(q netlink.Qdisc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("QdiscAdd")
	return s.add(q, false)
}

func (s *Shape) QdiscReplace(q netlink.Qdisc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("QdiscReplace")
	return s.add(q, true)
}

func (s *Shape) QdiscDel(q netlink.Qdisc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("QdiscDel")
	a := q.Attrs()
	l := s.byIndex(a.LinkIndex)
	if l == nil {
		return syscall.ENODEV
	}
	switch a.Parent {
	case netlink.HANDLE_ROOT:
		if isDefault(l.root) || (a.Handle != 0 && l.root.Attrs().Handle != a.Handle) {
			return syscall.ENOENT
		}
		l.root, l.classes, l.leaves = s.defaultRoot(l), nil, nil
		return nil
	case netlink.HANDLE_INGRESS:
		if l.ingress == nil {
			return syscall.EINVAL // the kernel's answer for a missing ingress
		}
		l.ingress, l.filters = nil, nil
		return nil
	}
	for i, x := range l.leaves {
		if x.Attrs().Handle == a.Handle {
			l.leaves = append(l.leaves[:i], l.leaves[i+1:]...)
			return nil
		}
	}
	return syscall.ENOENT
}

func (s *Shape) ClassList(link netlink.Link, _ uint32) ([]netlink.Class, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byIndex(link.Attrs().Index)
	if l == nil {
		return nil, syscall.ENODEV
	}
	var out []netlink.Class
	for _, c := range l.classes {
		cc := *c
		out = append(out, &cc)
	}
	return out, nil
}

func (s *Shape) ClassAdd(c netlink.Class) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("ClassAdd")
	a := c.Attrs()
	l := s.byIndex(a.LinkIndex)
	if l == nil {
		return syscall.ENODEV
	}
	if l.root.Attrs().Handle != a.Parent || l.root.Type() != "htb" {
		return syscall.ENOENT
	}
	for _, x := range l.classes {
		if x.Handle == a.Handle {
			return syscall.EEXIST
		}
	}
	h, ok := c.(*netlink.HtbClass)
	if !ok {
		return syscall.EINVAL
	}
	cc := *h
	l.classes = append(l.classes, &cc)
	sort.Slice(l.classes, func(i, j int) bool { return l.classes[i].Handle < l.classes[j].Handle })
	return nil
}

func (s *Shape) ClassDel(c netlink.Class) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("ClassDel")
	a := c.Attrs()
	l := s.byIndex(a.LinkIndex)
	if l == nil {
		return syscall.ENODEV
	}
	for i, x := range l.classes {
		if x.Handle == a.Handle {
			l.classes = append(l.classes[:i], l.classes[i+1:]...)
			for j, q := range l.leaves {
				if q.Attrs().Parent == a.Handle {
					l.leaves = append(l.leaves[:j], l.leaves[j+1:]...)
					break
				}
			}
			return nil
		}
	}
	return syscall.ENOENT
}

func (s *Shape) FilterList(link netlink.Link, _ uint32) ([]netlink.Filter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byIndex(link.Attrs().Index)
	if l == nil {
		return nil, syscall.ENODEV
	}
	if l.ingress == nil {
		return nil, syscall.EINVAL
	}
	return append([]netlink.Filter(nil), l.filters...), nil
}

func (s *Shape) FilterAdd(f netlink.Filter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("FilterAdd")
	l := s.byIndex(f.Attrs().LinkIndex)
	if l == nil {
		return syscall.ENODEV
	}
	if l.ingress == nil {
		return syscall.EINVAL
	}
	s.fh++
	u := *(f.(*netlink.U32))
	u.Handle = s.fh
	l.filters = append(l.filters, &u)
	return nil
}

func (s *Shape) FilterDel(f netlink.Filter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("FilterDel")
	l := s.byIndex(f.Attrs().LinkIndex)
	if l == nil {
		return syscall.ENODEV
	}
	for i, x := range l.filters {
		if x.Attrs().Handle == f.Attrs().Handle {
			l.filters = append(l.filters[:i], l.filters[i+1:]...)
			return nil
		}
	}
	return syscall.ENOENT
}

func (s *Shape) Close() {}
