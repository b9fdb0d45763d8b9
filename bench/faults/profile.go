package main

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"

	"github.com/nfslab/nfslab/pkg/netfault"
)

// execCounter counts the iptables calls (each one exec of iptables) the
// Manager makes, per method, so the report can say where the time goes.
type execCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *execCounter) add(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

func (c *execCounter) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	total := 0
	for k, v := range c.n {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		total += v
	}
	sort.Strings(parts)
	c.n = map[string]int{}
	return fmt.Sprintf("%d execs (%s)", total, strings.Join(parts, " "))
}

func (c *execCounter) wrap(f func(string, netfault.Backend, bool) (netfault.IPTables, error)) func(string, netfault.Backend, bool) (netfault.IPTables, error) {
	return func(ns string, b netfault.Backend, v6 bool) (netfault.IPTables, error) {
		ipt, err := f(ns, b, v6)
		if err != nil {
			return nil, err
		}
		return countingIPT{ipt, c, b.Command(v6)}, nil
	}
}

type countingIPT struct {
	ipt netfault.IPTables
	c   *execCounter
	cmd string
}

func (x countingIPT) op(name string) { x.c.add(x.cmd + "." + name) }

func (x countingIPT) Insert(t, ch string, pos int, s ...string) error {
	x.op("Insert")
	return x.ipt.Insert(t, ch, pos, s...)
}
func (x countingIPT) Append(t, ch string, s ...string) error {
	x.op("Append")
	return x.ipt.Append(t, ch, s...)
}
func (x countingIPT) Delete(t, ch string, s ...string) error {
	x.op("Delete")
	return x.ipt.Delete(t, ch, s...)
}
func (x countingIPT) Exists(t, ch string, s ...string) (bool, error) {
	x.op("Exists")
	return x.ipt.Exists(t, ch, s...)
}
func (x countingIPT) List(t, ch string) ([]string, error) {
	x.op("List")
	return x.ipt.List(t, ch)
}
func (x countingIPT) ListWithCounters(t, ch string) ([]string, error) {
	x.op("ListWithCounters")
	return x.ipt.ListWithCounters(t, ch)
}
func (x countingIPT) ListChains(t string) ([]string, error) {
	x.op("ListChains")
	return x.ipt.ListChains(t)
}
func (x countingIPT) ChainExists(t, ch string) (bool, error) {
	x.op("ChainExists")
	return x.ipt.ChainExists(t, ch)
}
func (x countingIPT) NewChain(t, ch string) error {
	x.op("NewChain")
	return x.ipt.NewChain(t, ch)
}
func (x countingIPT) DeleteChain(t, ch string) error {
	x.op("DeleteChain")
	return x.ipt.DeleteChain(t, ch)
}

// goIPTablesFactory is go-iptables for the current namespace, as the
// Manager uses it (the bench runs inside its namespace, so netns is "").
func goIPTablesFactory() func(string, netfault.Backend, bool) (netfault.IPTables, error) {
	var mu sync.Mutex
	cache := map[string]*iptables.IPTables{}
	return func(ns string, b netfault.Backend, v6 bool) (netfault.IPTables, error) {
		if ns != "" {
			return nil, fmt.Errorf("bench runs in its namespace, got netns %q", ns)
		}
		mu.Lock()
		defer mu.Unlock()
		cmd := b.Command(v6)
		if ipt := cache[cmd]; ipt != nil {
			return ipt, nil
		}
		proto := iptables.ProtocolIPv4
		if v6 {
			proto = iptables.ProtocolIPv6
		}
		ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Path(cmd), iptables.Timeout(10))
		if err != nil {
			return nil, err
		}
		cache[cmd] = ipt
		return ipt, nil
	}
}
