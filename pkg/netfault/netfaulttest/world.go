package netfaulttest

import (
	"io/fs"
	"log/slog"
	"sync"
	"testing/fstest"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Backends are the two backends a World knows: nft (iptables, ip6tables)
// and legacy (iptables-legacy, ip6tables-legacy).
var Backends = []netfault.Backend{
	{Name: "nft", IPv4: "iptables", IPv6: "ip6tables"},
	{Name: "legacy", IPv4: "iptables-legacy", IPv6: "ip6tables-legacy", Legacy: true},
}

// World is a set of fake namespaces, each with its fake iptables (per
// command) and route handle, fake /proc/net files and a fake root file
// system.
type World struct {
	mu     sync.Mutex
	ipt    map[[2]string]*IPTables
	routes map[string]*Routes
	shapes map[string]*Shape
	// NetFiles holds /proc/net contents keyed by [netns, name]; a missing
	// entry reads as fs.ErrNotExist. Set legacy tables present with
	// w.SetNetFile(ns, "ip_tables_names", "filter\n").
	netFiles map[[2]string][]byte
	// Root is the fake host file system used by Diagnose.
	Root fstest.MapFS
	// Procs is the fake process table that reapers are recorded in.
	Procs *Procs
	// Conntrack and NFT are the fake conntrack table and nft that
	// Diagnose reads.
	Conntrack *Conntrack
	NFT       *NFTables
	// netnsIDs maps a namespace name to its identity; see SetNetnsID.
	netnsIDs map[string]string
}

// NewWorld returns an empty world.
func NewWorld() *World {
	return &World{
		ipt:      map[[2]string]*IPTables{},
		routes:   map[string]*Routes{},
		shapes:   map[string]*Shape{},
		netFiles: map[[2]string][]byte{},
		Root:     fstest.MapFS{},
		Procs:    NewProcs(),
		netnsIDs: map[string]string{},
		// The sources Diagnose reads besides iptables and /proc.
		Conntrack: NewConntrack(),
		NFT:       NewNFTables(),
	}
}

// SetNetnsID makes netns ("" = the caller's own) a namespace of identity
// id, as if the caller had moved (unshare -n) or the name now pointed to
// another namespace. By default each name is its own namespace.
func (w *World) SetNetnsID(netns, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.netnsIDs[netns] = id
}

// NetnsID implements netfault.Options.NetnsID.
func (w *World) NetnsID(netns string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id, ok := w.netnsIDs[netns]; ok {
		return id, nil
	}
	if netns == "" {
		return "fake-self", nil
	}
	return "fake-" + netns, nil
}

// IPTables returns the fake for command cmd in netns, creating it.
func (w *World) IPTables(netns, cmd string) *IPTables {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]string{netns, cmd}
	f := w.ipt[k]
	if f == nil {
		f = NewIPTables(cmd)
		w.ipt[k] = f
	}
	return f
}

// Routes returns the fake route handle of netns, creating it.
func (w *World) Routes(netns string) *Routes {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.routes[netns]
	if r == nil {
		r = &Routes{}
		w.routes[netns] = r
	}
	return r
}

// Shape returns the fake qdisc handle of netns, creating it (NewShape).
func (w *World) Shape(netns string) *Shape {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.shapes[netns]
	if s == nil {
		s = NewShape()
		w.shapes[netns] = s
	}
	return s
}

// ShapeHandleFactory implements netfault.Options.ShapeHandleFactory.
func (w *World) ShapeHandleFactory(netns string) (netfault.ShapeHandle, error) {
	return w.Shape(netns), nil
}

// SetNetFile sets /proc/net/NAME as seen from netns.
func (w *World) SetNetFile(netns, name, content string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.netFiles[[2]string{netns, name}] = []byte(content)
}

// NetFile implements netfault.Options.NetFile.
func (w *World) NetFile(netns, name string) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.netFiles[[2]string{netns, name}]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return b, nil
}

// IPTablesFactory implements netfault.Options.IPTablesFactory.
func (w *World) IPTablesFactory(netns string, b netfault.Backend, v6 bool) (netfault.IPTables, error) {
	return w.IPTables(netns, b.Command(v6)), nil
}

// RouteHandleFactory implements netfault.Options.RouteHandleFactory.
func (w *World) RouteHandleFactory(netns string) (netfault.RouteHandle, error) {
	return w.Routes(netns), nil
}

// Options returns netfault.Options wired to the world, with the given clock
// and state directory and a logger that discards.
func (w *World) Options(clk clock.Clock, stateDir string) netfault.Options {
	return netfault.Options{
		Clock:              clk,
		Logger:             slog.New(slog.NewTextHandler(discard{}, nil)),
		StateDir:           stateDir,
		Backends:           Backends,
		IPTablesFactory:    w.IPTablesFactory,
		RouteHandleFactory: w.RouteHandleFactory,
		ShapeHandleFactory: w.ShapeHandleFactory,
		NetFile:            w.NetFile,
		RootFS:             w.Root,
		NetnsID:            w.NetnsID,
		Processes:          w.Procs,
		Conntrack:          w.Conntrack,
		NFTables:           w.NFT,
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
