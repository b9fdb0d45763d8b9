package netfault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

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
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.RootFS == nil {
		opts.RootFS = os.DirFS("/")
	}
	if opts.NetFile == nil {
		opts.NetFile = readNetFile
	}
	if opts.IPTablesFactory == nil {
		opts.IPTablesFactory = newIPTablesFactory()
	}
	if opts.RouteHandleFactory == nil {
		opts.RouteHandleFactory = newRouteHandle
	}
	if len(opts.Backends) == 0 {
		opts.Backends = detectBackends()
	}
	if len(opts.Backends) == 0 {
		return nil, errors.New("no iptables found on PATH (need iptables or iptables-legacy)")
	}
	return &Manager{opts: opts, log: opts.Logger, clk: opts.Clock}, nil
}

func newID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making fault id: %w", err)
	}
	if b[0]|b[1]|b[2]|b[3] == 0 {
		b[3] = 1 // realm 0 means "none"
	}
	return hex.EncodeToString(b), nil
}

// Plan returns the commands Apply would run for spec, with "<id>" in place
// of the fault ID that Apply draws. Chain and jump commands are listed
// because Apply runs them when the chain or jump is missing.
func (m *Manager) Plan(spec Spec) (Plan, error) {
	if err := spec.Validate(); err != nil {
		return Plan{}, err
	}
	return m.plan("<id>", spec, m.clk.Now())
}

func (m *Manager) plan(id string, spec Spec, now time.Time) (Plan, error) {
	var p Plan
	if !spec.IsRule() {
		if id == "<id>" {
			id = "ffffffff"
		}
		r, err := routeFor(id, spec)
		if err != nil {
			return p, err
		}
		line := routeCommand(spec.Netns, r)
		line = strings.Replace(line, "0xffffffff", "<id>", 1)
		p.Routes = append(p.Routes, line)
		return p, nil
	}
	rules, err := renderRules(id, spec, expiryFor(now, spec.For))
	if err != nil {
		return p, err
	}
	cmd := m.opts.Backends[0].Command(rules[0].V6)
	seen := map[string]bool{}
	for _, r := range rules {
		if !seen[r.Chain] {
			seen[r.Chain] = true
			p.Rules = append(p.Rules,
				renderCommand(spec.Netns, cmd, []string{"-t", TableFilter, "-N", r.Chain})+"  # if missing",
				renderCommand(spec.Netns, cmd, append([]string{"-t", TableFilter, "-I", builtinFor(r.Chain), "1"}, jumpArgs(r.Chain)...))+"  # unless already first")
		}
	}
	for _, r := range rules {
		p.Rules = append(p.Rules, renderCommand(spec.Netns, cmd, append([]string{"-t", TableFilter, "-A", r.Chain}, r.Args...)))
	}
	return p, nil
}

// Apply creates the fault described by spec, all or nothing.
func (m *Manager) Apply(ctx context.Context, spec Spec) (Fault, error) {
	if err := spec.Validate(); err != nil {
		return Fault{}, err
	}
	if spec.For == 0 {
		spec.For = DefaultLifetime
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now().UTC()
	id, err := newID()
	if err != nil {
		return Fault{}, err
	}
	var pfxErr error
	if !spec.IsRule() {
		p, err := spec.Prefix()
		pfxErr = err
		if err == nil && p.Addr().Is6() {
			id = routeID6(p)
		}
	}
	if pfxErr != nil {
		return Fault{}, pfxErr
	}
	f := Fault{ID: id, Spec: spec, Created: now, Expires: expiryFor(now, spec.For), Counted: spec.IsRule()}
	// State first: a crash before the kernel objects exist leaves a stale
	// record that Sweep drops; the other order would lose the metadata.
	if err := m.writeState(stateRecord{ID: id, Spec: spec, Created: f.Created, Expires: f.Expires}); err != nil {
		return Fault{}, err
	}
	if spec.IsRule() {
		err = m.applyRules(id, spec, f.Expires)
	} else {
		err = m.applyRoute(id, spec)
	}
	if err != nil {
		_ = m.removeState(spec.Netns, id)
		return Fault{}, err
	}
	m.log.Info("fault applied", "id", id, "kind", spec.Kind, "dst", spec.Dst, "netns", spec.Netns, "expires", f.Expires)
	return f, nil
}

func (m *Manager) applyRules(id string, spec Spec, expires time.Time) error {
	rules, err := renderRules(id, spec, expires)
	if err != nil {
		return err
	}
	b := m.opts.Backends[0]
	ipt, err := m.opts.IPTablesFactory(spec.Netns, b, rules[0].V6)
	if err != nil {
		return fmt.Errorf("opening %s: %w", b.Command(rules[0].V6), err)
	}
	var done []ruleSpec
	rollback := func() {
		for i := len(done) - 1; i >= 0; i-- {
			if err := ipt.Delete(TableFilter, done[i].Chain, done[i].Args...); err != nil && !notExist(err) {
				m.log.Warn("rolling back rule", "id", id, "err", err)
			}
		}
		m.cleanupChains(ipt)
	}
	for _, r := range rules {
		if err := ensureChain(ipt, r.Chain); err != nil {
			rollback()
			return err
		}
		if err := ensureJumpFirst(ipt, r.Chain); err != nil {
			rollback()
			return err
		}
		if err := ipt.Append(TableFilter, r.Chain, r.Args...); err != nil {
			rollback()
			return fmt.Errorf("adding %s rule for %s port %d: %w", spec.Kind, spec.Dst, spec.Port, err)
		}
		done = append(done, r)
	}
	return nil
}

func ensureChain(ipt IPTables, chain string) error {
	ok, err := ipt.ChainExists(TableFilter, chain)
	if err != nil {
		return fmt.Errorf("checking chain %s: %w", chain, err)
	}
	if ok {
		return nil
	}
	if err := ipt.NewChain(TableFilter, chain); err != nil {
		// Another process may have created it in between.
		if ok, _ := ipt.ChainExists(TableFilter, chain); ok {
			return nil
		}
		return fmt.Errorf("creating chain %s: %w", chain, err)
	}
	return nil
}

// ensureJumpFirst makes the jump to chain the first rule of its built-in
// chain. Other tools insert at the top too (e.g. an ACCEPT for established
// connections), which would hide nfslab's rules, so it is re-asserted on
// every apply.
func ensureJumpFirst(ipt IPTables, chain string) error {
	builtin := builtinFor(chain)
	lines, err := ipt.List(TableFilter, builtin)
	if err != nil {
		return fmt.Errorf("listing %s: %w", builtin, err)
	}
	var jumps []parsedRule
	first := true
	for _, l := range lines {
		r, ok := parseRule(l)
		if !ok {
			continue
		}
		if r.Target() == chain {
			if first && len(jumps) == 0 && slices.Equal(r.Args, jumpArgs(chain)) {
				return nil
			}
			jumps = append(jumps, r)
		}
		first = false
	}
	for _, j := range jumps {
		if err := ipt.Delete(TableFilter, builtin, j.Args...); err != nil && !notExist(err) {
			return fmt.Errorf("moving jump to %s: %w", chain, err)
		}
	}
	if err := ipt.Insert(TableFilter, builtin, 1, jumpArgs(chain)...); err != nil {
		return fmt.Errorf("adding jump from %s to %s: %w", builtin, chain, err)
	}
	return nil
}

// cleanupChains removes nfslab's chains that hold no rule, with their jumps.
func (m *Manager) cleanupChains(ipt IPTables) {
	for _, chain := range []string{ChainOut, ChainIn} {
		ok, err := ipt.ChainExists(TableFilter, chain)
		if err != nil || !ok {
			continue
		}
		lines, err := ipt.List(TableFilter, chain)
		if err != nil {
			continue
		}
		empty := true
		for _, l := range lines {
			if _, ok := parseRule(l); ok {
				empty = false
			}
		}
		if !empty {
			continue
		}
		if err := removeJumps(ipt, chain); err != nil {
			m.log.Warn("removing jump", "chain", chain, "err", err)
			continue
		}
		if err := ipt.DeleteChain(TableFilter, chain); err != nil && !notExist(err) {
			m.log.Warn("removing chain", "chain", chain, "err", err)
		}
	}
}

func removeJumps(ipt IPTables, chain string) error {
	builtin := builtinFor(chain)
	lines, err := ipt.List(TableFilter, builtin)
	if err != nil {
		return err
	}
	for _, l := range lines {
		r, ok := parseRule(l)
		if !ok || r.Target() != chain {
			continue
		}
		if err := ipt.Delete(TableFilter, builtin, r.Args...); err != nil && !notExist(err) {
			return fmt.Errorf("removing jump from %s to %s: %w", builtin, chain, err)
		}
	}
	return nil
}

func (m *Manager) applyRoute(id string, spec Spec) error {
	r, err := routeFor(id, spec)
	if err != nil {
		return err
	}
	h, err := m.opts.RouteHandleFactory(spec.Netns)
	if err != nil {
		return fmt.Errorf("opening netlink in namespace %q: %w", spec.Netns, err)
	}
	defer h.Close()
	if err := h.RouteAdd(r); err != nil {
		return fmt.Errorf("adding %s route to %s: %w", spec.RouteType, spec.Dst, err)
	}
	return nil
}

// ---- inventory: what of nfslab's exists in one namespace ----

type located struct {
	ipt     IPTables
	backend string
	v6      bool
	rule    parsedRule
}

type entry struct {
	id     string
	rules  []located
	routes []netlink.Route
	state  *stateRecord
}

type inventory struct {
	netns   string
	entries map[string]*entry
	strays  []located   // rules in nfslab's chains without an nfslab:<id> comment
	tables  []IPTables  // every table set looked at, for chain cleanup
	handle  RouteHandle // nil when netlink could not be opened
	states  map[string]stateRecord
	touched map[IPTables]bool // tables a rule was removed from
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
	inv := &inventory{netns: netns, entries: map[string]*entry{}, touched: map[IPTables]bool{}}
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
			inv.tables = append(inv.tables, ipt)
			for _, chain := range []string{ChainOut, ChainIn} {
				ok, err := ipt.ChainExists(TableFilter, chain)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: checking chain %s: %w", b.Command(v6), chain, err))
					continue
				}
				if !ok {
					continue
				}
				lines, err := ipt.ListWithCounters(TableFilter, chain)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: listing %s: %w", b.Command(v6), chain, err))
					continue
				}
				for _, l := range lines {
					r, ok := parseRule(l)
					if !ok {
						continue
					}
					loc := located{ipt: ipt, backend: b.Name, v6: v6, rule: r}
					if id := r.ID(); id != "" {
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
			id := routeIDOf(r)
			if id == "" {
				id = "route-" + r.Dst.String()
			}
			e := inv.get(id)
			e.routes = append(e.routes, r)
		}
	}
	inv.states = m.readStates(netns)
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
		if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) {
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
	for _, l := range splitLines(string(b)) {
		if l == TableFilter {
			return true
		}
	}
	return false
}

// fault turns an inventory entry into a Fault.
func (e *entry) fault(netns string) Fault {
	f := Fault{ID: e.id}
	var parsed []parsedRule
	for _, l := range e.rules {
		parsed = append(parsed, l.rule)
		f.Packets += l.rule.Packets
		f.Bytes += l.rule.Bytes
	}
	if len(e.rules) > 0 {
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
func (e *entry) live() bool { return len(e.rules) > 0 || len(e.routes) > 0 }

// List returns nfslab's faults in netns, oldest first, with counters.
func (m *Manager) List(ctx context.Context, netns string) ([]Fault, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, err := m.scan(ctx, netns)
	if inv == nil {
		return nil, err
	}
	if inv.handle != nil {
		inv.handle.Close()
	}
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
		l := e.rules[i]
		inv.touched[l.ipt] = true
		if err := l.ipt.Delete(TableFilter, l.rule.Chain, l.rule.Args...); err != nil && !notExist(err) {
			errs = append(errs, fmt.Errorf("removing rule of %s from %s: %w", e.id, l.rule.Chain, err))
		}
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
		if err := m.removeState(inv.netns, e.id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finish removes empty chains (in every table looked at when all is set,
// else only where rules were removed) and closes the netlink handle.
func (m *Manager) finish(inv *inventory, all bool) {
	for _, t := range inv.tables {
		if all || inv.touched[t] {
			m.cleanupChains(t)
		}
	}
	if inv.handle != nil {
		inv.handle.Close()
	}
}

// Heal removes one fault; ErrNotFound if netns has none with that ID.
func (m *Manager) Heal(ctx context.Context, netns, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
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
		l := inv.strays[i]
		inv.touched[l.ipt] = true
		if err := l.ipt.Delete(TableFilter, l.rule.Chain, l.rule.Args...); err != nil && !notExist(err) {
			errs = append(errs, fmt.Errorf("removing untagged rule from %s: %w", l.rule.Chain, err))
		}
	}
	return errors.Join(errs...)
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

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '\n' {
			if l := trimSpace(s[start:i]); l != "" {
				out = append(out, l)
			}
			start = i + 1
		}
	}
	return out
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
