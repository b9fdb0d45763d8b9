package netfault_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

// Tests of the hot path: what a long-lived Manager runs per Apply and Heal,
// and how it recovers when the kernel changed behind its back.

func newLongLived(t *testing.T, w *netfaulttest.World, dir string) *netfault.Manager {
	t.Helper()
	opts := w.Options(clock.NewFake(t0), dir)
	opts.LongLived = true
	m, err := netfault.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func drop(dst string) netfault.Spec {
	return netfault.Spec{Kind: netfault.KindDrop, Dst: dst, Port: 2049}.WithDefaults()
}

// calls returns and resets the fake's call counts.
func calls(f *netfaulttest.IPTables) map[string]int {
	c := maps.Clone(f.Calls)
	clear(f.Calls)
	return c
}

func wantCalls(t *testing.T, what string, got map[string]int, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("%s ran %v, want %v", what, got, want)
	}
}

func jumpFirst(t *testing.T, ipt *netfaulttest.IPTables, builtin, chain string) {
	t.Helper()
	out := ipt.Rules("filter", builtin)
	if len(out) < 2 || out[1] != "-A "+builtin+` -m comment --comment "nfslab" -j `+chain ||
		strings.Count(strings.Join(out, "\n"), "-j "+chain) != 1 {
		t.Fatalf("jump to %s is not the only one at position 1: %q", chain, out)
	}
}

func TestLongLivedOneProcessPerApplyAndHeal(t *testing.T) {
	w := netfaulttest.NewWorld()
	m := newLongLived(t, w, t.TempDir())
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	ip6 := w.IPTables("", "ip6tables")
	must(t, ipt.Append("filter", "OUTPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"))
	before := ipt.Save()
	calls(ipt)

	// Cold: one listing of OUTPUT, the chain and the jump, then the rule.
	f0, err := m.Apply(ctx, drop("10.0.0.5"))
	must(t, err)
	wantCalls(t, "cold apply", calls(ipt), map[string]int{"List": 1, "ChainExists": 1, "NewChain": 1, "Insert": 1, "Append": 1})
	jumpFirst(t, ipt, "OUTPUT", netfault.ChainOut)
	calls(ipt)

	// Warm: one process each, nothing in the other family.
	f1, err := m.Apply(ctx, drop("10.0.0.6"))
	must(t, err)
	wantCalls(t, "warm apply", calls(ipt), map[string]int{"Append": 1})
	must(t, m.Heal(ctx, "", f1.ID))
	wantCalls(t, "heal", calls(ipt), map[string]int{"Delete": 1})
	wantCalls(t, "ip6tables", calls(ip6), map[string]int{})

	// Healing the last fault keeps the empty chain for the next apply...
	must(t, m.Heal(ctx, "", f0.ID))
	if ok, _ := ipt.ChainExists("filter", netfault.ChainOut); !ok {
		t.Fatal("long-lived manager removed its chain on heal")
	}
	calls(ipt)
	f2, err := m.Apply(ctx, drop("10.0.0.7"))
	must(t, err)
	wantCalls(t, "apply into the kept chain", calls(ipt), map[string]int{"Append": 1})
	must(t, m.Heal(ctx, "", f2.ID))
	// ...and Close removes it with its jump.
	must(t, m.Close())
	if after := ipt.Save(); after != before {
		t.Fatalf("Close left nfslab objects:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestDefaultManagerHealsByspecAndLeavesNothing(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	_, _ = ipt.ListChains("filter")
	before := ipt.Save()
	keep, err := m.Apply(ctx, drop("10.0.0.5"))
	must(t, err)
	f, err := m.Apply(ctx, drop("10.0.0.6"))
	must(t, err)
	calls(ipt)
	must(t, m.Heal(ctx, "", f.ID))
	// The rule by spec, then a look whether the chain is empty now.
	wantCalls(t, "heal", calls(ipt), map[string]int{"Delete": 1, "List": 1})
	must(t, m.Heal(ctx, "", keep.ID))
	if after := ipt.Save(); after != before {
		t.Fatalf("heal of the last fault left nfslab objects:\n%s", after)
	}
	// A route fault is healed by netlink alone.
	r, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.9.0.0/16"}.WithDefaults())
	must(t, err)
	calls(ipt)
	must(t, m.Heal(ctx, "", r.ID))
	wantCalls(t, "route heal", calls(ipt), map[string]int{})
	if rs := w.Routes("").All(); len(rs) != 0 {
		t.Fatalf("route left: %v", rs)
	}
}

func TestLongLivedApplyRecoversDeletedChain(t *testing.T) {
	w := netfaulttest.NewWorld()
	m := newLongLived(t, w, t.TempDir())
	ctx := context.Background()
	ipt := w.IPTables("lab", "iptables")
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Dir: netfault.DirBoth, Netns: "lab"}.WithDefaults())
	must(t, err)
	must(t, m.Heal(ctx, "lab", f.ID))
	// Another tool (or `nfslab heal --all` in another process) removes
	// the empty chains and their jumps behind the manager's back.
	for _, c := range []struct{ builtin, chain string }{{"OUTPUT", netfault.ChainOut}, {"INPUT", netfault.ChainIn}} {
		must(t, ipt.Delete("filter", c.builtin, "-m", "comment", "--comment", "nfslab", "-j", c.chain))
		must(t, ipt.DeleteChain("filter", c.chain))
	}
	g, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.6", Port: 2049, Dir: netfault.DirBoth, Netns: "lab"}.WithDefaults())
	must(t, err)
	jumpFirst(t, ipt, "OUTPUT", netfault.ChainOut)
	jumpFirst(t, ipt, "INPUT", netfault.ChainIn)
	for _, c := range []string{netfault.ChainOut, netfault.ChainIn} {
		if out := ipt.Rules("filter", c); len(out) != 2 || !strings.Contains(out[1], "nfslab:"+g.ID) {
			t.Fatalf("%s after recovery: %q", c, out)
		}
	}
	// The cache is warm again.
	calls(ipt)
	h, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.7", Port: 2049, Netns: "lab"}.WithDefaults())
	must(t, err)
	wantCalls(t, "apply after recovery", calls(ipt), map[string]int{"Append": 1})
	must(t, m.Heal(ctx, "lab", h.ID))
	must(t, m.Heal(ctx, "lab", g.ID))
}

func TestEnsureJumpsRestoresJump(t *testing.T) {
	w := netfaulttest.NewWorld()
	m := newLongLived(t, w, t.TempDir())
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	// Nothing applied: nothing to check, no process.
	must(t, m.EnsureJumps(ctx, ""))
	wantCalls(t, "EnsureJumps before any apply", calls(ipt), map[string]int{})

	f, err := m.Apply(ctx, drop("10.0.0.5"))
	must(t, err)
	// Another tool inserts at the top. The warm Apply trusts its cache
	// (the documented trade-off) ...
	must(t, ipt.Insert("filter", "OUTPUT", 1, "-m", "state", "--state", "ESTABLISHED", "-j", "ACCEPT"))
	_, err = m.Apply(ctx, drop("10.0.0.6"))
	must(t, err)
	if out := ipt.Rules("filter", "OUTPUT"); strings.Contains(out[1], "NFSLAB") {
		t.Fatalf("warm apply moved the jump: %q", out)
	}
	// ... and EnsureJumps moves it back.
	calls(ipt)
	must(t, m.EnsureJumps(ctx, ""))
	jumpFirst(t, ipt, "OUTPUT", netfault.ChainOut)
	// When it is already first, one listing.
	calls(ipt)
	must(t, m.EnsureJumps(ctx, ""))
	wantCalls(t, "EnsureJumps in steady state", calls(ipt), map[string]int{"List": 1})

	// The jump removed while the chain and its rules stay: restored.
	must(t, ipt.Delete("filter", "OUTPUT", "-m", "comment", "--comment", "nfslab", "-j", netfault.ChainOut))
	must(t, m.EnsureJumps(ctx, ""))
	jumpFirst(t, ipt, "OUTPUT", netfault.ChainOut)

	// The chain gone entirely: EnsureJumps does not create it, and the
	// next Apply does.
	_, err = m.HealAll(ctx, "")
	must(t, err)
	must(t, m.EnsureJumps(ctx, ""))
	if ok, _ := ipt.ChainExists("filter", netfault.ChainOut); ok {
		t.Fatal("EnsureJumps created a chain nobody needs")
	}
	g, err := m.Apply(ctx, drop("10.0.0.5"))
	must(t, err)
	jumpFirst(t, ipt, "OUTPUT", netfault.ChainOut)
	must(t, m.Heal(ctx, "", g.ID))
	_ = f
}

func TestHealFaultOfAnotherProcess(t *testing.T) {
	w := netfaulttest.NewWorld()
	ctx := context.Background()
	ipt := w.IPTables("lab", "iptables")
	shared := t.TempDir()
	other := newLongLived(t, w, shared)
	f, err := other.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Netns: "lab"}.WithDefaults())
	must(t, err)
	g, err := other.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.6", Port: 2049, Netns: "lab"}.WithDefaults())
	must(t, err)

	// Same state directory: the rule is rendered from the record and
	// deleted by spec, without a scan; this manager did not set the chain
	// up, so it looks whether it is empty now.
	m := newLongLived(t, w, shared)
	calls(ipt)
	must(t, m.Heal(ctx, "lab", f.ID))
	wantCalls(t, "heal from the state record", calls(ipt), map[string]int{"Delete": 1, "List": 1})

	// No record (another state directory): found by scanning the kernel.
	stranger := newLongLived(t, w, t.TempDir())
	must(t, stranger.Heal(ctx, "lab", g.ID))
	if out := ipt.Save(); strings.Contains(out, "nfslab") {
		t.Fatalf("left after heal by scan (the stranger set up no chain, so it removes the empty one):\n%s", out)
	}
	if err := stranger.Heal(ctx, "lab", g.ID); !errors.Is(err, netfault.ErrNotFound) {
		t.Fatalf("second heal: %v", err)
	}
	// The first manager still believes in g: its delete finds nothing, the
	// scan finds only the stale record, and that counts as healed.
	must(t, other.Heal(ctx, "lab", g.ID))
	if err := other.Heal(ctx, "lab", g.ID); !errors.Is(err, netfault.ErrNotFound) {
		t.Fatalf("heal after the record is gone: %v", err)
	}
	// Not an ID nfslab makes: no file is read, the scan says not found.
	if err := m.Heal(ctx, "lab", "../../x"); !errors.Is(err, netfault.ErrNotFound) {
		t.Fatalf("odd id: %v", err)
	}
	ids, err := m.HealAll(ctx, "lab")
	must(t, err)
	if len(ids) != 0 {
		t.Fatalf("HealAll found %v", ids)
	}
	if ok, _ := ipt.ChainExists("filter", netfault.ChainOut); ok {
		t.Fatal("HealAll kept the empty chain")
	}
}

func TestLongLivedHealFindsRuleMovedToLegacy(t *testing.T) {
	// A record whose rule is not in the first backend (an older nfslab
	// used iptables-legacy): the delete says not found, the scan finds it.
	w := netfaulttest.NewWorld()
	ctx := context.Background()
	dir := t.TempDir()
	opts := w.Options(clock.NewFake(t0), dir)
	opts.Backends = []netfault.Backend{netfaulttest.Backends[1]}
	old, err := netfault.NewManager(opts)
	must(t, err)
	f, err := old.Apply(ctx, drop("10.0.0.5"))
	must(t, err)
	w.SetNetFile("", "ip_tables_names", "filter\n")
	m := newLongLived(t, w, dir)
	must(t, m.Heal(ctx, "", f.ID))
	leg := w.IPTables("", "iptables-legacy")
	if ok, _ := leg.ChainExists("filter", netfault.ChainOut); ok {
		t.Fatalf("legacy chain left: %q", leg.Rules("filter", netfault.ChainOut))
	}
}
