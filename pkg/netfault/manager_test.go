package netfault_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

var t0 = time.Date(2026, 6, 12, 16, 0, 0, 0, time.UTC)

func newFake(t *testing.T) (*netfault.Manager, *netfaulttest.World, *clock.Fake, string) {
	t.Helper()
	w := netfaulttest.NewWorld()
	clk := clock.NewFake(t0)
	dir := t.TempDir()
	m, err := netfault.NewManager(w.Options(clk, dir))
	if err != nil {
		t.Fatal(err)
	}
	return m, w, clk, dir
}

func TestPlanRendersRules(t *testing.T) {
	m, _, _, _ := newFake(t)
	cases := []struct {
		name string
		spec netfault.Spec
		want []string // rule lines (last lines of the plan)
	}{
		{"full drop", netfault.Spec{Kind: netfault.KindDrop, Dst: "192.168.24.110", Port: 2049, For: time.Minute},
			[]string{"iptables -t filter -A NFSLAB-OUTPUT -d 192.168.24.110/32 -p tcp -m tcp --dport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j DROP"}},
		{"prob drop", netfault.Spec{Kind: netfault.KindDrop, Dst: "192.168.24.110", Port: 2049, Prob: 0.8, For: time.Minute},
			[]string{"iptables -t filter -A NFSLAB-OUTPUT -d 192.168.24.110/32 -p tcp -m tcp --dport 2049 -m statistic --mode random --probability 0.8 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j DROP"}},
		{"prob 1 is full", netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Prob: 1, For: time.Minute},
			[]string{"iptables -t filter -A NFSLAB-OUTPUT -d 10.0.0.5/32 -p tcp -m tcp --dport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j DROP"}},
		{"reject tcp in", netfault.Spec{Kind: netfault.KindReject, Dst: "10.0.0.0/24", Port: 2049, Dir: netfault.DirIn, For: time.Minute},
			[]string{"iptables -t filter -A NFSLAB-INPUT -s 10.0.0.0/24 -p tcp -m tcp --sport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j REJECT --reject-with tcp-reset"}},
		{"reject udp v6 both", netfault.Spec{Kind: netfault.KindReject, Dst: "fd00::5", Port: 2049, Proto: "udp", Dir: netfault.DirBoth, For: time.Minute},
			[]string{
				"ip6tables -t filter -A NFSLAB-OUTPUT -d fd00::5/128 -p udp -m udp --dport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j REJECT --reject-with icmp6-port-unreachable",
				"ip6tables -t filter -A NFSLAB-INPUT -s fd00::5/128 -p udp -m udp --sport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j REJECT --reject-with icmp6-port-unreachable"}},
		{"udp reject v4", netfault.Spec{Kind: netfault.KindReject, Dst: "10.0.0.5", Proto: "udp", For: time.Minute},
			[]string{"iptables -t filter -A NFSLAB-OUTPUT -d 10.0.0.5/32 -p udp -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j REJECT --reject-with icmp-port-unreachable"}},
		{"local port both (on the server)", netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.7", LocalPort: 2049, Dir: netfault.DirBoth, For: time.Minute},
			[]string{
				"iptables -t filter -A NFSLAB-OUTPUT -d 10.0.0.7/32 -p tcp -m tcp --sport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j DROP",
				"iptables -t filter -A NFSLAB-INPUT -s 10.0.0.7/32 -p tcp -m tcp --dport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j DROP"}},
		{"local and peer port", netfault.Spec{Kind: netfault.KindReject, Dst: "10.0.0.7", Port: 800, LocalPort: 2049, Dir: netfault.DirBoth, For: time.Minute},
			[]string{
				"iptables -t filter -A NFSLAB-OUTPUT -d 10.0.0.7/32 -p tcp -m tcp --sport 2049 --dport 800 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j REJECT --reject-with tcp-reset",
				"iptables -t filter -A NFSLAB-INPUT -s 10.0.0.7/32 -p tcp -m tcp --sport 800 --dport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j REJECT --reject-with tcp-reset"}},
		{"match original", netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, MatchOriginal: true, Netns: "lab", For: time.Minute},
			[]string{"ip netns exec lab iptables -t filter -A NFSLAB-OUTPUT -p tcp -m conntrack --ctorigdst 127.0.0.1 --ctorigdstport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j DROP"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec.WithDefaults()
			p, err := m.Plan(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Rules[len(p.Rules)-len(c.want):]
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("rule %d:\n got %s\nwant %s", i, got[i], c.want[i])
				}
			}
			if !strings.Contains(p.Rules[0], "-N NFSLAB-") || !strings.Contains(p.Rules[1], "-I ") {
				t.Errorf("plan lacks chain and jump: %q", p.Rules)
			}
		})
	}
	p, err := m.Plan(context.Background(), netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.0.0.5", RouteType: netfault.RouteBlackhole})
	if err != nil || len(p.Routes) != 1 || p.Routes[0] != "ip route add blackhole 10.0.0.5/32 proto 73 realm <id>" {
		t.Fatalf("route plan = %q, %v", p.Routes, err)
	}
	if _, err := m.Plan(context.Background(), netfault.Spec{Kind: netfault.KindDrop, Dst: "x", Proto: "tcp", Dir: "out"}); !errors.Is(err, netfault.ErrInvalid) {
		t.Fatalf("bad spec: %v", err)
	}
}

// Apply returns the rules it gave the kernel, rendered once: the real ID
// in the comment and the real --datestop, not the plan's placeholder.
func TestApplyReturnsRulesAsApplied(t *testing.T) {
	m, w, clk, _ := newFake(t)
	ctx := context.Background()
	clk.Advance(1500 * time.Millisecond) // a plan made earlier would show another datestop
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Dir: netfault.DirBoth, For: time.Minute}.WithDefaults())
	must(t, err)
	saved := strings.ReplaceAll(w.IPTables("", "iptables").Save(), `"`, "") // iptables-save quotes comments
	if len(f.Rules) != 2 || len(f.Routes) != 0 {
		t.Fatalf("applied rules %q, routes %q: want the two rules of dir both", f.Rules, f.Routes)
	}
	for _, r := range f.Rules {
		if strings.Contains(r, netfault.PlanID) || !strings.Contains(r, "--comment nfslab:"+f.ID) ||
			!strings.Contains(r, "--datestop 2026-06-12T16:01:01") {
			t.Errorf("rule %q: want the fault's ID %s and datestop 2026-06-12T16:01:01", r, f.ID)
		}
		line := strings.TrimPrefix(r, "iptables -t filter ")
		if !strings.Contains(saved, line+"\n") {
			t.Errorf("applied rule %q is not in the kernel:\n%s", line, saved)
		}
	}
	r, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.9.0.0/16"}.WithDefaults())
	must(t, err)
	routes := w.Routes("").All()
	if len(r.Rules) != 0 || len(r.Routes) != 1 || len(routes) != 1 ||
		r.Routes[0] != fmt.Sprintf("ip route add unreachable 10.9.0.0/16 proto 73 realm 0x%08x", uint32(routes[0].Realm)) ||
		r.Routes[0] != "ip route add unreachable 10.9.0.0/16 proto 73 realm 0x"+r.ID {
		t.Fatalf("applied routes %q for fault %s; kernel has %+v", r.Routes, r.ID, routes)
	}
	fs, err := m.List(ctx, "")
	must(t, err)
	for _, x := range fs {
		if len(x.Rules)+len(x.Routes) != 0 {
			t.Errorf("List sets the applied commands of %s: %q %q", x.ID, x.Rules, x.Routes)
		}
	}
}

func TestApplyListHealRoundTrip(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	// Foreign rules that must stay byte-identical, including an ACCEPT at
	// the top that nfslab's jump must go above.
	must(t, ipt.Append("filter", "OUTPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"))
	must(t, ipt.Append("filter", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "22", "-j", "ACCEPT"))
	before := ipt.Save()

	f1, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Prob: 0.8, Label: "first"}.WithDefaults())
	must(t, err)
	f2, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindReject, Dst: "10.0.0.5", Port: 2049, Dir: netfault.DirBoth}.WithDefaults())
	must(t, err)
	f3, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.9.0.0/16"}.WithDefaults())
	must(t, err)
	if f1.Expires != t0.Add(netfault.DefaultLifetime) {
		t.Fatalf("expires %v", f1.Expires)
	}
	out := ipt.Rules("filter", "OUTPUT")
	if len(out) != 3 || !strings.Contains(out[1], "-j NFSLAB-OUTPUT") {
		t.Fatalf("jump not at position 1: %q", out)
	}
	if n := ipt.BumpComment("nfslab:"+f2.ID, 5, 300); n != 2 {
		t.Fatalf("bumped %d rules of the both-direction fault, want 2", n)
	}
	fs, err := m.List(ctx, "")
	must(t, err)
	if len(fs) != 3 {
		t.Fatalf("listed %d faults: %+v", len(fs), fs)
	}
	byID := map[string]netfault.Fault{}
	for _, f := range fs {
		byID[f.ID] = f
	}
	if g := byID[f2.ID]; g.Packets != 10 || g.Bytes != 600 || !g.Counted || g.Spec.Dir != netfault.DirBoth {
		t.Fatalf("counters of %s: %+v", f2.ID, g)
	}
	if g := byID[f1.ID]; g.Spec.Label != "first" || g.Spec.Prob != 0.8 || !g.Created.Equal(t0) {
		t.Fatalf("metadata of %s: %+v", f1.ID, g)
	}
	if g := byID[f3.ID]; g.Counted || g.Spec.RouteType != netfault.RouteUnreachable {
		t.Fatalf("route fault: %+v", g)
	}
	// Heal one, then again: ErrNotFound.
	must(t, m.Heal(ctx, "", f1.ID))
	if err := m.Heal(ctx, "", f1.ID); !errors.Is(err, netfault.ErrNotFound) {
		t.Fatalf("second heal: %v", err)
	}
	ids, err := m.HealAll(ctx, "")
	must(t, err)
	if len(ids) != 2 {
		t.Fatalf("HealAll removed %v", ids)
	}
	if after := ipt.Save(); after != before {
		t.Fatalf("iptables changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if r := w.Routes("").All(); len(r) != 0 {
		t.Fatalf("routes left: %v", r)
	}
	// Idempotent: nothing left to heal.
	ids, err = m.HealAll(ctx, "")
	if err != nil || len(ids) != 0 {
		t.Fatalf("second HealAll: %v %v", ids, err)
	}
}

func TestApplyReassertsJumpAtTop(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	_, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049}.WithDefaults())
	must(t, err)
	// Another tool inserts at the top afterwards.
	must(t, ipt.Insert("filter", "OUTPUT", 1, "-m", "state", "--state", "ESTABLISHED", "-j", "ACCEPT"))
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.6", Port: 2049}.WithDefaults())
	must(t, err)
	out := ipt.Rules("filter", "OUTPUT")
	if !strings.Contains(out[1], "-j NFSLAB-OUTPUT") || strings.Count(strings.Join(out, "\n"), "NFSLAB-OUTPUT") != 1 {
		t.Fatalf("jump not re-asserted once at the top: %q", out)
	}
	_ = f
}

func TestApplyRollsBackOnFailure(t *testing.T) {
	m, w, _, dir := newFake(t)
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	_, _ = ipt.ListChains("filter")
	before := ipt.Save()
	calls := 0
	ipt.Hook = func(op, table, chain string, args []string) error {
		if op == "Append" && chain == netfault.ChainIn {
			calls++
			return &netfaulttest.Error{Args: args, Status: 4, Msg: "iptables: Resource temporarily unavailable.\n"}
		}
		return nil
	}
	_, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Dir: netfault.DirBoth}.WithDefaults())
	if err == nil || calls != 1 {
		t.Fatalf("apply should fail: %v", err)
	}
	ipt.Hook = nil
	if after := ipt.Save(); after != before {
		t.Fatalf("partial change left behind:\n%s", after)
	}
	if ents, _ := fs.Glob(osDirFS(dir), "*/*.json"); len(ents) != 0 {
		t.Fatalf("state left behind: %v", ents)
	}
}

func TestCrashRecoveryAndLegacy(t *testing.T) {
	m1, w, clk, dir := newFake(t)
	ctx := context.Background()
	f, err := m1.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Label: "crash", Netns: "lab"}.WithDefaults())
	must(t, err)
	r, err := m1.Apply(ctx, netfault.Spec{Kind: netfault.KindUnreachable, Dst: "fd00::5", Netns: "lab"}.WithDefaults())
	must(t, err)
	// A rule left in the legacy backend by some earlier nfslab, no state.
	leg := w.IPTables("lab", "iptables-legacy")
	must(t, leg.NewChain("filter", netfault.ChainOut))
	must(t, leg.Insert("filter", "OUTPUT", 1, "-m", "comment", "--comment", "nfslab", "-j", netfault.ChainOut))
	must(t, leg.Append("filter", netfault.ChainOut, "-d", "10.0.0.7/32", "-p", "tcp", "-m", "time", "--datestop", "2026-06-12T16:10:00", "-m", "comment", "--comment", "nfslab:0badc0de", "-j", "DROP"))
	// The legacy tables only count when the namespace has them.
	m2, err := netfault.NewManager(w.Options(clk, dir)) // "after the crash"
	must(t, err)
	fs, err := m2.List(ctx, "lab")
	must(t, err)
	if len(fs) != 2 {
		t.Fatalf("without legacy tables: %+v", fs)
	}
	w.SetNetFile("lab", "ip_tables_names", "filter\n")
	fs, err = m2.List(ctx, "lab")
	must(t, err)
	if len(fs) != 3 {
		t.Fatalf("second manager found %d faults: %+v", len(fs), fs)
	}
	for _, x := range fs {
		switch x.ID {
		case f.ID:
			if x.Spec.Label != "crash" || !x.Created.Equal(t0) {
				t.Fatalf("metadata lost: %+v", x)
			}
		case r.ID:
			if x.Spec.Dst != "fd00::5" || x.Spec.Kind != netfault.KindUnreachable {
				t.Fatalf("route: %+v", x)
			}
		case "0badc0de":
			if x.Spec.Dst != "10.0.0.7" || !x.Expires.Equal(time.Date(2026, 6, 12, 16, 10, 1, 0, time.UTC)) {
				t.Fatalf("stateless rule: %+v", x)
			}
		default:
			t.Fatalf("unexpected %+v", x)
		}
	}
	// Sweep at t0+11m: the stateless legacy rule expired (datestop), the
	// others live on.
	clk.Advance(11 * time.Minute)
	ids, err := m2.Sweep(ctx, "lab")
	must(t, err)
	if len(ids) != 1 || ids[0] != "0badc0de" {
		t.Fatalf("swept %v", ids)
	}
	if ok, _ := leg.ChainExists("filter", netfault.ChainOut); ok {
		t.Fatalf("legacy chain not removed: %q", leg.Rules("filter", "OUTPUT"))
	}
	if out := leg.Rules("filter", "OUTPUT"); len(out) != 1 {
		t.Fatalf("legacy jump left: %q", out)
	}
	// After the default lifetime everything goes.
	clk.Advance(netfault.DefaultLifetime)
	ids, err = m2.Sweep(ctx, "lab")
	must(t, err)
	if len(ids) != 2 {
		t.Fatalf("swept %v", ids)
	}
	if ents, _ := fs2(dir); len(ents) != 0 {
		t.Fatalf("state left: %v", ents)
	}
}

func TestSweepDropsStaleStateAndOrphanRoutes(t *testing.T) {
	m, w, _, dir := newFake(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049}.WithDefaults())
	must(t, err)
	// Someone removes the kernel rule behind nfslab's back: state is stale.
	ipt := w.IPTables("", "iptables")
	lines := ipt.Rules("filter", netfault.ChainOut)
	_ = lines
	must(t, ipt.Delete("filter", netfault.ChainOut, "-d", "10.0.0.5/32", "-p", "tcp", "-m", "tcp", "--dport", "2049", "-m", "time", "--datestop", "2026-06-12T16:14:59", "-m", "comment", "--comment", "nfslab:"+f.ID, "-j", "DROP"))
	// And a route of proto 73 without state (lifetime unknown): an orphan.
	must(t, w.Routes("").RouteAdd(&netlink.Route{Dst: mustCIDR("10.8.0.0/16"), Type: 7, Protocol: 73, Table: 254, Family: 2, Realm: 0x1234}))
	fs, err := m.List(ctx, "")
	must(t, err)
	if len(fs) != 1 || fs[0].ID != "00001234" {
		t.Fatalf("list: %+v", fs)
	}
	ids, err := m.Sweep(ctx, "")
	must(t, err)
	if len(ids) != 1 || ids[0] != "00001234" {
		t.Fatalf("swept %v", ids)
	}
	if ents, _ := fs2(dir); len(ents) != 0 {
		t.Fatalf("stale state kept: %v", ents)
	}
	if ok, _ := ipt.ChainExists("filter", netfault.ChainOut); ok {
		t.Fatal("empty chain kept")
	}
}

func TestFakeFailsLikeIptables(t *testing.T) {
	ipt := netfaulttest.NewIPTables("iptables")
	err := ipt.Delete("filter", "OUTPUT", "-j", "DROP")
	var e *netfaulttest.Error
	if !errors.As(err, &e) || !e.IsNotExist() || e.ExitStatus() != 1 {
		t.Fatalf("delete missing: %v", err)
	}
	must(t, ipt.NewChain("filter", "X"))
	if err := ipt.NewChain("filter", "X"); err == nil || !strings.Contains(err.Error(), "Chain already exists") {
		t.Fatalf("new existing: %v", err)
	}
	must(t, ipt.Append("filter", "OUTPUT", "-j", "X"))
	if err := ipt.DeleteChain("filter", "X"); !errors.As(err, &e) || e.ExitStatus() != 4 || e.IsNotExist() {
		t.Fatalf("delete referenced: %v", err)
	}
	if err := ipt.Append("filter", "X", "-m", "bogus", "-j", "DROP"); !errors.As(err, &e) || e.ExitStatus() != 2 {
		t.Fatalf("unknown match: %v", err)
	}
	if err := ipt.Append("filter", "X", "-j", "NOPE"); !errors.As(err, &e) || e.ExitStatus() != 2 {
		t.Fatalf("unknown target: %v", err)
	}
	r := &netfaulttest.Routes{}
	rt := &netlink.Route{Dst: mustCIDR("10.0.0.0/8"), Type: 7}
	must(t, r.RouteAdd(rt))
	if err := r.RouteAdd(rt); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate route: %v", err)
	}
	must(t, r.RouteDel(rt))
	if err := r.RouteDel(rt); err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Fatalf("delete missing route: %v", err)
	}
}

func TestVerify(t *testing.T) {
	m, w, clk, _ := newFake(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049}.WithDefaults())
	must(t, err)
	w.SetNetFile("", "tcp", tcpHeader)
	done := make(chan netfault.Verdict)
	go func() {
		v, err := netfault.Verify(ctx, m, clk, "", f.ID, 10*time.Second, time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- v
	}()
	waitWaiters(t, clk)
	clk.Advance(time.Second)
	waitWaiters(t, clk)
	w.IPTables("", "iptables").BumpComment("nfslab:"+f.ID, 3, 180)
	clk.Advance(time.Second)
	v := <-done
	if !v.Bit || v.Packets != 3 || v.FirstHit != 2*time.Second {
		t.Fatalf("verdict %+v", v)
	}
	// A fault that matches nothing gets findings after the window.
	g, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.9", Port: 2049}.WithDefaults())
	must(t, err)
	go func() {
		v, _ := netfault.Verify(ctx, m, clk, "", g.ID, 3*time.Second, time.Second)
		done <- v
	}()
	for i := 0; i < 3; i++ {
		waitWaiters(t, clk)
		clk.Advance(time.Second)
	}
	v = <-done
	if v.Bit || len(v.Findings) == 0 || v.Findings[0].Cause != netfault.CauseNoConnection {
		t.Fatalf("verdict %+v", v)
	}
}

func waitWaiters(t *testing.T, clk *clock.Fake) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Waiters() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no waiter")
		}
		time.Sleep(time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func osDirFS(dir string) fs.FS { return os.DirFS(dir) }

func fs2(dir string) ([]string, error) { return fs.Glob(os.DirFS(dir), "*/*.json") }

var _ = fstest.MapFS{}

// A server-side fault's local port reads back from its rules alone, as
// after a crash that lost the state file.
func TestLocalPortReadsBackFromRules(t *testing.T) {
	m, w, clk, _ := newFake(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.7", LocalPort: 2049, Dir: netfault.DirBoth}.WithDefaults())
	must(t, err)
	m2, err := netfault.NewManager(w.Options(clk, t.TempDir()))
	must(t, err)
	fs, err := m2.List(ctx, "")
	must(t, err)
	if len(fs) != 1 || fs[0].ID != f.ID {
		t.Fatalf("listed %+v", fs)
	}
	if s := fs[0].Spec; s.LocalPort != 2049 || s.Port != 0 || s.Dir != netfault.DirBoth || s.Dst != "10.0.0.7" || s.Kind != netfault.KindDrop {
		t.Fatalf("read back as %+v", s)
	}
}

// A scan lists each of nfslab's chains once (no separate existence check),
// and a Sweep that removes nothing lists no chain again: a scenario's
// counter samples run a scan every second.
func TestScanListsEachChainOnce(t *testing.T) {
	m, w, clk, _ := newFake(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Dir: netfault.DirBoth, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := w.IPTables("", "iptables"), w.IPTables("", "ip6tables")
	reset := func() { v4.Calls, v6.Calls = map[string]int{}, map[string]int{} }
	reset()
	if fs, err := m.List(ctx, ""); err != nil || len(fs) != 1 {
		t.Fatalf("list = %+v, %v", fs, err)
	}
	// NFSLAB-OUTPUT and NFSLAB-INPUT, in each family.
	want := map[string]int{"ListWithCounters": 2}
	for name, ipt := range map[string]*netfaulttest.IPTables{"iptables": v4, "ip6tables": v6} {
		if fmt.Sprint(ipt.Calls) != fmt.Sprint(want) {
			t.Errorf("list: %s calls %v; want %v", name, ipt.Calls, want)
		}
	}
	reset()
	if ids, err := m.Sweep(ctx, ""); err != nil || len(ids) != 0 {
		t.Fatalf("sweep = %v, %v", ids, err)
	}
	for name, ipt := range map[string]*netfaulttest.IPTables{"iptables": v4, "ip6tables": v6} {
		if fmt.Sprint(ipt.Calls) != fmt.Sprint(want) {
			t.Errorf("sweep of nothing: %s calls %v; want %v", name, ipt.Calls, want)
		}
	}
	// Once it expires the sweep empties both chains and removes them.
	clk.Advance(2 * time.Minute)
	if ids, err := m.Sweep(ctx, ""); err != nil || len(ids) != 1 || ids[0] != f.ID {
		t.Fatalf("sweep after expiry = %v, %v", ids, err)
	}
	if s := v4.Save(); strings.Contains(s, "NFSLAB") {
		t.Fatalf("left after the sweep:\n%s", s)
	}
}
