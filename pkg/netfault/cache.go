package netfault

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nfslab/nfslab/internal/ownchain"
)

// What a Manager remembers between calls, so that a long-lived Manager
// applies and heals one fault with one iptables process each:
//
//   - ready: nfslab's chain exists in a table and the jump to it was rule 1
//     of the built-in chain when last checked. Established by a real check
//     (one `iptables -S OUTPUT`) on first use; dropped on any error, when a
//     chain is removed, and when EnsureJumps finds it gone.
//   - known: the exact rule specs (or the route) of faults this Manager
//     applied. Heal deletes by spec (`iptables -D CHAIN <spec>`, what the
//     raw tool does too) instead of listing nfslab's chains to find the
//     rule by its tag. Faults applied by another process are rendered from
//     their state file the same way; without one, or when the delete says
//     "not found", Heal falls back to scanning the kernel.

type tableKey struct {
	netns   string
	backend string
	v6      bool
}

type chainKey struct {
	tableKey
	chain string
}

type faultKey struct{ netns, id string }

// appliedFault is what Heal needs to remove a fault without a scan.
type appliedFault struct {
	backend Backend
	v6      bool
	rules   []ruleSpec // creation order; nil for a route fault
	route   bool
}

// JumpKeeper is implemented by injectors whose hot path trusts a cache of
// nfslab's jumps (Manager with Options.LongLived). A daemon calls
// EnsureJumps periodically, e.g. every second, for each namespace it
// manages.
type JumpKeeper interface {
	EnsureJumps(ctx context.Context, netns string) error
}

var _ JumpKeeper = (*Manager)(nil)

// ownedChain is nfslab's chain of that name: NFSLAB-SHAPE in mangle, the
// others in filter.
func ownedChain(name string) ownchain.Chain {
	if name == ChainShape {
		return shapeChain()
	}
	return chainFor(name)
}

func (m *Manager) tableFor(netns string, b Backend, v6 bool) tableKey {
	return tableKey{netns: netns, backend: b.Name, v6: v6}
}

// forgetTable drops what is cached about a table's chains.
func (m *Manager) forgetTable(tk tableKey) {
	delete(m.ready, chainKey{tk, ChainOut})
	delete(m.ready, chainKey{tk, ChainIn})
	delete(m.ready, chainKey{tk, ChainShape})
}

// prepareChain makes chain exist and its jump rule 1 of the built-in
// chain, and records that in the cache.
func (m *Manager) prepareChain(ipt IPTables, ck chainKey) error {
	if _, err := ownedChain(ck.chain).EnsureJump(ipt, true); err != nil {
		delete(m.ready, ck)
		return err
	}
	m.ready[ck] = true
	m.used[ck.tableKey] = true
	return nil
}

// EnsureJumps puts nfslab's jumps back at position 1 of OUTPUT/INPUT in
// netns for every chain this Manager set up there, and restores a jump
// that another tool removed while the chain (and its faults) stayed. A
// long-lived Manager's Apply trusts its cache and does not re-check the
// jump, so a daemon calls this periodically (every second is cheap: one
// `iptables -S OUTPUT` per chain in use, none when nothing was applied).
// A chain found gone is forgotten; the next Apply creates it again.
//
// Equivalent to: `iptables -S OUTPUT`, and when the jump is not first,
// `iptables -D OUTPUT -m comment --comment nfslab -j NFSLAB-OUTPUT;
// iptables -I OUTPUT 1 -m comment --comment nfslab -j NFSLAB-OUTPUT`.
func (m *Manager) EnsureJumps(ctx context.Context, netns string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []chainKey
	for ck, ok := range m.ready {
		if ok && ck.netns == netns {
			keys = append(keys, ck)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.backend != b.backend {
			return a.backend < b.backend
		}
		if a.v6 != b.v6 {
			return !a.v6
		}
		return a.chain > b.chain // OUTPUT before INPUT
	})
	var errs []error
	for _, ck := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, ok := m.backend(ck.backend)
		if !ok {
			delete(m.ready, ck)
			continue
		}
		ipt, err := m.opts.IPTablesFactory(netns, b, ck.v6)
		if err != nil {
			delete(m.ready, ck)
			errs = append(errs, fmt.Errorf("opening %s: %w", b.Command(ck.v6), err))
			continue
		}
		present, err := ownedChain(ck.chain).EnsureJump(ipt, false)
		if err != nil || !present {
			delete(m.ready, ck)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s in namespace %q: %w", b.Command(ck.v6), netns, err))
		}
	}
	return errors.Join(errs...)
}

// keepsChains reports whether Heal leaves chains it emptied in a table:
// only a LongLived Manager does, and only where it set them up itself.
func (m *Manager) keepsChains(tk tableKey) bool {
	return m.opts.LongLived && m.used[tk]
}

func (m *Manager) backend(name string) (Backend, bool) {
	for _, b := range m.opts.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return Backend{}, false
}

// Close removes nfslab's chains that are empty, with their jumps, in every
// table this Manager set up, and forgets its caches. Faults stay: they
// expire in the kernel on their own. A LongLived Manager keeps empty
// chains for the next Apply, so its owner calls Close at exit; for other
// Managers it is a cheap no-op when Heal already removed them.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for tk := range m.used {
		b, ok := m.backend(tk.backend)
		if !ok {
			continue
		}
		ipt, err := m.opts.IPTablesFactory(tk.netns, b, tk.v6)
		if err != nil {
			errs = append(errs, fmt.Errorf("opening %s: %w", b.Command(tk.v6), err))
			continue
		}
		var chains []string
		for _, c := range []string{ChainOut, ChainIn} {
			if m.ready[chainKey{tk, c}] || !m.opts.LongLived {
				chains = append(chains, c)
			}
		}
		m.cleanupChains(ipt, chains...)
		if m.ready[chainKey{tk, ChainShape}] {
			if _, err := shapeChain().RemoveIfEmpty(ipt); err != nil {
				errs = append(errs, fmt.Errorf("removing chain %s: %w", ChainShape, err))
			}
		}
	}
	clear(m.used)
	clear(m.ready)
	clear(m.known)
	return errors.Join(errs...)
}

// knownFault returns how to remove fault id without a scan: from what this
// Manager applied, else from the fault's state file.
func (m *Manager) knownFault(netns, id string) (appliedFault, bool) {
	if af, ok := m.known[faultKey{netns, id}]; ok {
		return af, true
	}
	if !isFaultID(id) {
		return appliedFault{}, false // not a file name nfslab wrote
	}
	rec, ok := m.readState(netns, id)
	if !ok || rec.ID != id {
		return appliedFault{}, false
	}
	if rec.Spec.IsShape() {
		return appliedFault{}, false // found by a scan (shape.go)
	}
	if !rec.Spec.IsRule() {
		return appliedFault{route: true}, true
	}
	rules, err := renderRules(id, rec.Spec, rec.Expires)
	if err != nil || len(rules) == 0 {
		return appliedFault{}, false
	}
	// The record does not say which backend; Apply always uses the first.
	return appliedFault{backend: m.opts.Backends[0], v6: rules[0].V6, rules: rules}, true
}

// healKnown removes a fault whose objects it knows: its rules by spec (one
// `iptables -D` each) or its route by ID. done is false when the scan must
// decide: the fault is unknown, or an object was not where it was put
// (removed behind nfslab's back, or in another backend).
func (m *Manager) healKnown(netns, id string) (done bool, err error) {
	af, ok := m.knownFault(netns, id)
	if !ok {
		return false, nil
	}
	if af.route {
		return m.healRouteByID(netns, id)
	}
	tk := m.tableFor(netns, af.backend, af.v6)
	ipt, err := m.opts.IPTablesFactory(netns, af.backend, af.v6)
	if err != nil {
		return false, nil
	}
	var chains []string
	for i := len(af.rules) - 1; i >= 0; i-- {
		r := af.rules[i]
		if err := ipt.Delete(TableFilter, r.Chain, r.Args...); err != nil {
			delete(m.ready, chainKey{tk, r.Chain})
			if ownchain.NotExist(err) {
				return false, nil
			}
			return true, fmt.Errorf("healing %s: removing rule from %s: %w", id, r.Chain, err)
		}
		chains = append(chains, r.Chain)
	}
	delete(m.known, faultKey{netns, id})
	if err := m.removeState(netns, id); err != nil {
		return true, fmt.Errorf("healing %s: %w", id, err)
	}
	if !m.keepsChains(tk) && m.cleanupChains(ipt, chains...) {
		m.forgetTable(tk)
	}
	return true, nil
}

// healRouteByID removes the route of fault id found among nfslab's routes
// (a netlink dump, no process).
func (m *Manager) healRouteByID(netns, id string) (bool, error) {
	h, err := m.opts.RouteHandleFactory(netns)
	if err != nil {
		return false, nil
	}
	defer h.Close()
	routes, err := listRoutes(h)
	if err != nil {
		return false, nil
	}
	for _, r := range routes {
		if routeIDOf(r) != id {
			continue
		}
		if err := h.RouteDel(&r); err != nil {
			if routeGone(err) {
				return false, nil
			}
			return true, fmt.Errorf("healing %s: removing route %s: %w", id, r.Dst, err)
		}
		delete(m.known, faultKey{netns, id})
		if err := m.removeState(netns, id); err != nil {
			return true, fmt.Errorf("healing %s: %w", id, err)
		}
		return true, nil
	}
	return false, nil
}

// isFaultID reports whether id has the shape of nfslab's IDs: 8 lowercase
// hex digits.
func isFaultID(id string) bool {
	if len(id) != 8 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
