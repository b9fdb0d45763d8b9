package netfaulttest

import (
	"slices"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Routes is a fake netlink handle for one namespace. It satisfies
// netfault.RouteHandle and fails like the kernel: EEXIST when a route to
// the same destination already exists in the table, ESRCH when deleting a
// route that does not.
type Routes struct {
	mu     sync.Mutex
	routes []netlink.Route
	// Addrs is what AddrList returns (the namespace's local addresses).
	Addrs []netlink.Addr
	// Hook, when set, runs before RouteAdd/RouteDel; a non-nil error is
	// returned instead.
	Hook   func(op string, r *netlink.Route) error
	Closed int
}

func sameKey(a, b netlink.Route) bool {
	table := func(t int) int {
		if t == 0 {
			return 254
		}
		return t
	}
	return a.Dst != nil && b.Dst != nil && a.Dst.String() == b.Dst.String() &&
		table(a.Table) == table(b.Table) && a.Priority == b.Priority && a.Tos == b.Tos
}

func (r *Routes) RouteAdd(route *netlink.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Hook != nil {
		if err := r.Hook("RouteAdd", route); err != nil {
			return err
		}
	}
	if route.Dst == nil {
		return syscall.EINVAL
	}
	for _, x := range r.routes {
		if sameKey(x, *route) {
			return syscall.EEXIST
		}
	}
	c := *route
	if c.Table == 0 {
		c.Table = 254
	}
	r.routes = append(r.routes, c)
	return nil
}

func (r *Routes) RouteDel(route *netlink.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Hook != nil {
		if err := r.Hook("RouteDel", route); err != nil {
			return err
		}
	}
	for i, x := range r.routes {
		if sameKey(x, *route) && (route.Type == 0 || route.Type == x.Type) {
			r.routes = slices.Delete(r.routes, i, i+1)
			return nil
		}
	}
	return syscall.ESRCH
}

func (r *Routes) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netlink.Route
	for _, x := range r.routes {
		if family != 0 && family != x.Family {
			continue
		}
		if filter != nil {
			if mask&netlink.RT_FILTER_PROTOCOL != 0 && x.Protocol != filter.Protocol {
				continue
			}
			if mask&netlink.RT_FILTER_TABLE != 0 && filter.Table != 0 && x.Table != filter.Table {
				continue
			}
			if mask&netlink.RT_FILTER_TYPE != 0 && x.Type != filter.Type {
				continue
			}
		}
		out = append(out, x)
	}
	return out, nil
}

func (r *Routes) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.Addrs), nil
}

// Close counts closes; the fake stays usable (the World hands out the same
// handle again).
func (r *Routes) Close() {
	r.mu.Lock()
	r.Closed++
	r.mu.Unlock()
}

// All returns a copy of every route.
func (r *Routes) All() []netlink.Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.routes)
}
