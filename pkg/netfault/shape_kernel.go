package netfault

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nfslab/nfslab/internal/ownchain"
)

// ShapeHandle is the part of *netlink.Handle that shaping faults use: one
// handle acts in one network namespace.
type ShapeHandle interface {
	RouteGet(destination net.IP) ([]netlink.Route, error)
	LinkByIndex(index int) (netlink.Link, error)
	LinkByName(name string) (netlink.Link, error)
	LinkList() ([]netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	QdiscList(link netlink.Link) ([]netlink.Qdisc, error)
	QdiscAdd(qdisc netlink.Qdisc) error
	QdiscReplace(qdisc netlink.Qdisc) error
	QdiscDel(qdisc netlink.Qdisc) error
	ClassList(link netlink.Link, parent uint32) ([]netlink.Class, error)
	ClassAdd(class netlink.Class) error
	ClassDel(class netlink.Class) error
	FilterList(link netlink.Link, parent uint32) ([]netlink.Filter, error)
	FilterAdd(filter netlink.Filter) error
	FilterDel(filter netlink.Filter) error
	Close()
}

// ErrForeignQdisc is returned when a device's root qdisc is the user's own
// queueing set-up, which nfslab never replaces.
var ErrForeignQdisc = errors.New("the device has a queueing set-up nfslab did not make")

// shapeObj is a fault's class on one device, with its leaf; ifb is set when
// the device is the fault's ifb (its ingress half).
type shapeObj struct {
	link  netlink.Link
	class netlink.Class
	leaf  netlink.Qdisc
	ifb   netlink.Link
}

// ingressObj is one of nfslab's ingress filters.
type ingressObj struct {
	link   netlink.Link
	filter netlink.Filter
}

// devShape is what nfslab has on one device.
type devShape struct {
	link    netlink.Link
	root    netlink.Qdisc // nfslab's htb root, or nil
	ingress netlink.Qdisc // the device's ingress qdisc, or nil
}

// shapePlan is what Apply found before touching anything.
type shapePlan struct {
	link        netlink.Link
	rootKind    string // the root qdisc's kind now ("htb" when nfslab's)
	addRoot     bool
	minor       int
	addIngress  bool
	inheritRec  shapeRecord
	ingressKind string
}

// inspectShape looks at the egress device and decides, touching nothing,
// what Apply will add; it refuses a device whose root qdisc is the user's.
func (m *Manager) inspectShape(h ShapeHandle, spec Spec) (shapePlan, error) {
	var p shapePlan
	link, err := routeDev(h, spec)
	if err != nil {
		return p, err
	}
	p.link = link
	qs, err := h.QdiscList(link)
	if err != nil {
		return p, fmt.Errorf("listing qdiscs of %s: %w", link.Attrs().Name, err)
	}
	recs := m.readStates(spec.Netns)
	for _, r := range recs {
		if r.Spec.IsShape() && r.Shape != nil && r.Shape.Ifindex == link.Attrs().Index {
			if r.Shape.Replaced != "" {
				p.inheritRec.Replaced = r.Shape.Replaced
			}
			p.inheritRec.CreatedIngress = p.inheritRec.CreatedIngress || r.Shape.CreatedIngress
		}
	}
	if spec.Dir == DirOut || spec.Dir == DirBoth {
		root := rootQdisc(qs)
		switch {
		case ours(root):
			p.rootKind = "htb"
		case root == nil:
			p.rootKind, p.addRoot = "noqueue", true
		case isDefaultRoot(root.Type()):
			p.rootKind, p.addRoot = root.Type(), true
		default:
			return p, fmt.Errorf("device %s has root qdisc %s (handle %s): %w; nfslab replaces only a default root (%v): remove it (tc qdisc del dev %s root) or aim at another path",
				link.Attrs().Name, root.Type(), handleStr(root.Attrs().Handle), ErrForeignQdisc, DefaultRoots, link.Attrs().Name)
		}
		used := map[int]bool{}
		if !p.addRoot {
			cs, err := h.ClassList(link, 0)
			if err != nil {
				return p, fmt.Errorf("listing classes of %s: %w", link.Attrs().Name, err)
			}
			for _, c := range cs {
				if maj, mn := netlink.MajorMinor(c.Attrs().Handle); maj == ShapeMajor {
					used[int(mn)] = true
				}
			}
		}
		// Minors of other faults' records count too: a fault whose class a
		// crash left half made must not be shared.
		for _, r := range recs {
			if r.Shape != nil && r.Shape.Ifindex == link.Attrs().Index {
				used[r.Shape.Minor] = true
			}
		}
		for mn := 1; mn <= MaxShapeMinor; mn++ {
			if !used[mn] {
				p.minor = mn
				break
			}
		}
		if p.minor == 0 {
			return p, fmt.Errorf("device %s already holds %d of nfslab's shaping classes", link.Attrs().Name, MaxShapeMinor)
		}
	}
	if spec.Dir == DirIn || spec.Dir == DirBoth {
		if ing := ingressQdisc(qs); ing == nil {
			p.addIngress = true
		} else {
			p.ingressKind = ing.Type()
		}
	}
	return p, nil
}

// applyShape creates a shaping fault's objects (see shape.go), all or
// nothing, and returns them as the commands a user would type. rec is the
// fault's state record, written (with what the kernel is about to get)
// before any kernel object.
func (m *Manager) applyShape(id string, spec Spec, rec stateRecord) ([]string, error) {
	h, err := m.opts.ShapeHandleFactory(spec.Netns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink in namespace %q: %w", spec.Netns, err)
	}
	defer h.Close()
	p, err := m.inspectShape(h, spec)
	if err != nil {
		return nil, err
	}
	link := p.link
	idx := link.Attrs().Index
	sr := &shapeRecord{Dev: link.Attrs().Name, Ifindex: idx, Minor: p.minor, Replaced: p.inheritRec.Replaced,
		CreatedIngress: p.addIngress || p.inheritRec.CreatedIngress}
	if p.addRoot {
		sr.Replaced = p.rootKind
	}
	if spec.Dir != DirOut {
		sr.Ifb = ifbName(id)
	}
	rec.Shape = sr
	if err := m.writeState(rec); err != nil {
		return nil, err
	}
	var undo []func()
	rollback := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	fail := func(err error) ([]string, error) {
		rollback()
		return nil, err
	}
	warn := func(what string, err error) {
		if err != nil && !linkGone(err) {
			m.log.Warn("rolling back "+what, "id", id, "err", err)
		}
	}
	if spec.Dir == DirOut || spec.Dir == DirBoth {
		if p.addRoot {
			if err := h.QdiscReplace(shapeRoot(idx, 0)); err != nil {
				return fail(fmt.Errorf("replacing root qdisc %s of %s with nfslab's htb: %w", p.rootKind, link.Attrs().Name, err))
			}
			undo = append(undo, func() { warn("root qdisc", m.restoreRoot(h, link, sr.Replaced)) })
		}
		class := shapeClass(idx, p.minor, spec)
		if err := h.ClassAdd(class); err != nil {
			return fail(fmt.Errorf("adding htb class %s to %s: %w", classArg(p.minor), link.Attrs().Name, err))
		}
		undo = append(undo, func() { warn("class", h.ClassDel(class)) })
		if spec.Kind == KindDelay {
			if err := h.QdiscAdd(shapeLeaf(idx, p.minor, spec)); err != nil {
				return fail(fmt.Errorf("adding netem under class %s of %s: %w%s", classArg(p.minor), link.Attrs().Name, err, netemHint(err)))
			}
		}
		if err := m.appendShapeRule(id, spec, p.minor, rec.Expires, &undo); err != nil {
			return fail(err)
		}
	}
	if spec.Dir == DirIn || spec.Dir == DirBoth {
		ifb := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: ifbName(id), TxQLen: 1000}}
		if err := h.LinkAdd(ifb); err != nil {
			return fail(fmt.Errorf("adding ifb device %s: %w", ifb.Name, err))
		}
		undo = append(undo, func() { warn("ifb", h.LinkDel(ifb)) })
		il, err := h.LinkByName(ifb.Name)
		if err != nil {
			return fail(fmt.Errorf("finding ifb device %s: %w", ifb.Name, err))
		}
		if err := h.LinkSetUp(il); err != nil {
			return fail(fmt.Errorf("bringing up %s: %w", ifb.Name, err))
		}
		ii := il.Attrs().Index
		if err := h.QdiscAdd(shapeRoot(ii, classID(1))); err != nil {
			return fail(fmt.Errorf("adding nfslab's htb to %s: %w", ifb.Name, err))
		}
		if err := h.ClassAdd(shapeClass(ii, 1, spec)); err != nil {
			return fail(fmt.Errorf("adding htb class to %s: %w", ifb.Name, err))
		}
		if spec.Kind == KindDelay {
			if err := h.QdiscAdd(shapeLeaf(ii, 1, spec)); err != nil {
				return fail(fmt.Errorf("adding netem to %s: %w%s", ifb.Name, err, netemHint(err)))
			}
		}
		if p.addIngress {
			ing := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
			if err := h.QdiscAdd(ing); err != nil {
				return fail(fmt.Errorf("adding ingress qdisc to %s: %w", link.Attrs().Name, err))
			}
			undo = append(undo, func() { warn("ingress qdisc", h.QdiscDel(ing)) })
		}
		f, err := ingressFilter(idx, ii, spec)
		if err != nil {
			return fail(err)
		}
		if err := h.FilterAdd(f); err != nil {
			return fail(fmt.Errorf("adding ingress filter on %s redirecting to %s: %w", link.Attrs().Name, ifb.Name, err))
		}
	}
	cmds, err := shapeCommands(spec.Netns, m.opts.Backends[0].Command(isV6(spec)), id, spec, link.Attrs().Name, p.minor, p.addRoot, p.addIngress, rec.Expires)
	if err != nil {
		return fail(err)
	}
	return cmds, nil
}

func isV6(s Spec) bool {
	p, err := s.Prefix()
	return err == nil && p.Addr().Is6()
}

// netemHint explains the error of a kernel without sch_netem: the qdisc
// kind is unknown (ENOENT, "Specified qdisc kind is unknown").
func netemHint(err error) string {
	if linkGone(err) || errors.Is(err, errNotSupported) {
		return " (this kernel has no sch_netem: see nfslab doctor; run delay faults in the lab VM)"
	}
	return ""
}

// appendShapeRule adds the classifying rule to nfslab's mangle chain.
func (m *Manager) appendShapeRule(id string, spec Spec, minor int, expires time.Time, undo *[]func()) error {
	r, err := renderShapeRule(id, spec, minor, expires)
	if err != nil {
		return err
	}
	b := m.opts.Backends[0]
	ipt, err := m.opts.IPTablesFactory(spec.Netns, b, r.V6)
	if err != nil {
		return fmt.Errorf("opening %s: %w", b.Command(r.V6), err)
	}
	c := shapeChain()
	// A LongLived Manager trusts its cache that chain and jump exist (one
	// `iptables -A`), like for drop; EnsureJumps keeps the jump first.
	ck := chainKey{m.tableFor(spec.Netns, b, r.V6), ChainShape}
	cached := m.opts.LongLived && m.ready[ck]
	if !cached {
		if err := m.prepareChain(ipt, ck); err != nil {
			return fmt.Errorf("setting up chain %s in table %s: %w", c.Name, c.Table, err)
		}
	}
	*undo = append(*undo, func() {
		if m.opts.LongLived {
			return
		}
		if _, err := c.RemoveIfEmpty(ipt); err != nil {
			m.log.Warn("removing empty chain", "chain", c.Name, "err", err)
		}
	})
	err = ipt.Append(TableMangle, r.Chain, r.Args...)
	if err != nil && cached && ownchain.NotExist(err) {
		m.log.Info("nfslab chain gone, setting it up again", "chain", c.Name, "netns", spec.Netns, "err", err)
		if perr := m.prepareChain(ipt, ck); perr != nil {
			return perr
		}
		err = ipt.Append(TableMangle, r.Chain, r.Args...)
	}
	if err != nil {
		delete(m.ready, ck)
		return fmt.Errorf("adding the rule that classifies %s traffic: %w", spec.Dst, err)
	}
	*undo = append(*undo, func() {
		if err := ipt.Delete(TableMangle, r.Chain, r.Args...); err != nil && !ownchain.NotExist(err) {
			m.log.Warn("rolling back rule", "id", id, "err", err)
		}
	})
	return nil
}

// restoreRoot removes nfslab's root qdisc from link, which makes the
// kernel attach its default root again, and puts back what was replaced
// when the default differs (fq_codel or pfifo_fast added by hand).
//
// Equivalent to: `tc qdisc del dev DEV root` (then, if needed,
// `tc qdisc replace dev DEV root KIND`).
func (m *Manager) restoreRoot(h ShapeHandle, link netlink.Link, replaced string) error {
	idx := link.Attrs().Index
	// Only nfslab's own root is removed: one that another tool put in its
	// place meanwhile stays, and nothing is "restored" over it.
	qs, err := h.QdiscList(link)
	if err != nil {
		if linkGone(err) {
			return nil
		}
		return fmt.Errorf("listing qdiscs of %s: %w", link.Attrs().Name, err)
	}
	if !ours(rootQdisc(qs)) {
		return nil
	}
	err = h.QdiscDel(&netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(ShapeMajor, 0), Parent: netlink.HANDLE_ROOT}, QdiscType: "htb"})
	if err != nil && !linkGone(err) {
		return fmt.Errorf("removing nfslab's root qdisc of %s: %w", link.Attrs().Name, err)
	}
	if replaced == "" || replaced == "noqueue" || replaced == "mq" {
		return nil // the kernel's default comes back by itself
	}
	qs, err = h.QdiscList(link)
	if err != nil {
		return fmt.Errorf("listing qdiscs of %s: %w", link.Attrs().Name, err)
	}
	if r := rootQdisc(qs); r != nil && r.Type() == replaced {
		return nil
	}
	attrs := netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_ROOT}
	var q netlink.Qdisc = &netlink.GenericQdisc{QdiscAttrs: attrs, QdiscType: replaced}
	if replaced == "fq_codel" {
		q = netlink.NewFqCodel(attrs)
	}
	if err := h.QdiscReplace(q); err != nil {
		return fmt.Errorf("restoring root qdisc %s of %s: %w", replaced, link.Attrs().Name, err)
	}
	m.log.Info("restored root qdisc", "dev", link.Attrs().Name, "kind", replaced)
	return nil
}

// scanShape adds nfslab's shaping objects in the namespace to inv: its
// roots, classes and leaves, ingress filters and ifb devices.
func (m *Manager) scanShape(inv *inventory) error {
	h, err := m.opts.ShapeHandleFactory(inv.netns)
	if err != nil {
		return fmt.Errorf("opening netlink in namespace %q: %w", inv.netns, err)
	}
	inv.shape = h
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("listing devices: %w", err)
	}
	var pending []shapeObj // classes on egress devices, owned by a mangle rule
	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		ifbOf := ""
		if l.Type() == "ifb" {
			ifbOf = ifbID(name)
		}
		if ifbOf != "" {
			e := inv.get(ifbOf)
			e.ifb = l
		}
		qs, err := h.QdiscList(l)
		if err != nil {
			if !linkGone(err) {
				errs = append(errs, fmt.Errorf("listing qdiscs of %s: %w", name, err))
			}
			continue
		}
		d := &devShape{link: l, ingress: ingressQdisc(qs)}
		if r := rootQdisc(qs); ours(r) {
			d.root = r
			cs, err := h.ClassList(l, 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("listing classes of %s: %w", name, err))
			}
			for _, c := range cs {
				maj, mn := netlink.MajorMinor(c.Attrs().Handle)
				if maj != ShapeMajor || mn == 0 {
					continue
				}
				o := shapeObj{link: l, class: c}
				for _, q := range qs {
					if q.Attrs().Parent == c.Attrs().Handle {
						o.leaf = q
					}
				}
				if ifbOf != "" {
					o.ifb = l
					e := inv.get(ifbOf)
					e.shapes = append(e.shapes, o)
					continue
				}
				pending = append(pending, o)
			}
		}
		if d.ingress != nil {
			fs, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
			if err != nil {
				errs = append(errs, fmt.Errorf("listing ingress filters of %s: %w", name, err))
			}
			for _, f := range fs {
				if f.Attrs().Priority != ShapeMajor {
					continue
				}
				id := ""
				if t, ok := byIndex[mirredTarget(f)]; ok && t.Type() == "ifb" {
					id = ifbID(t.Attrs().Name)
				}
				if id == "" {
					id = fmt.Sprintf("filter-%s-%d", name, f.Attrs().Handle)
				}
				e := inv.get(id)
				e.ingress = append(e.ingress, ingressObj{link: l, filter: f})
			}
		}
		if d.root != nil || d.ingress != nil {
			inv.devs = append(inv.devs, d)
		}
	}
	// nfslab's mangle chain is looked at only when the namespace shows a
	// sign of a shaping fault (a root of nfslab's, a record): merely
	// listing the mangle table makes iptables-nft create it. Apply makes
	// the root before the rule and heal removes the rule before the class,
	// so a rule never outlives both.
	need := false
	for _, d := range inv.devs {
		need = need || d.root != nil
	}
	for _, r := range inv.states {
		need = need || r.Spec.IsShape()
	}
	if need {
		errs = append(errs, m.scanMangleAll(inv))
	}
	byMinor := map[[2]int]string{} // (ifindex, minor) -> fault
	for id, e := range inv.entries {
		for _, l := range e.rules {
			if l.table != TableMangle {
				continue
			}
			mn := shapeMinorOf(l.rule.Opt)
			for _, p := range pending {
				_, pm := netlink.MajorMinor(p.class.Attrs().Handle)
				if int(pm) == mn && (e.state == nil || e.state.Shape == nil || e.state.Shape.Ifindex == p.link.Attrs().Index) {
					byMinor[[2]int{p.link.Attrs().Index, mn}] = id
				}
			}
		}
	}
	for id, r := range inv.states {
		if r.Shape != nil && r.Shape.Minor != 0 {
			byMinor[[2]int{r.Shape.Ifindex, r.Shape.Minor}] = id
		}
	}
	for _, o := range pending {
		_, mn := netlink.MajorMinor(o.class.Attrs().Handle)
		id := byMinor[[2]int{o.link.Attrs().Index, int(mn)}]
		if id == "" {
			id = fmt.Sprintf("class-%s-%s", o.link.Attrs().Name, handleStr(o.class.Attrs().Handle))
		}
		e := inv.get(id)
		e.shapes = append(e.shapes, o)
	}
	return errors.Join(errs...)
}

// scanMangleAll scans nfslab's mangle chain in every backend and family.
func (m *Manager) scanMangleAll(inv *inventory) error {
	var errs []error
	for _, b := range m.opts.Backends {
		for _, v6 := range []bool{false, true} {
			if b.Legacy && !m.legacyPresent(inv.netns, v6) {
				continue
			}
			ipt, err := m.opts.IPTablesFactory(inv.netns, b, v6)
			if err != nil {
				if !b.Legacy {
					errs = append(errs, fmt.Errorf("opening %s: %w", b.Command(v6), err))
				}
				continue
			}
			errs = append(errs, m.scanMangle(inv, ipt, b, v6))
		}
	}
	return errors.Join(errs...)
}

// removeShape deletes a fault's shaping objects in reverse creation
// order: its ingress filters and ifb, then its classes (with their
// leaves). The mangle rule went first (removeEntry), so no packet is
// classified into a class that is going away.
func (m *Manager) removeShape(inv *inventory, e *entry) error {
	if len(e.shapes) == 0 && len(e.ingress) == 0 && e.ifb == nil {
		return nil
	}
	h := inv.shape
	if h == nil {
		return fmt.Errorf("removing shaping of %s: no netlink handle", e.id)
	}
	var errs []error
	for _, f := range e.ingress {
		if err := h.FilterDel(f.filter); err != nil && !linkGone(err) {
			errs = append(errs, fmt.Errorf("removing ingress filter of %s on %s: %w", e.id, f.link.Attrs().Name, err))
		}
		inv.touchedDevs[f.link.Attrs().Index] = true
	}
	if e.ifb != nil {
		// Deleting the device deletes its qdiscs and classes.
		if err := h.LinkDel(e.ifb); err != nil && !linkGone(err) {
			errs = append(errs, fmt.Errorf("removing ifb %s of %s: %w", e.ifb.Attrs().Name, e.id, err))
		}
	}
	for i := len(e.shapes) - 1; i >= 0; i-- {
		o := e.shapes[i]
		if o.ifb != nil {
			continue
		}
		if o.leaf != nil {
			if err := h.QdiscDel(o.leaf); err != nil && !linkGone(err) {
				errs = append(errs, fmt.Errorf("removing %s leaf of %s on %s: %w", o.leaf.Type(), e.id, o.link.Attrs().Name, err))
			}
		}
		if err := h.ClassDel(o.class); err != nil && !linkGone(err) {
			errs = append(errs, fmt.Errorf("removing class %s of %s on %s: %w", handleStr(o.class.Attrs().Handle), e.id, o.link.Attrs().Name, err))
		}
		inv.touchedDevs[o.link.Attrs().Index] = true
	}
	return errors.Join(errs...)
}

// finishShape removes nfslab's root qdiscs that hold no class any more
// (restoring what they replaced, from any state record of the device) and
// ingress qdiscs nfslab added that hold no filter any more; all looks at
// every device, else only at those a fault was removed from.
func (m *Manager) finishShape(inv *inventory, all bool) error {
	h := inv.shape
	if h == nil {
		return nil
	}
	var errs []error
	for _, d := range inv.devs {
		idx := d.link.Attrs().Index
		if !all && !inv.touchedDevs[idx] {
			continue
		}
		var replaced string
		createdIngress := false
		for _, r := range inv.states {
			if r.Shape != nil && r.Shape.Ifindex == idx {
				replaced = cmpOr(replaced, r.Shape.Replaced)
				createdIngress = createdIngress || r.Shape.CreatedIngress
			}
		}
		if d.root != nil {
			cs, err := h.ClassList(d.link, 0)
			if err != nil && !linkGone(err) {
				errs = append(errs, fmt.Errorf("listing classes of %s: %w", d.link.Attrs().Name, err))
				continue
			}
			left := 0
			for _, c := range cs {
				if maj, mn := netlink.MajorMinor(c.Attrs().Handle); maj == ShapeMajor && mn != 0 {
					left++
				}
			}
			if left == 0 && !linkGone(err) {
				if err := m.restoreRoot(h, d.link, replaced); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if d.ingress != nil && createdIngress {
			fs, err := h.FilterList(d.link, netlink.HANDLE_MIN_INGRESS)
			if err == nil && len(fs) == 0 {
				if err := h.QdiscDel(d.ingress); err != nil && !linkGone(err) {
					errs = append(errs, fmt.Errorf("removing ingress qdisc of %s: %w", d.link.Attrs().Name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// shapeCounters sums the packets and bytes sent through a fault's classes:
// the proof that traffic was shaped.
func (e *entry) shapeCounters() (packets, bytes uint64, ok bool) {
	for _, o := range e.shapes {
		st := o.class.Attrs().Statistics
		if st == nil || st.Basic == nil {
			continue
		}
		ok = true
		packets += uint64(st.Basic.Packets)
		bytes += st.Basic.Bytes
	}
	return packets, bytes, ok
}

// isShape reports whether the entry is a shaping fault (or its leftovers).
func (e *entry) isShape() bool {
	if len(e.shapes) > 0 || len(e.ingress) > 0 || e.ifb != nil {
		return true
	}
	for _, l := range e.rules {
		if l.table == TableMangle {
			return true
		}
	}
	return e.state != nil && e.state.Spec.IsShape()
}

// scanMangle adds the rules of nfslab's mangle chain in one table set to
// inv (tagged ones to their fault, others as strays).
func (m *Manager) scanMangle(inv *inventory, ipt IPTables, b Backend, v6 bool) error {
	lines, ok, err := ownchain.ListIfExists(ipt, TableMangle, ChainShape)
	if err != nil {
		return fmt.Errorf("%s: listing %s: %w", b.Command(v6), ChainShape, err)
	}
	if !ok {
		return nil
	}
	for _, l := range lines {
		r, ok := ownchain.ParseRule(l)
		if !ok {
			continue
		}
		loc := located{table: TableMangle, ipt: ipt, backend: b.Name, v6: v6, rule: r}
		if id := ruleID(r); id != "" {
			e := inv.get(id)
			e.rules = append(e.rules, loc)
		} else {
			inv.strays = append(inv.strays, loc)
		}
	}
	return nil
}

// planShape returns what Apply would create for a shaping fault. It reads
// the route and the device's qdiscs (touching nothing) to name the device
// and say whether the root would be replaced; the class minor is drawn by
// Apply.
func (m *Manager) planShape(spec Spec) (Plan, error) {
	dev, root, ingress := "<dev>", true, spec.Dir != DirOut
	if h, err := m.opts.ShapeHandleFactory(spec.Netns); err == nil {
		p, err := m.inspectShape(h, spec)
		h.Close()
		if err != nil && errors.Is(err, ErrForeignQdisc) {
			return Plan{}, err
		}
		if err == nil {
			dev, root, ingress = p.link.Attrs().Name, p.addRoot, p.addIngress
		}
	}
	b := m.opts.Backends[0]
	cmds, err := shapeCommands(spec.Netns, b.Command(isV6(spec)), PlanID, spec, dev, 0, root, ingress, expiryFor(m.clk.Now(), spec.For))
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	if spec.Dir != DirIn {
		c := shapeChain()
		cmd := b.Command(isV6(spec))
		p.Rules = append(p.Rules,
			ownchain.Command(spec.Netns, cmd, []string{"-t", TableMangle, "-N", c.Name})+"  # if missing",
			ownchain.Command(spec.Netns, cmd, append([]string{"-t", TableMangle, "-I", c.Builtin, "1"}, c.JumpArgs()...))+"  # unless already first")
	}
	p.Rules = append(p.Rules, cmds...)
	return p, nil
}

// healShapeKnown removes a shaping fault from its state record without a
// scan: its mangle rule by spec (one `iptables -D`), its class by handle,
// its ifb and ingress filter through netlink, then the root when it holds
// no class of nfslab's any more. done is false when the scan must decide
// (no record, or an object is not where the record says).
func (m *Manager) healShapeKnown(netns, id string) (done bool, err error) {
	rec, ok := m.readState(netns, id)
	if !ok || rec.Shape == nil || !rec.Spec.IsShape() {
		return false, nil
	}
	sr, spec := rec.Shape, rec.Spec
	h, err := m.opts.ShapeHandleFactory(netns)
	if err != nil {
		return false, nil
	}
	defer h.Close()
	link, err := h.LinkByIndex(sr.Ifindex)
	if err != nil || link.Attrs().Name != sr.Dev {
		return false, nil
	}
	if spec.Dir != DirIn {
		r, err := renderShapeRule(id, spec, sr.Minor, rec.Expires)
		if err != nil {
			return false, nil
		}
		ipt, err := m.opts.IPTablesFactory(netns, m.opts.Backends[0], r.V6)
		if err != nil {
			return false, nil
		}
		if err := ipt.Delete(TableMangle, r.Chain, r.Args...); err != nil {
			if ownchain.NotExist(err) {
				return false, nil
			}
			return true, fmt.Errorf("healing %s: removing its rule from %s: %w", id, ChainShape, err)
		}
		if !m.opts.LongLived {
			if _, err := shapeChain().RemoveIfEmpty(ipt); err != nil {
				m.log.Warn("removing empty chain", "chain", ChainShape, "err", err)
			}
		}
		class := &netlink.GenericClass{ClassAttrs: netlink.ClassAttrs{LinkIndex: sr.Ifindex, Handle: classID(sr.Minor), Parent: netlink.MakeHandle(ShapeMajor, 0)}, ClassType: "htb"}
		if err := h.ClassDel(class); err != nil && !linkGone(err) {
			return true, fmt.Errorf("healing %s: removing class %s of %s: %w", id, classArg(sr.Minor), sr.Dev, err)
		}
		cs, err := h.ClassList(link, 0)
		if err != nil {
			return true, fmt.Errorf("healing %s: listing classes of %s: %w", id, sr.Dev, err)
		}
		left := 0
		for _, c := range cs {
			if maj, mn := netlink.MajorMinor(c.Attrs().Handle); maj == ShapeMajor && mn != 0 {
				left++
			}
		}
		if left == 0 {
			if err := m.restoreRoot(h, link, sr.Replaced); err != nil {
				return true, fmt.Errorf("healing %s: %w", id, err)
			}
		}
	}
	if spec.Dir != DirOut {
		if ifb, err := h.LinkByName(ifbName(id)); err == nil {
			if err := m.removeIngress(h, link, ifb.Attrs().Index, sr.CreatedIngress); err != nil {
				return true, fmt.Errorf("healing %s: %w", id, err)
			}
			if err := h.LinkDel(ifb); err != nil && !linkGone(err) {
				return true, fmt.Errorf("healing %s: removing %s: %w", id, ifb.Attrs().Name, err)
			}
		}
	}
	if err := m.removeState(netns, id); err != nil {
		return true, fmt.Errorf("healing %s: %w", id, err)
	}
	return true, nil
}

// removeIngress deletes nfslab's ingress filters on link that redirect to
// device ifbIndex, and the ingress qdisc when nfslab added it and no
// filter is left on it.
func (m *Manager) removeIngress(h ShapeHandle, link netlink.Link, ifbIndex int, created bool) error {
	fs, err := h.FilterList(link, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		if linkGone(err) || errors.Is(err, errInvalid) {
			return nil // no ingress qdisc
		}
		return fmt.Errorf("listing ingress filters of %s: %w", link.Attrs().Name, err)
	}
	left := 0
	for _, f := range fs {
		if f.Attrs().Priority == ShapeMajor && mirredTarget(f) == ifbIndex {
			if err := h.FilterDel(f); err != nil && !linkGone(err) {
				return fmt.Errorf("removing ingress filter of %s: %w", link.Attrs().Name, err)
			}
			continue
		}
		left++
	}
	if created && left == 0 {
		ing := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
		if err := h.QdiscDel(ing); err != nil && !linkGone(err) && !errors.Is(err, errInvalid) {
			return fmt.Errorf("removing ingress qdisc of %s: %w", link.Attrs().Name, err)
		}
	}
	return nil
}
