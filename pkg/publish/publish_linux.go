package publish

import (
	"fmt"
	"os"
	"strings"

	"github.com/coreos/go-iptables/iptables"

	"github.com/nfslab/nfslab/internal/netnsdo"
)

// newIPTables is the default factory: go-iptables for `iptables` (IPv4),
// each call run on a thread inside the namespace (the child iptables
// inherits it).
func newIPTables(ns string) (IPTables, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(10))
	if err != nil {
		return nil, err
	}
	if ns == "" {
		return ipt, nil
	}
	return nsIPTables{ipt: ipt, ns: ns}, nil
}

type nsIPTables struct {
	ipt *iptables.IPTables
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
func (n nsIPTables) List(table, chain string) (out []string, err error) {
	err = netnsdo.Do(n.ns, func() error { out, err = n.ipt.List(table, chain); return err })
	return out, err
}
func (n nsIPTables) ListChains(table string) (out []string, err error) {
	err = netnsdo.Do(n.ns, func() error { out, err = n.ipt.ListChains(table); return err })
	return out, err
}
func (n nsIPTables) NewChain(table, chain string) error {
	return netnsdo.Do(n.ns, func() error { return n.ipt.NewChain(table, chain) })
}
func (n nsIPTables) DeleteChain(table, chain string) error {
	return netnsdo.Do(n.ns, func() error { return n.ipt.DeleteChain(table, chain) })
}

// procSysctl reads and writes /proc/sys from a thread inside the namespace:
// /proc/sys/net resolves to the network namespace of the task that opens it.
type procSysctl struct{}

func sysctlPath(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

func (procSysctl) Get(ns, key string) (string, error) {
	var v string
	err := netnsdo.Do(ns, func() error {
		b, err := os.ReadFile(sysctlPath(key))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", key, err)
	}
	return v, nil
}

func (procSysctl) Set(ns, key, value string) error {
	err := netnsdo.Do(ns, func() error { return os.WriteFile(sysctlPath(key), []byte(value+"\n"), 0o644) })
	if err != nil {
		return fmt.Errorf("writing %s=%s: %w", key, value, err)
	}
	return nil
}
