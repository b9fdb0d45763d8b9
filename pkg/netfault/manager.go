package netfault

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nfslab/nfslab/internal/ownchain"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/clock"
)

// DefaultStateDir holds fault metadata when Options.StateDir is empty.
const DefaultStateDir = "/run/nfslab/state"

// Manager is the kernel implementation of Injector: iptables rules in
// nfslab's own chains and routes with nfslab's protocol number.
type Manager struct {
	opts Options
	log  *slog.Logger
	clk  clock.Clock
	mu   sync.Mutex // serialises changes so chains and jumps stay consistent
	// Caches, guarded by mu; see cache.go.
	ready map[chainKey]bool
	used  map[tableKey]bool
	known map[faultKey]appliedFault
}

var _ Injector = (*Manager)(nil)

// NewManager returns a Manager; zero Options fields get the real kernel.
func NewManager(opts Options) (*Manager, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.StateDir = cmp.Or(opts.StateDir, DefaultStateDir)
	if opts.RootFS == nil {
		opts.RootFS = os.DirFS("/")
	}
	if opts.NetFile == nil {
		opts.NetFile = readNetFile
	}
	if opts.IPTablesFactory == nil {
		opts.IPTablesFactory = ownchain.NewFactory()
	}
	if opts.NetnsID == nil {
		opts.NetnsID = netnsID
	}
	if opts.Processes == nil {
		opts.Processes = proctrack.Linux{}
	}
	if opts.RouteHandleFactory == nil {
		opts.RouteHandleFactory = newRouteHandle
	}
	if opts.ShapeHandleFactory == nil {
		opts.ShapeHandleFactory = newShapeHandle
	}
	if len(opts.Backends) == 0 {
		opts.Backends = ownchain.DetectBackends()
	}
	if len(opts.Backends) == 0 {
		return nil, errors.New("no iptables found on PATH (need iptables or iptables-legacy)")
	}
	return &Manager{opts: opts, log: opts.Logger, clk: opts.Clock,
		ready: map[chainKey]bool{}, used: map[tableKey]bool{}, known: map[faultKey]appliedFault{}}, nil
}

func newID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making fault id: %w", err)
	}
	if b[0]|b[1]|b[2]|b[3] == 0 {
		b[3] = 1 // a realm or window of 0 means "no tag"
	}
	return hex.EncodeToString(b), nil
}

// Plan returns the commands Apply would run for spec, with PlanID in place
// of the fault ID that Apply draws. Chain and jump commands are listed
// because Apply runs them when the chain or jump is missing.
func (m *Manager) Plan(_ context.Context, spec Spec) (Plan, error) {
	if err := spec.Validate(); err != nil {
		return Plan{}, err
	}
	var p Plan
	if spec.IsShape() {
		return m.planShape(spec)
	}
	if !spec.IsRule() {
		r, err := routeFor(PlanID, spec)
		if err != nil {
			return p, err
		}
		p.Routes = append(p.Routes, routeCommand(spec.Netns, PlanID, r))
		return p, nil
	}
	rules, err := renderRules(PlanID, spec, expiryFor(m.clk.Now(), spec.For))
	if err != nil {
		return p, err
	}
	cmd := m.opts.Backends[0].Command(rules[0].V6)
	seen := map[string]bool{}
	for _, r := range rules {
		if !seen[r.Chain] {
			seen[r.Chain] = true
			p.Rules = append(p.Rules,
				ownchain.Command(spec.Netns, cmd, []string{"-t", TableFilter, "-N", r.Chain})+"  # if missing",
				ownchain.Command(spec.Netns, cmd, append([]string{"-t", TableFilter, "-I", builtinFor(r.Chain), "1"}, chainFor(r.Chain).JumpArgs()...))+"  # unless already first")
		}
	}
	p.Rules = append(p.Rules, ruleCommands(spec.Netns, cmd, rules)...)
	return p, nil
}

// ruleCommands renders rules as the `iptables -A` commands that add them.
func ruleCommands(netns, cmd string, rules []ruleSpec) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		out = append(out, ownchain.Command(netns, cmd, append([]string{"-t", TableFilter, "-A", r.Chain}, r.Args...)))
	}
	return out
}

// Apply creates the fault described by spec, all or nothing.
func (m *Manager) Apply(ctx context.Context, spec Spec) (Fault, error) {
	if err := spec.Validate(); err != nil {
		return Fault{}, err
	}
	spec.For = cmp.Or(spec.For, DefaultLifetime)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now().UTC()
	id, err := newID()
	if err != nil {
		return Fault{}, err
	}
	f := Fault{ID: id, Spec: spec, Created: now, Expires: expiryFor(now, spec.For), Counted: spec.Counted()}
	// State first: a crash before the kernel objects exist leaves a stale
	// record that Sweep drops; the other order would lose the metadata.
	rec := stateRecord{ID: id, Spec: spec, Created: f.Created, Expires: f.Expires}
	if err := m.writeState(rec); err != nil {
		return Fault{}, err
	}
	var af appliedFault
	if spec.IsShape() {
		// Healed through a scan: its objects are found by their reserved
		// numbers, and the root it replaced is read from the record.
		f.Rules, err = m.applyShape(id, spec, rec)
		if err != nil {
			_ = m.removeState(spec.Netns, id)
			return Fault{}, err
		}
		m.log.Info("fault applied", "id", id, "kind", spec.Kind, "dst", spec.Dst, "netns", spec.Netns, "expires", f.Expires)
		return f, nil
	}
	if spec.IsRule() {
		af, err = m.applyRules(id, spec, f.Expires)
		if err == nil {
			f.Rules = ruleCommands(spec.Netns, af.backend.Command(af.v6), af.rules)
		}
	} else {
		var route string
		route, err = m.applyRoute(id, spec)
		af, f.Routes = appliedFault{route: true}, []string{route}
	}
	if err != nil {
		_ = m.removeState(spec.Netns, id)
		return Fault{}, err
	}
	m.known[faultKey{spec.Netns, id}] = af
	m.log.Info("fault applied", "id", id, "kind", spec.Kind, "dst", spec.Dst, "netns", spec.Netns, "expires", f.Expires)
	return f, nil
}

// applyRules appends the fault's rules to nfslab's chains in the first
// backend. A LongLived Manager with a warm cache runs one `iptables -A`
// per rule; otherwise the jump is checked first (one `iptables -S OUTPUT`,
// more when the chain or jump must be created). A rule that cannot be
// added because the chain went away sets the chain up again, once.
func (m *Manager) applyRules(id string, spec Spec, expires time.Time) (appliedFault, error) {
	rules, err := renderRules(id, spec, expires)
	if err != nil {
		return appliedFault{}, err
	}
	b := m.opts.Backends[0]
	v6 := rules[0].V6
	tk := m.tableFor(spec.Netns, b, v6)
	ipt, err := m.opts.IPTablesFactory(spec.Netns, b, v6)
	if err != nil {
		return appliedFault{}, fmt.Errorf("opening %s: %w", b.Command(v6), err)
	}
	var done []ruleSpec
	rollback := func() {
		for i := len(done) - 1; i >= 0; i-- {
			if err := ipt.Delete(TableFilter, done[i].Chain, done[i].Args...); err != nil && !ownchain.NotExist(err) {
				m.log.Warn("rolling back rule", "id", id, "err", err)
			}
		}
		m.forgetTable(tk)
		m.cleanupChains(ipt, ChainOut, ChainIn)
	}
	for _, r := range rules {
		ck := chainKey{tk, r.Chain}
		cached := m.opts.LongLived && m.ready[ck]
		if !cached {
			if err := m.prepareChain(ipt, ck); err != nil {
				rollback()
				return appliedFault{}, err
			}
		}
		err := ipt.Append(TableFilter, r.Chain, r.Args...)
		if err != nil && cached && ownchain.NotExist(err) {
			// The chain was removed behind this Manager's back.
			m.log.Info("nfslab chain gone, setting it up again", "chain", r.Chain, "netns", spec.Netns, "err", err)
			if perr := m.prepareChain(ipt, ck); perr != nil {
				rollback()
				return appliedFault{}, perr
			}
			err = ipt.Append(TableFilter, r.Chain, r.Args...)
		}
		if err != nil {
			rollback()
			return appliedFault{}, fmt.Errorf("adding %s rule for %s port %d: %w", spec.Kind, spec.Dst, spec.Port, err)
		}
		done = append(done, r)
	}
	return appliedFault{backend: b, v6: v6, rules: rules}, nil
}

// cleanupChains removes those of nfslab's chains that hold no rule, with
// their jumps; removed reports whether any is gone (the caller forgets it
// in the cache).
func (m *Manager) cleanupChains(ipt IPTables, chains ...string) (removed bool) {
	for _, name := range chains {
		gone, err := chainFor(name).RemoveIfEmpty(ipt)
		if err != nil {
			m.log.Warn("removing empty chain", "chain", name, "err", err)
		}
		removed = removed || gone
	}
	return removed
}

// applyRoute adds the route of an unreachable fault and returns it as the
// ip command that adds it.
func (m *Manager) applyRoute(id string, spec Spec) (string, error) {
	r, err := routeFor(id, spec)
	if err != nil {
		return "", err
	}
	h, err := m.opts.RouteHandleFactory(spec.Netns)
	if err != nil {
		return "", fmt.Errorf("opening netlink in namespace %q: %w", spec.Netns, err)
	}
	defer h.Close()
	if err := h.RouteAdd(r); err != nil {
		return "", fmt.Errorf("adding %s route to %s: %w", spec.RouteType, spec.Dst, err)
	}
	return routeCommand(spec.Netns, id, r), nil
}

// ---- inventory: what of nfslab's exists in one namespace ----

type located struct {
	table   string // "" is TableFilter
	ipt     IPTables
	backend string
	v6      bool
	rule    ownchain.Rule
}

type entry struct {
	id     string
	rules  []located
	routes []netlink.Route
	state  *stateRecord
	// Shaping objects (delay, limit); the mangle rule is in rules.
	shapes  []shapeObj
	ingress []ingressObj
	ifb     netlink.Link
}

type scannedTable struct {
	ipt IPTables
	key tableKey
}

type inventory struct {
	netns   string
	entries map[string]*entry
	strays  []located      // rules in nfslab's chains without an nfslab:<id> comment
	tables  []scannedTable // every table set looked at, for chain cleanup
	handle  RouteHandle    // nil when netlink could not be opened
	states  map[string]stateRecord
	touched map[IPTables]bool // tables a rule was removed from
	removed map[string]bool   // faults removed
	// chains counts the rules the scan saw in each filter chain of
	// nfslab's, less those removed since; -1 is a chain the scan found
	// missing. finish lists again only a chain that may be empty now.
	chains map[seenChain]int
	// Shaping: the netlink handle (nil when it could not be opened), the
	// devices holding nfslab's root or an ingress qdisc, and those a class
	// or filter was removed from.
	shape       ShapeHandle
	devs        []*devShape
	touchedDevs map[int]bool
	mangle      map[IPTables]bool // tables whose NFSLAB-SHAPE lost a rule
}

// emptyCandidates sorts chains by what the scan saw, so that finish lists
// again only those that may be empty now: gone is true when one was
// missing, check holds those without rules (or not scanned); a chain that
// still holds rules stays without a command.
func (inv *inventory) emptyCandidates(ipt IPTables, chains ...string) (gone bool, check []string) {
	for _, name := range chains {
		n, seen := inv.chains[seenChain{ipt: ipt, chain: name}]
		switch {
		case seen && n > 0:
		case seen && n < 0:
			gone = true
		default:
			check = append(check, name)
		}
	}
	return gone, check
}

// seenChain is one of nfslab's filter chains in one table set.
type seenChain struct {
	ipt   IPTables
	chain string
}

func (inv *inventory) get(id string) *entry {
	e := inv.entries[id]
	if e == nil {
		e = &entry{id: id}
		inv.entries[id] = e
	}
	return e
}

// scan collects nfslab's rules from every backend and family, its routes
// and the state records. The caller must Close inv.handle.
func (m *Manager) scan(ctx context.Context, netns string) (*inventory, error) {
	inv := &inventory{netns: netns, entries: map[string]*entry{}, touched: map[IPTables]bool{}, removed: map[string]bool{},
		touchedDevs: map[int]bool{}, mangle: map[IPTables]bool{}, chains: map[seenChain]int{}}
	var errs []error
	for _, b := range m.opts.Backends {
		for _, v6 := range []bool{false, true} {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if b.Legacy && !m.legacyPresent(netns, v6) {
				continue
			}
			ipt, err := m.opts.IPTablesFactory(netns, b, v6)
			if err != nil {
				if b.Legacy {
					continue
				}
				errs = append(errs, fmt.Errorf("opening %s: %w", b.Command(v6), err))
				continue
			}
			inv.tables = append(inv.tables, scannedTable{ipt: ipt, key: m.tableFor(netns, b, v6)})
			for _, chain := range []string{ChainOut, ChainIn} {
				lines, ok, err := ownchain.ListIfExists(ipt, TableFilter, chain)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: listing %s: %w", b.Command(v6), chain, err))
					continue
				}
				ck := seenChain{ipt: ipt, chain: chain}
				if !ok {
					inv.chains[ck] = -1
					continue
				}
				inv.chains[ck] = 0
				for _, l := range lines {
					r, ok := ownchain.ParseRule(l)
					if !ok {
						continue
					}
					inv.chains[ck]++
					loc := located{ipt: ipt, backend: b.Name, v6: v6, rule: r}
					if id := ruleID(r); id != "" {
						e := inv.get(id)
						e.rules = append(e.rules, loc)
					} else {
						inv.strays = append(inv.strays, loc)
					}
				}
			}
		}
	}
	h, err := m.opts.RouteHandleFactory(netns)
	if err != nil {
		errs = append(errs, fmt.Errorf("opening netlink in namespace %q: %w", netns, err))
	} else {
		inv.handle = h
		routes, err := listRoutes(h)
		if err != nil {
			errs = append(errs, err)
		}
		for _, r := range routes {
			id := cmp.Or(routeIDOf(r), "route-"+r.Dst.String())
			e := inv.get(id)
			e.routes = append(e.routes, r)
		}
	}
	inv.states = m.readStates(netns)
	errs = append(errs, m.scanShape(inv))
	for id, rec := range inv.states {
		if e := inv.entries[id]; e != nil {
			rec := rec
			e.state = &rec
		}
	}
	return inv, errors.Join(errs...)
}

// listRoutes lists nfslab's routes (protocol 73) in the main table.
//
// Equivalent to: `ip route show proto 73; ip -6 route show proto 73`.
func listRoutes(h RouteHandle) ([]netlink.Route, error) {
	filter := &netlink.Route{Protocol: netlink.RouteProtocol(RouteProtocol), Table: rtTableMain}
	var out []netlink.Route
	var err error
	for try := 0; try < 3; try++ {
		out, err = h.RouteListFiltered(familyAll, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if err == nil || !dumpInterrupted(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing routes of protocol %d: %w", RouteProtocol, err)
	}
	return out, nil
}

func (m *Manager) legacyPresent(netns string, v6 bool) bool {
	name := "ip_tables_names"
	if v6 {
		name = "ip6_tables_names"
	}
	b, err := m.opts.NetFile(netns, name)
	if err != nil {
		return false
	}
	for l := range strings.Lines(string(b)) {
		if strings.TrimSpace(l) == TableFilter {
			return true
		}
	}
	return false
}

// fault turns an inventory entry into a Fault.
func (e *entry) fault(netns string) Fault {
	f := Fault{ID: e.id}
	var parsed []ownchain.Rule
	for _, l := range e.rules {
		parsed = append(parsed, l.rule)
		f.Packets += l.rule.Packets
		f.Bytes += l.rule.Bytes
	}
	if e.isShape() {
		f.Spec, f.Expires = specFromShape(e, netns)
		f.Counted = true
		if p, b, ok := e.shapeCounters(); ok {
			f.Packets, f.Bytes = p, b
		}
	} else if len(e.rules) > 0 {
		f.Counted = true
		f.Spec, f.Expires = specFromRules(parsed, netns)
	} else if len(e.routes) > 0 {
		f.Spec = specFromRoute(e.routes[0], netns)
	}
	if e.state != nil {
		f.Spec = e.state.Spec
		f.Created = e.state.Created
		if !e.state.Expires.IsZero() {
			f.Expires = e.state.Expires
		}
	}
	return f
}

// live reports whether the entry has kernel objects (not just state).
func (e *entry) live() bool {
	return len(e.rules) > 0 || len(e.routes) > 0 || len(e.shapes) > 0 || len(e.ingress) > 0 || e.ifb != nil
}

// List returns nfslab's faults in netns, oldest first, with counters.
func (m *Manager) List(ctx context.Context, netns string) ([]Fault, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, err := m.scan(ctx, netns)
	if inv == nil {
		return nil, err
	}
	inv.close()
	var out []Fault
	for _, e := range inv.entries {
		if e.live() {
			out = append(out, e.fault(netns))
		}
	}
	sortFaults(out)
	return out, err
}

func sortFaults(fs []Fault) {
	sort.SliceStable(fs, func(i, j int) bool {
		if !fs[i].Created.Equal(fs[j].Created) {
			return fs[i].Created.Before(fs[j].Created)
		}
		return fs[i].ID < fs[j].ID
	})
}

// removeEntry deletes an entry's kernel objects in reverse creation order
// and its state; objects already gone count as removed.
func (m *Manager) removeEntry(inv *inventory, e *entry) error {
	var errs []error
	for i := len(e.rules) - 1; i >= 0; i-- {
		if err := inv.deleteRule(e.rules[i]); err != nil {
			errs = append(errs, fmt.Errorf("removing rule of %s: %w", e.id, err))
		}
	}
	if err := m.removeShape(inv, e); err != nil {
		errs = append(errs, err)
	}
	for i := len(e.routes) - 1; i >= 0; i-- {
		r := e.routes[i]
		if inv.handle == nil {
			errs = append(errs, fmt.Errorf("removing route of %s: no netlink handle", e.id))
			continue
		}
		if err := inv.handle.RouteDel(&r); err != nil && !routeGone(err) {
			errs = append(errs, fmt.Errorf("removing route %s of %s: %w", r.Dst, e.id, err))
		}
	}
	if len(errs) == 0 {
		inv.removed[e.id] = true
		if err := m.removeState(inv.netns, e.id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finish removes empty chains (in every table looked at when all is set,
// else only where rules were removed, unless the Manager keeps them),
// forgets faults that are gone, and closes the netlink handle.
func (m *Manager) finish(inv *inventory, all bool) {
	for _, t := range inv.tables {
		if all || (inv.touched[t.ipt] && !m.keepsChains(t.key)) {
			gone, check := inv.emptyCandidates(t.ipt, ChainOut, ChainIn)
			if m.cleanupChains(t.ipt, check...) || gone {
				m.forgetTable(t.key)
			}
		}
	}
	for ipt := range inv.mangle {
		gone, err := shapeChain().RemoveIfEmpty(ipt)
		if err != nil {
			m.log.Warn("removing empty chain", "chain", ChainShape, "err", err)
		}
		if gone {
			for k := range m.ready {
				if k.chain == ChainShape && k.netns == inv.netns {
					delete(m.ready, k)
				}
			}
		}
	}
	if err := m.finishShape(inv, all); err != nil {
		m.log.Warn("restoring qdiscs", "netns", inv.netns, "err", err)
	}
	for k := range m.known {
		if k.netns != inv.netns {
			continue
		}
		if e := inv.entries[k.id]; e == nil || !e.live() || inv.removed[k.id] {
			delete(m.known, k)
		}
	}
	inv.close()
}

// closeShape closes the shaping handle only (Diagnose closes the route
// handle itself).
func (inv *inventory) closeShape() {
	if inv.shape != nil {
		inv.shape.Close()
		inv.shape = nil
	}
}

func (inv *inventory) close() {
	if inv.handle != nil {
		inv.handle.Close()
		inv.handle = nil
	}
	if inv.shape != nil {
		inv.shape.Close()
		inv.shape = nil
	}
}

// Heal removes one fault; ErrNotFound if netns has none with that ID. A
// fault this Manager applied, or one with a state record, is deleted by
// its rule spec (one `iptables -D` per rule); otherwise, or when the rule
// is not where it was put, nfslab's chains are scanned for its tag.
func (m *Manager) Heal(ctx context.Context, netns, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heal(ctx, netns, id)
}

func (m *Manager) heal(ctx context.Context, netns, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if done, err := m.healShapeKnown(netns, id); done {
		if err == nil {
			m.log.Info("fault healed", "id", id, "netns", netns)
		}
		return err
	}
	if done, err := m.healKnown(netns, id); done {
		if err == nil {
			m.log.Info("fault healed", "id", id, "netns", netns)
		}
		return err
	}
	inv, err := m.scan(ctx, netns)
	if inv == nil {
		return err
	}
	defer m.finish(inv, false)
	e := inv.entries[id]
	if e == nil || !e.live() {
		if _, ok := inv.states[id]; ok {
			// Only stale metadata was left: drop it, the fault is gone.
			_ = m.removeState(netns, id)
			return nil
		}
		if err != nil {
			return fmt.Errorf("fault %s: %w (and scanning failed: %v)", id, ErrNotFound, err)
		}
		return fmt.Errorf("fault %s: %w", id, ErrNotFound)
	}
	if rerr := m.removeEntry(inv, e); rerr != nil {
		return fmt.Errorf("healing %s: %w", id, rerr)
	}
	m.log.Info("fault healed", "id", id, "netns", netns)
	return nil
}

// ordered returns live entries newest first, the order to remove them in.
func (inv *inventory) newestFirst() []*entry {
	var es []*entry
	for _, e := range inv.entries {
		if e.live() {
			es = append(es, e)
		}
	}
	created := func(e *entry) time.Time {
		if e.state != nil {
			return e.state.Created
		}
		return time.Time{}
	}
	sort.SliceStable(es, func(i, j int) bool {
		ci, cj := created(es[i]), created(es[j])
		if !ci.Equal(cj) {
			return ci.After(cj)
		}
		return es[i].id > es[j].id
	})
	return es
}

// HealAll removes everything of nfslab in netns: fault rules, stray rules
// in nfslab's chains, the chains and their jumps, routes, state. It keeps
// going past errors and returns the IDs it removed.
func (m *Manager) HealAll(ctx context.Context, netns string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, scanErr := m.scan(ctx, netns)
	if inv == nil {
		return nil, scanErr
	}
	defer m.finish(inv, true)
	var ids []string
	errs := []error{scanErr}
	for _, e := range inv.newestFirst() {
		if err := m.removeEntry(inv, e); err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, e.id)
	}
	errs = append(errs, m.removeStrays(inv))
	for id := range inv.states {
		if e := inv.entries[id]; e == nil || !e.live() {
			_ = m.removeState(netns, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > 0 {
		m.log.Info("healed all faults", "netns", netns, "ids", ids)
	}
	return ids, errors.Join(errs...)
}

func (m *Manager) removeStrays(inv *inventory) error {
	var errs []error
	for i := len(inv.strays) - 1; i >= 0; i-- {
		if err := inv.deleteRule(inv.strays[i]); err != nil {
			errs = append(errs, fmt.Errorf("removing untagged rule: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteRule removes one rule and notes its table, so that the chains it
// leaves empty are pruned afterwards; a rule already gone counts as removed.
func (inv *inventory) deleteRule(l located) error {
	if l.table == TableMangle {
		inv.mangle[l.ipt] = true
	} else {
		inv.touched[l.ipt] = true
	}
	if err := l.ipt.Delete(cmp.Or(l.table, TableFilter), l.rule.Chain, l.rule.Args...); err != nil && !ownchain.NotExist(err) {
		return fmt.Errorf("from %s: %w", l.rule.Chain, err)
	}
	if ck := (seenChain{ipt: l.ipt, chain: l.rule.Chain}); l.table != TableMangle && inv.chains[ck] > 0 {
		inv.chains[ck]--
	}
	return nil
}

// Sweep removes expired faults (Expires before the clock's now), orphans
// (routes without state, whose lifetime is unknown; untagged rules in
// nfslab's chains; rules without a kernel lifetime and without state) and
// stale state records. It returns the IDs of faults it removed.
func (m *Manager) Sweep(ctx context.Context, netns string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, scanErr := m.scan(ctx, netns)
	if inv == nil {
		return nil, scanErr
	}
	defer m.finish(inv, true)
	now := m.clk.Now()
	var ids []string
	errs := []error{scanErr}
	for _, e := range inv.newestFirst() {
		f := e.fault(netns)
		expired := !f.Expires.IsZero() && !now.Before(f.Expires)
		orphan := e.state == nil && f.Expires.IsZero()
		if !expired && !orphan {
			continue
		}
		if err := m.removeEntry(inv, e); err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, e.id)
		m.log.Info("fault swept", "id", e.id, "netns", netns, "expired", expired, "orphan", orphan)
	}
	errs = append(errs, m.removeStrays(inv))
	for id := range inv.states {
		if e := inv.entries[id]; e == nil || !e.live() {
			_ = m.removeState(netns, id)
		}
	}
	sort.Strings(ids)
	return ids, errors.Join(errs...)
}
