package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// measureShape times apply and heal of a delay (or, where the kernel has
// no netem, a limit) through netfault's Managers against raw tc and
// iptables commands that build the same objects: an htb root, a class
// (with a netem leaf for delay) and a CLASSIFY rule in mangle POSTROUTING.
// Each path has its own veth pair in the throwaway namespace, so the raw
// set-up never meets nfslab's. "steady" keeps one other fault (and for
// raw the root) in place, as in an experiment with more than one fault;
// "cold" builds and removes the root every time.
func measureShape(ns string, n int, kind string) error {
	ok, err := sameNetns(ns)
	if err != nil || !ok {
		return fmt.Errorf("refusing to measure: not inside namespace %s (%v)", ns, err)
	}
	ctx := context.Background()
	for _, c := range [][]string{
		{"link", "add", "nb0", "type", "veth", "peer", "name", "nb1"},
		{"link", "add", "nb2", "type", "veth", "peer", "name", "nb3"},
		{"link", "add", "nb4", "type", "veth", "peer", "name", "nb5"},
		{"addr", "add", "10.77.0.1/24", "dev", "nb0"},
		{"addr", "add", "10.78.0.1/24", "dev", "nb2"},
		{"addr", "add", "10.79.0.1/24", "dev", "nb4"},
	} {
		if err := cmdrun.Run(ctx, "ip", c...); err != nil {
			return err
		}
	}
	for _, d := range []string{"nb0", "nb1", "nb2", "nb3", "nb4", "nb5"} {
		if err := cmdrun.Run(ctx, "ip", "link", "set", d, "up"); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "nfslt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := netfault.NewManager(netfault.Options{Logger: logger, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		return err
	}
	long, err := netfault.NewManager(netfault.Options{Logger: logger, StateDir: filepath.Join(dir, "state-long"), LongLived: true})
	if err != nil {
		return err
	}
	defer long.Close()
	spec := func(dst string) netfault.Spec {
		s := netfault.Spec{Kind: netfault.Kind(kind), Dst: dst, Port: 2049, For: 15 * time.Minute}
		if kind == string(netfault.KindDelay) {
			s.Delay = 200 * time.Millisecond
		} else {
			s.Rate = 1_000_000
		}
		return s.WithDefaults()
	}
	stop := time.Now().Add(15 * time.Minute).UTC().Format("2006-01-02T15:04:05")
	rule := []string{"-d", "10.78.0.2/32", "-p", "tcp", "-m", "tcp", "--dport", "2049", "-m", "time", "--datestop", stop,
		"-m", "comment", "--comment", "nfslab-bench", "-j", "CLASSIFY", "--set-class", "1:1"}
	classArgs := []string{"class", "add", "dev", "nb2", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit", "ceil", "10gbit", "quantum", "60000"}
	if kind == string(netfault.KindLimit) {
		classArgs = []string{"class", "add", "dev", "nb2", "parent", "1:", "classid", "1:1", "htb", "rate", "1mbit", "ceil", "1mbit", "quantum", "60000"}
	}
	run := func(args ...string) error { return cmdrun.Run(ctx, args[0], args[1:]...) }
	rawApply := func(cold bool) error {
		if cold {
			if err := run("tc", "qdisc", "replace", "dev", "nb2", "root", "handle", "1:", "htb", "default", "0", "direct_qlen", "1000"); err != nil {
				return err
			}
		}
		if err := run(append([]string{"tc"}, classArgs...)...); err != nil {
			return err
		}
		if kind == string(netfault.KindDelay) {
			if err := run("tc", "qdisc", "add", "dev", "nb2", "parent", "1:1", "handle", "7e01:", "netem", "limit", "20000", "delay", "200ms"); err != nil {
				return err
			}
		}
		return run(append([]string{"iptables", "-w", "-t", "mangle", "-A", "POSTROUTING"}, rule...)...)
	}
	rawHeal := func(cold bool) error {
		if err := run(append([]string{"iptables", "-w", "-t", "mangle", "-D", "POSTROUTING"}, rule...)...); err != nil {
			return err
		}
		if cold {
			return run("tc", "qdisc", "del", "dev", "nb2", "root")
		}
		return run("tc", "class", "del", "dev", "nb2", "classid", "1:1")
	}
	type path struct {
		name         string
		apply, heal  *series
		applyF       func() (string, error)
		healF        func(id string) error
		steadyBefore func() (func() error, error)
	}
	timeIt := func(f func() error) (time.Duration, error) {
		t0 := time.Now()
		err := f()
		return time.Since(t0), err
	}
	results := map[string][2]*series{}
	for _, mode := range []string{"steady", "cold"} {
		cold := mode == "cold"
		keepers := []func() error{}
		if !cold {
			// One other fault on each path's device: root and chain exist.
			for _, m := range []*netfault.Manager{mgr, long} {
				dst := "10.77.0.99"
				if m == long {
					dst = "10.79.0.99"
				}
				f, err := m.Apply(ctx, spec(dst))
				if err != nil {
					return err
				}
				m, id := m, f.ID
				keepers = append(keepers, func() error { return m.Heal(ctx, "", id) })
			}
			if err := run("tc", "qdisc", "replace", "dev", "nb2", "root", "handle", "1:", "htb", "default", "0", "direct_qlen", "1000"); err != nil {
				return err
			}
			keepers = append(keepers, func() error { return run("tc", "qdisc", "del", "dev", "nb2", "root") })
		}
		keys := []string{"raw", "direct", "daemon-mgr"}
		for _, k := range keys {
			results[mode+" "+k] = [2]*series{{}, {}}
		}
		// The two Managers share the namespace's mangle chain: a cold heal
		// of the direct one removes it, which the daemon's Manager would
		// then notice on its next apply (a case real use never has, with
		// one Manager). So each has its own pass, raw interleaved with both.
		for _, p := range []struct {
			k   string
			m   *netfault.Manager
			dst string
		}{{"direct", mgr, "10.77.0.2"}, {"daemon-mgr", long, "10.79.0.2"}} {
			for i := 0; i < n+1; i++ { // the first round warms up and is dropped
				record := func(k string, a, h time.Duration) {
					if i > 0 {
						results[mode+" "+k][0].add(a)
						results[mode+" "+k][1].add(h)
					}
				}
				a, err := timeIt(func() error { return rawApply(cold) })
				if err != nil {
					return fmt.Errorf("raw apply: %w", err)
				}
				h, err := timeIt(func() error { return rawHeal(cold) })
				if err != nil {
					return fmt.Errorf("raw heal: %w", err)
				}
				record("raw", a, h)
				var id string
				a, err = timeIt(func() error {
					f, err := p.m.Apply(ctx, spec(p.dst))
					id = f.ID
					return err
				})
				if err != nil {
					return fmt.Errorf("%s apply: %w", p.k, err)
				}
				h, err = timeIt(func() error { return p.m.Heal(ctx, "", id) })
				if err != nil {
					return fmt.Errorf("%s heal: %w", p.k, err)
				}
				record(p.k, a, h)
			}
		}
		for i := len(keepers) - 1; i >= 0; i-- {
			if err := keepers[i](); err != nil {
				return err
			}
		}
	}
	ver, _ := cmdrun.Output(ctx, "iptables", "--version")
	fmt.Printf("nfslab %s fault vs raw tc + iptables, %d iterations, %s, %s\n", kind, n, strings.TrimSpace(string(ver)), time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("%-18s %10s %10s %10s %10s %8s %8s\n", "path", "apply p50", "apply p90", "heal p50", "heal p90", "apply/raw", "heal/raw")
	for _, mode := range []string{"steady", "cold"} {
		raw := results[mode+" raw"]
		for _, k := range []string{"raw", "direct", "daemon-mgr"} {
			s := results[mode+" "+k]
			a, h := s[0].pct(0.5), s[1].pct(0.5)
			fmt.Printf("%-18s %10v %10v %10v %10v %8.2f %8.2f\n", mode+" "+k,
				a.Round(10*time.Microsecond), s[0].pct(0.9).Round(10*time.Microsecond),
				h.Round(10*time.Microsecond), s[1].pct(0.9).Round(10*time.Microsecond),
				float64(a)/float64(raw[0].pct(0.5)), float64(h)/float64(raw[1].pct(0.5)))
		}
	}
	fmt.Println("raw: tc class add [+ tc qdisc add netem] + iptables -t mangle -A; heal: iptables -D + tc class del (cold: + tc qdisc replace/del root)")
	fmt.Println("nfslab: netlink for qdiscs and classes, iptables for the CLASSIFY rule in NFSLAB-SHAPE, state record")
	return nil
}
