package netfault

import (
	"io/fs"
	"log/slog"

	"github.com/vishvananda/netlink"

	"github.com/nfslab/nfslab/internal/ownchain"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/clock"
)

// IPTables is the part of *iptables.IPTables (github.com/coreos/go-iptables)
// that nfslab uses. Each value acts in one network namespace, one address
// family and one backend (nft or legacy).
type IPTables = ownchain.IPTables

// RouteHandle is the part of *netlink.Handle (github.com/vishvananda/netlink)
// that nfslab uses; one handle acts in one network namespace.
type RouteHandle interface {
	RouteAdd(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	Close()
}

// Backend is one iptables implementation: the commands for IPv4 and IPv6.
type Backend = ownchain.Backend

// Options configure a Manager. Zero values give the real kernel.
type Options struct {
	Clock  clock.Clock  // default clock.Real{}
	Logger *slog.Logger // default slog.Default()
	// StateDir keeps each fault's metadata (created, label, spec) so that
	// it survives a crash; default /run/nfslab/state.
	StateDir string
	// Backends in order of preference; Apply uses the first, List, Heal,
	// HealAll and Sweep look in all. Default: the machine's `iptables`
	// and, if it is a different program, `iptables-legacy`.
	Backends []Backend
	// IPTablesFactory returns an IPTables acting in netns ("" = own) for a
	// backend and family. Default: go-iptables run on a thread inside netns.
	IPTablesFactory func(netns string, b Backend, v6 bool) (IPTables, error)
	// RouteHandleFactory returns a netlink handle in netns. Default:
	// netlink.NewHandleAt.
	RouteHandleFactory func(netns string) (RouteHandle, error)
	// ShapeHandleFactory returns a netlink handle in netns for the qdiscs,
	// classes, filters and ifb devices of delay and limit faults. Default:
	// netlink.NewHandleAt.
	ShapeHandleFactory func(netns string) (ShapeHandle, error)
	// NetFile reads /proc/net/NAME as seen from netns (tcp, tcp6,
	// ip_tables_names, ...). Default reads it from a thread inside netns.
	NetFile func(netns, name string) ([]byte, error)
	// Conntrack reads the connection tracking table for Diagnose;
	// default ctnetlink opened inside the namespace.
	Conntrack Conntrack
	// NFTables reads the nftables ruleset for Diagnose; default
	// `nft -j list ruleset` run inside the namespace.
	NFTables NFTables
	// LongLived is for a Manager that lives as long as a daemon. Apply
	// then trusts its cache that nfslab's chain and jump exist (one
	// `iptables -A` per rule; a missing chain is noticed from the error
	// and set up again) instead of checking the jump every time, and Heal
	// leaves chains it emptied for the next Apply. The owner calls
	// EnsureJumps periodically (another tool may insert above the jump)
	// and Close at exit; HealAll and Sweep remove empty chains as always.
	// Without it every Apply checks the jump (one more `iptables -S`) and
	// Heal removes the chains it emptied, so a short-lived process leaves
	// nothing behind.
	LongLived bool
	// RootFS is the host file system, used by Diagnose for /proc/PID/fd and
	// /sys/module/nfs; default os.DirFS("/").
	RootFS fs.FS
	// NetnsID names a namespace by its identity, for the state directory:
	// "" is the caller's own. Default: "net-DEV-INO" of the nsfs inode of
	// /proc/thread-self/ns/net or /run/netns/NAME.
	NetnsID func(netns string) (string, error)
	// Processes is the process table in which recorded reapers are
	// identified (PID and start time) and ended (SIGTERM); default /proc
	// and real signals.
	Processes proctrack.Procs
}
