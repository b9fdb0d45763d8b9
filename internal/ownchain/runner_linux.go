package ownchain

import (
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/coreos/go-iptables/iptables"

	"github.com/nfslab/nfslab/internal/netnsdo"
)

// Factory returns an IPTables acting in netns ("" = the caller's own) for
// a backend and address family.
type Factory func(netns string, b Backend, v6 bool) (IPTables, error)

// NewFactory returns the real Factory: one go-iptables value per command
// (it runs `iptables --version` once), each call run on a thread inside
// the namespace so that the iptables child inherits it.
func NewFactory() Factory {
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
	return netnsdo.Do(n.ns, func() error { return n.ipt.Insert(table, chain, pos, spec...) })
}
func (n nsIPTables) Append(table, chain string, spec ...string) error {
	return netnsdo.Do(n.ns, func() error { return n.ipt.Append(table, chain, spec...) })
}
func (n nsIPTables) Delete(table, chain string, spec ...string) error {
	return netnsdo.Do(n.ns, func() error { return n.ipt.Delete(table, chain, spec...) })
}
func (n nsIPTables) Exists(table, chain string, spec ...string) (ok bool, err error) {
	err = netnsdo.Do(n.ns, func() error { ok, err = n.ipt.Exists(table, chain, spec...); return err })
	return ok, err
}
func (n nsIPTables) List(table, chain string) (out []string, err error) {
	err = netnsdo.Do(n.ns, func() error { out, err = n.ipt.List(table, chain); return err })
	return out, err
}
func (n nsIPTables) ListWithCounters(table, chain string) (out []string, err error) {
	err = netnsdo.Do(n.ns, func() error { out, err = n.ipt.ListWithCounters(table, chain); return err })
	return out, err
}
func (n nsIPTables) ListChains(table string) (out []string, err error) {
	err = netnsdo.Do(n.ns, func() error { out, err = n.ipt.ListChains(table); return err })
	return out, err
}
func (n nsIPTables) ChainExists(table, chain string) (ok bool, err error) {
	err = netnsdo.Do(n.ns, func() error { ok, err = n.ipt.ChainExists(table, chain); return err })
	return ok, err
}
func (n nsIPTables) NewChain(table, chain string) error {
	return netnsdo.Do(n.ns, func() error { return n.ipt.NewChain(table, chain) })
}
func (n nsIPTables) DeleteChain(table, chain string) error {
	return netnsdo.Do(n.ns, func() error { return n.ipt.DeleteChain(table, chain) })
}

// DetectBackends returns the machine's `iptables` (nft or legacy, by what
// it links to) and, if it is a different program, `iptables-legacy`.
func DetectBackends() []Backend {
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
