package netfault

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/nfslab/nfslab/internal/netnsdo"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetns runs fn inside /run/netns/name ("" runs fn directly). Child
// processes started by fn (iptables) inherit the thread's namespace.
func inNetns(name string, fn func() error) error { return netnsdo.Do(name, fn) }

// readNetFile reads /proc/net/NAME as seen from netns.
func readNetFile(ns, name string) ([]byte, error) {
	var b []byte
	err := inNetns(ns, func() error {
		var err error
		b, err = os.ReadFile(filepath.Join("/proc/thread-self/net", name))
		return err
	})
	return b, err
}

// newIPTablesFactory returns the default factory: one go-iptables value per
// command (it runs `iptables --version` once), wrapped so each call runs
// inside the namespace.
func newIPTablesFactory() func(string, Backend, bool) (IPTables, error) {
	var mu sync.Mutex
	cache := map[string]*iptables.IPTables{}
	return func(ns string, b Backend, v6 bool) (IPTables, error) {
		cmd := b.Command(v6)
		mu.Lock()
		defer mu.Unlock()
		ipt := cache[cmd]
		if ipt == nil {
			proto := iptables.ProtocolIPv4
			if v6 {
				proto = iptables.ProtocolIPv6
			}
			var err error
			ipt, err = iptables.New(iptables.IPFamily(proto), iptables.Path(cmd), iptables.Timeout(10))
			if err != nil {
				return nil, err
			}
			cache[cmd] = ipt
		}
		if ns == "" {
			return ipt, nil
		}
		return nsIPTables{ipt: ipt, ns: ns}, nil
	}
}

// nsIPTables runs every call of an IPTables inside a network namespace.
type nsIPTables struct {
	ipt IPTables
	ns  string
}

func (n nsIPTables) Insert(table, chain string, pos int, spec ...string) error {
	return inNetns(n.ns, func() error { return n.ipt.Insert(table, chain, pos, spec...) })
}
func (n nsIPTables) Append(table, chain string, spec ...string) error {
	return inNetns(n.ns, func() error { return n.ipt.Append(table, chain, spec...) })
}
func (n nsIPTables) Delete(table, chain string, spec ...string) error {
	return inNetns(n.ns, func() error { return n.ipt.Delete(table, chain, spec...) })
}
func (n nsIPTables) Exists(table, chain string, spec ...string) (ok bool, err error) {
	err = inNetns(n.ns, func() error { ok, err = n.ipt.Exists(table, chain, spec...); return err })
	return ok, err
}
func (n nsIPTables) List(table, chain string) (out []string, err error) {
	err = inNetns(n.ns, func() error { out, err = n.ipt.List(table, chain); return err })
	return out, err
}
func (n nsIPTables) ListWithCounters(table, chain string) (out []string, err error) {
	err = inNetns(n.ns, func() error { out, err = n.ipt.ListWithCounters(table, chain); return err })
	return out, err
}
func (n nsIPTables) ListChains(table string) (out []string, err error) {
	err = inNetns(n.ns, func() error { out, err = n.ipt.ListChains(table); return err })
	return out, err
}
func (n nsIPTables) ChainExists(table, chain string) (ok bool, err error) {
	err = inNetns(n.ns, func() error { ok, err = n.ipt.ChainExists(table, chain); return err })
	return ok, err
}
func (n nsIPTables) NewChain(table, chain string) error {
	return inNetns(n.ns, func() error { return n.ipt.NewChain(table, chain) })
}
func (n nsIPTables) DeleteChain(table, chain string) error {
	return inNetns(n.ns, func() error { return n.ipt.DeleteChain(table, chain) })
}

// newRouteHandle opens a netlink handle in ns ("" = the caller's).
func newRouteHandle(ns string) (RouteHandle, error) {
	if ns == "" {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", ns, err)
	}
	defer h.Close()
	return netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
}

// dumpInterrupted reports whether a netlink dump must be retried because
// the table changed while it was read.
func dumpInterrupted(err error) bool { return errors.Is(err, netlink.ErrDumpInterrupted) }

// routeGone reports whether a route delete failed because it is gone.
func routeGone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}

// detectBackends returns the machine's iptables and, if it is a different
// program, iptables-legacy.
func detectBackends() []Backend {
	var out []Backend
	main, err := exec.LookPath("iptables")
	mainReal := ""
	if err == nil {
		mainReal, _ = filepath.EvalSymlinks(main)
		name := "nft"
		if filepath.Base(mainReal) == "xtables-legacy-multi" || filepath.Base(mainReal) == "iptables-legacy" {
			name = "legacy"
		}
		out = append(out, Backend{Name: name, IPv4: "iptables", IPv6: "ip6tables", Legacy: name == "legacy"})
	}
	if leg, err := exec.LookPath("iptables-legacy"); err == nil {
		legReal, _ := filepath.EvalSymlinks(leg)
		if legReal != mainReal {
			out = append(out, Backend{Name: "legacy", IPv4: "iptables-legacy", IPv6: "ip6tables-legacy", Legacy: true})
		}
	}
	return out
}
