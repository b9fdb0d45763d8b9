package netfault

import (
	"context"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
)

// A route has no kernel expiry, so the direct path (no daemon) starts a
// reaper process per route fault that heals it when it expires. These
// methods keep that process tied to its one fault: the reaper records
// itself in the fault's state record, whatever removes the fault (Heal,
// HealAll, Sweep, in any process) ends it, and it removes only the fault it
// was started for, named by ID and creation time.

// Reaped is what a reaper process needs of the injector; Manager
// implements it.
type Reaped interface {
	// AttachReaper records pid as the reaper of fault id, created at
	// created, in netns. ErrNotFound when that fault is gone (or another
	// fault holds the ID): the reaper has nothing to do.
	AttachReaper(ctx context.Context, netns, id string, created time.Time, pid int) error
	// Current reports whether fault id, created at created, is still
	// recorded in netns.
	Current(netns, id string, created time.Time) bool
	// Expire heals fault id if it is the one created at created;
	// ErrNotFound otherwise.
	Expire(ctx context.Context, netns, id string, created time.Time) error
}

var _ Reaped = (*Manager)(nil)

func (m *Manager) current(netns, id string, created time.Time) (stateRecord, bool) {
	rec, ok := m.readState(netns, id)
	return rec, ok && rec.Created.Equal(created)
}

// Current reports whether fault id, created at created, is still recorded.
func (m *Manager) Current(netns, id string, created time.Time) bool {
	_, ok := m.current(netns, id, created)
	return ok
}

// AttachReaper records pid (with its start time) as the reaper of the
// fault. The record is written first and the kernel checked after: a heal
// that removes the route meanwhile reads the record after the route is gone,
// so either it sees the reaper and ends it, or this check sees no route and
// the reaper exits by itself.
func (m *Manager) AttachReaper(ctx context.Context, netns, id string, created time.Time, pid int) error {
	p, err := proctrack.Of(m.opts.Processes, pid)
	if err != nil {
		return fmt.Errorf("identifying reaper process %d: %w", pid, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.current(netns, id, created)
	if !ok {
		return fmt.Errorf("fault %s created %s: %w", id, created.Format(time.RFC3339Nano), ErrNotFound)
	}
	rec.Reaper = &p
	if err := m.writeState(rec); err != nil {
		return err
	}
	if rec.Spec.KernelExpiry() {
		return nil
	}
	live, err := m.faultLive(ctx, netns, id, rec.Spec)
	if err != nil {
		return err
	}
	if !live {
		if _, still := m.current(netns, id, created); still {
			_ = m.removeState(netns, id) // healed behind our back: stale
		}
		return fmt.Errorf("fault %s: route gone: %w", id, ErrNotFound)
	}
	return nil
}

// Expire heals fault id only when it is the fault created at created: a
// reaper of an earlier fault never removes a later one.
func (m *Manager) Expire(ctx context.Context, netns, id string, created time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.current(netns, id, created); !ok {
		return fmt.Errorf("fault %s created %s: %w", id, created.Format(time.RFC3339Nano), ErrNotFound)
	}
	return m.heal(ctx, netns, id)
}

// faultLive reports whether fault id still has kernel objects in netns.
func (m *Manager) faultLive(ctx context.Context, netns, id string, spec Spec) (bool, error) {
	if !spec.IsShape() {
		return m.routeLive(ctx, netns, id)
	}
	inv, err := m.scan(ctx, netns)
	if inv == nil {
		return false, err
	}
	defer inv.close()
	e := inv.entries[id]
	return e != nil && e.live(), nil
}

// routeLive reports whether nfslab's route of fault id exists in netns.
func (m *Manager) routeLive(ctx context.Context, netns, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	h, err := m.opts.RouteHandleFactory(netns)
	if err != nil {
		return false, fmt.Errorf("opening netlink in namespace %q: %w", netns, err)
	}
	defer h.Close()
	routes, err := listRoutes(h)
	if err != nil {
		return false, err
	}
	for _, r := range routes {
		if routeIDOf(r) == id {
			return true, nil
		}
	}
	return false, nil
}
