package netfault_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Privileged tests: real traffic between two namespaces made by testnet.
// Every fault is applied with Netns = the client namespace, never in the
// test process's own namespace.

func kernelSetup(t *testing.T) (*testnet.Pair, *netfault.Manager) {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save")
	p := testnet.NewPair(t, "nfslt-nf")
	m, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := m.HealAll(context.Background(), p.Client); err != nil {
			t.Errorf("final heal: %v", err)
		}
	})
	return p, m
}

func dial(t *testing.T, ns string, addr netip.AddrPort, timeout time.Duration) (unix.Errno, time.Duration) {
	t.Helper()
	start := time.Now()
	errno, err := testnet.Dial(ns, addr, timeout)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	return errno, time.Since(start)
}

func faultByID(t *testing.T, m *netfault.Manager, ns, id string) netfault.Fault {
	t.Helper()
	fs, err := m.List(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.ID == id {
			return f
		}
	}
	t.Fatalf("fault %s not listed: %+v", id, fs)
	return netfault.Fault{}
}

// nothingLeft fails if any nfslab chain, rule or route remains in ns.
func nothingLeft(t *testing.T, ns string) {
	t.Helper()
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if out := testnet.MustExec(t, ns, cmd); strings.Contains(out, "NFSLAB") || strings.Contains(out, "nfslab") {
			t.Fatalf("%s still shows nfslab objects:\n%s", cmd, out)
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		if out := testnet.MustExec(t, ns, "ip", fam, "route", "show", "proto", "73"); strings.TrimSpace(out) != "" {
			t.Fatalf("routes of proto 73 left: %s", out)
		}
	}
}

func testFullDrop(t *testing.T, v6 bool) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	srv := p.ServerV4
	if v6 {
		srv = p.ServerV6
	}
	ln := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(srv, 2049))
	if errno, _ := dial(t, p.Client, ln.Addr, 2*time.Second); errno != 0 {
		t.Fatalf("before the fault: %v", errno)
	}
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: srv.String(), Port: 2049, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	errno, took := dial(t, p.Client, ln.Addr, 1500*time.Millisecond)
	if errno != unix.ETIMEDOUT {
		t.Fatalf("with a full drop the connect ended with %v after %v, want a timeout", errno, took)
	}
	g := faultByID(t, m, p.Client, f.ID)
	if g.Packets == 0 || !g.Counted {
		t.Fatalf("counters did not move: %+v", g)
	}
	t.Logf("drop matched %d packets (%d bytes)", g.Packets, g.Bytes)
	v, err := netfault.Verify(ctx, m, clock.Real{}, p.Client, f.ID, time.Second, 100*time.Millisecond)
	if err != nil || !v.Bit {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if err := m.Heal(ctx, p.Client, f.ID); err != nil {
		t.Fatal(err)
	}
	if errno, _ := dial(t, p.Client, ln.Addr, 2*time.Second); errno != 0 {
		t.Fatalf("after heal: %v", errno)
	}
	nothingLeft(t, p.Client)
}

func TestKernelFullDropV4(t *testing.T) { testFullDrop(t, false) }
func TestKernelFullDropV6(t *testing.T) { testFullDrop(t, true) }

func TestKernelProbabilisticDrop(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	rx := testnet.ListenUDP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 2049))
	const n, prob = 2000, 0.8
	pace := 100 * time.Microsecond
	// Control: without the fault nothing is lost at this pace.
	if _, err := testnet.SendUDP(p.Client, rx.Addr, 200, 100, pace); err != nil {
		t.Fatal(err)
	}
	waitCount(rx.Received, 200)
	if got := rx.Received(); got != 200 {
		t.Fatalf("control run lost datagrams: %d of 200 arrived", got)
	}
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: p.ServerV4.String(), Port: 2049, Proto: "udp", Prob: prob, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	base := rx.Received()
	// A DROP in OUTPUT makes the sender's write fail with EPERM, so
	// "sent" counts the datagrams that passed the rule; the receiver's
	// count is the measurement.
	sent, err := testnet.SendUDP(p.Client, rx.Addr, n, 100, pace)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	got := rx.Received() - base
	lost := float64(n-int(got)) / n
	// 99.9% two-sided binomial interval (normal approximation, z = 3.29).
	half := 3.29 * math.Sqrt(prob*(1-prob)/n)
	t.Logf("sent %d without error, received %d of %d, loss %.4f, interval [%.4f, %.4f]", sent, got, n, lost, prob-half, prob+half)
	if lost < prob-half || lost > prob+half {
		t.Fatalf("loss %.4f outside the 99.9%% interval around %.2f (±%.4f)", lost, prob, half)
	}
	g := faultByID(t, m, p.Client, f.ID)
	if int64(g.Packets) != int64(n)-got {
		t.Errorf("rule counted %d drops, receiver missed %d", g.Packets, int64(n)-got)
	}
	if g.Spec.Prob != prob {
		t.Errorf("listed probability %v", g.Spec.Prob)
	}
}

func waitCount(get func() int64, want int64) {
	deadline := time.Now().Add(2 * time.Second)
	for get() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKernelRoutes(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	for _, v6 := range []bool{false, true} {
		srv := p.ServerV4
		if v6 {
			srv = p.ServerV6
		}
		ln := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(srv, 0))
		for _, c := range []struct {
			typ  netfault.RouteType
			want unix.Errno
		}{
			{netfault.RouteUnreachable, unix.EHOSTUNREACH},
			{netfault.RouteBlackhole, unix.EINVAL},
			{netfault.RouteProhibit, unix.EACCES},
		} {
			f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindUnreachable, Dst: srv.String(), RouteType: c.typ, Netns: p.Client, For: time.Minute}.WithDefaults())
			if err != nil {
				t.Fatal(err)
			}
			errno, took := dial(t, p.Client, ln.Addr, 3*time.Second)
			if v6 && c.typ == netfault.RouteBlackhole && errno == unix.ENETUNREACH {
				c.want = unix.ENETUNREACH // IPv6 blackhole routes fail connect this way
			}
			if errno != c.want || took > time.Second {
				t.Fatalf("%s route to %v: connect ended with %v (%d) after %v, want %v at once", c.typ, srv, errno, errno, took, c.want)
			}
			g := faultByID(t, m, p.Client, f.ID)
			if g.Spec.RouteType != c.typ {
				t.Fatalf("listed %+v", g)
			}
			if err := m.Heal(ctx, p.Client, f.ID); err != nil {
				t.Fatal(err)
			}
			if errno, _ := dial(t, p.Client, ln.Addr, 2*time.Second); errno != 0 {
				t.Fatalf("after healing the %s route: %v", c.typ, errno)
			}
		}
	}
	nothingLeft(t, p.Client)
}

func TestKernelLocalhostDNATTrap(t *testing.T) {
	p, m := kernelSetup(t)
	ln := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 2049))
	// What podman/netavark does for -p 2049:2049 seen from the host:
	// DNAT in nat OUTPUT, route_localnet so 127.0.0.1 may leave lo, and
	// masquerade of the loopback source.
	testnet.MustExec(t, p.Client, "sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1")
	testnet.MustExec(t, p.Client, "iptables", "-t", "nat", "-N", "NETAVARK-DN-TEST")
	testnet.MustExec(t, p.Client, "iptables", "-t", "nat", "-A", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-DN-TEST")
	testnet.MustExec(t, p.Client, "iptables", "-t", "nat", "-A", "NETAVARK-DN-TEST", "-d", "127.0.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "2049", "-j", "DNAT", "--to-destination", p.ServerV4.String()+":2049")
	testnet.MustExec(t, p.Client, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "127.0.0.0/8", "-d", p.ServerV4.String()+"/32", "-j", "MASQUERADE")
	// The seed's mistake: a drop aimed at localhost matches nothing.
	f, v := localhostDropMisses(t, p, m, ln)
	var nat, ct *netfault.Finding
	rules := 0
	for i := range v.Findings {
		f := &v.Findings[i]
		if f.Cause != netfault.CauseNATBeforeFilter {
			continue
		}
		switch {
		case strings.HasPrefix(f.Detail, "conntrack"):
			ct = f
		case nat == nil:
			nat = f
			rules++
		default:
			rules++
		}
	}
	if nat == nil || !strings.Contains(nat.Detail, "NETAVARK-DN-TEST") || !strings.Contains(nat.Detail, p.ServerV4.String()+":2049") {
		t.Fatalf("findings do not name the NAT rule: %+v", v.Findings)
	}
	t.Logf("finding: %s; fix: %s", nat.Detail, nat.Fix)
	// iptables-nft's rule is in nft's ip nat table too: named once, as
	// iptables prints it (`-t nat -A ...`), not again from nft.
	if rules != 1 || !strings.HasPrefix(nat.Detail, "nat rule `-t nat -A NETAVARK-DN-TEST") {
		t.Fatalf("the iptables DNAT is named %d times: %+v", rules, v.Findings)
	}
	// conntrack saw the connection made above answered by the server.
	if ct == nil || !strings.Contains(ct.Detail, "to 127.0.0.1:2049 answered by "+p.ServerV4.String()+":2049") ||
		!strings.Contains(ct.Detail, "to "+p.ClientV4.String()+" (masquerade/SNAT)") {
		t.Fatalf("no conntrack finding with the translation: %+v", v.Findings)
	}
	t.Logf("finding: %s; fix: %s", ct.Detail, ct.Fix)
	// The fix: match the original destination.
	matchOriginalBites(t, p, m, f.ID)
}

func TestKernelLifetimeWithoutProcess(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	ln := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 2049))
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: p.ServerV4.String(), Port: 2049, Netns: p.Client, For: 2 * time.Second}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if errno, _ := dial(t, p.Client, ln.Addr, 500*time.Millisecond); errno != unix.ETIMEDOUT {
		t.Fatalf("fault not active: %v", errno)
	}
	// No nfslab code runs from here on: only the kernel's -m time.
	time.Sleep(time.Until(f.Expires) + 50*time.Millisecond)
	if errno, _ := dial(t, p.Client, ln.Addr, time.Second); errno != 0 {
		t.Fatalf("rule still bites after its lifetime (expired %v ago): %v", time.Since(f.Expires), errno)
	}
	// The rule is still in the kernel (the kernel stopped it, nobody removed it).
	if out := testnet.MustExec(t, p.Client, "iptables", "-S", netfault.ChainOut); !strings.Contains(out, "nfslab:"+f.ID) {
		t.Fatalf("rule vanished: %s", out)
	}
	ids, err := m.Sweep(ctx, p.Client)
	if err != nil || len(ids) != 1 || ids[0] != f.ID {
		t.Fatalf("sweep: %v %v", ids, err)
	}
	nothingLeft(t, p.Client)
}

var saveNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

func saveWithout(t *testing.T, ns, cmd string) string {
	out := saveNoise.ReplaceAllString(testnet.MustExec(t, ns, cmd), "")
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "NFSLAB") && !strings.Contains(l, "nfslab") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestKernelForeignRulesUntouched(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	for _, cmd := range []string{"iptables", "ip6tables"} {
		testnet.MustExec(t, p.Client, cmd, "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		testnet.MustExec(t, p.Client, cmd, "-A", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "22", "-m", "comment", "--comment", "user ssh", "-j", "ACCEPT")
		testnet.MustExec(t, p.Client, cmd, "-N", "USER-CHAIN")
		testnet.MustExec(t, p.Client, cmd, "-A", "USER-CHAIN", "-j", "RETURN")
		testnet.MustExec(t, p.Client, cmd, "-A", "OUTPUT", "-j", "USER-CHAIN")
	}
	testnet.MustExec(t, p.Client, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "80")
	before4 := saveWithout(t, p.Client, "iptables-save")
	before6 := saveWithout(t, p.Client, "ip6tables-save")
	specs := []netfault.Spec{
		{Kind: netfault.KindDrop, Dst: p.ServerV4.String(), Port: 2049, Prob: 0.5},
		{Kind: netfault.KindReject, Dst: p.ServerV4.String(), Port: 2049, Dir: netfault.DirBoth},
		{Kind: netfault.KindDrop, Dst: p.ServerV6.String(), Port: 2049, Proto: "udp", Dir: netfault.DirIn},
		{Kind: netfault.KindUnreachable, Dst: "10.99.0.0/16"},
	}
	for _, s := range specs {
		s.Netns = p.Client
		if _, err := m.Apply(ctx, s.WithDefaults()); err != nil {
			t.Fatal(err)
		}
	}
	out := testnet.MustExec(t, p.Client, "iptables", "-S", "OUTPUT")
	if !strings.HasPrefix(strings.SplitN(out, "\n", 3)[1], "-A OUTPUT -m comment --comment nfslab -j NFSLAB-OUTPUT") {
		t.Fatalf("jump is not the first rule of OUTPUT:\n%s", out)
	}
	if got := saveWithout(t, p.Client, "iptables-save"); got != before4 {
		t.Fatalf("foreign iptables rules changed by apply:\nbefore:\n%s\nafter:\n%s", before4, got)
	}
	if got := saveWithout(t, p.Client, "ip6tables-save"); got != before6 {
		t.Fatalf("foreign ip6tables rules changed by apply:\nbefore:\n%s\nafter:\n%s", before6, got)
	}
	ids, err := m.HealAll(ctx, p.Client)
	if err != nil || len(ids) != len(specs) {
		t.Fatalf("heal all: %v %v", ids, err)
	}
	full4 := saveNoise.ReplaceAllString(testnet.MustExec(t, p.Client, "iptables-save"), "")
	if strings.Contains(full4, "NFSLAB") || strings.Contains(full4, "nfslab:") {
		t.Fatalf("nfslab left behind:\n%s", full4)
	}
	if got := saveWithout(t, p.Client, "iptables-save"); got != before4 {
		t.Fatalf("foreign rules changed by heal")
	}
	if got := saveWithout(t, p.Client, "ip6tables-save"); got != before6 {
		t.Fatalf("foreign ip6 rules changed by heal")
	}
	nothingLeft(t, p.Client)
}

// TestKernelCrashRecovery: a second Manager (a new process after a crash)
// finds the first one's faults from the kernel and the state directory,
// including a rule left in the legacy backend, and heals them all.
func TestKernelCrashRecovery(t *testing.T) {
	p, _ := kernelSetup(t)
	privtest.Tools(t, "iptables-legacy", "iptables-legacy-save")
	ctx := context.Background()
	dir := t.TempDir()
	m1, err := netfault.NewManager(netfault.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range []netfault.Spec{
		{Kind: netfault.KindDrop, Dst: p.ServerV4.String(), Port: 2049, Label: "one"},
		{Kind: netfault.KindReject, Dst: p.ServerV6.String(), Port: 2049, Dir: netfault.DirBoth},
		{Kind: netfault.KindUnreachable, Dst: "10.98.0.0/16", RouteType: netfault.RouteProhibit},
	} {
		s.Netns = p.Client
		f, err := m1.Apply(ctx, s.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, f.ID)
	}
	// An nfslab rule in the legacy backend with no state at all.
	for _, a := range [][]string{
		{"-N", netfault.ChainOut},
		{"-I", "OUTPUT", "1", "-m", "comment", "--comment", "nfslab", "-j", netfault.ChainOut},
		{"-A", netfault.ChainOut, "-d", "10.97.0.1/32", "-p", "tcp", "-m", "time", "--datestop", "2037-01-01T00:00:00", "-m", "comment", "--comment", "nfslab:0badc0de", "-j", "DROP"},
	} {
		testnet.MustExec(t, p.Client, "iptables-legacy", a...)
	}
	m2, err := netfault.NewManager(netfault.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := m2.List(ctx, p.Client)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 4 {
		t.Fatalf("second manager lists %d faults: %+v", len(fs), fs)
	}
	if fs[len(fs)-1].ID != "0badc0de" && fs[0].ID != "0badc0de" {
		t.Fatalf("legacy rule not listed: %+v", fs)
	}
	for _, f := range fs {
		if f.ID == ids[0] && (f.Spec.Label != "one" || f.Created.IsZero()) {
			t.Fatalf("metadata not recovered: %+v", f)
		}
	}
	healed, err := m2.HealAll(ctx, p.Client)
	if err != nil || len(healed) != 4 {
		t.Fatalf("heal all: %v %v", healed, err)
	}
	nothingLeft(t, p.Client)
	if out := testnet.MustExec(t, p.Client, "iptables-legacy-save"); strings.Contains(out, "NFSLAB") || strings.Contains(out, "nfslab") {
		t.Fatalf("legacy objects left:\n%s", out)
	}
}

// TestKernelApplyHealLatency measures Manager.Apply and Heal of one drop
// against raw `iptables -I`/`-D` of the same rule (same options, same
// comment, into nfslab's chain) in the same namespace and the same run, and
// reports the ratios (see docs/netfault.md). "long-lived" is the daemon's
// Manager (Options.LongLived), "direct" a default Manager; each already
// has one fault applied, as in steady use. Rounds interleave the three so
// that machine load hits them alike; medians are reported.
func TestKernelApplyHealLatency(t *testing.T) {
	privtest.Short(t)
	p, direct := kernelSetup(t)
	ctx := context.Background()
	long, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir(), LongLived: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = long.Close() })
	const n = 31
	spec := netfault.Spec{Kind: netfault.KindDrop, Dst: p.ServerV4.String(), Port: 2049, Netns: p.Client, For: time.Minute}.WithDefaults()
	for _, m := range []*netfault.Manager{long, direct} {
		if _, err := m.Apply(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := direct.Plan(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The raw rule is the one nfslab appends, with a fixed comment.
	last := strings.Fields(plan.Rules[len(plan.Rules)-1])
	var rule []string
	for i, a := range last {
		if a == "-A" {
			rule = append([]string{}, last[i+2:]...)
			break
		}
	}
	for i, a := range rule {
		if a == "nfslab:<id>" {
			rule[i] = "nfslab:raw"
		}
	}
	type series struct{ apply, heal []time.Duration }
	var lng, dir, raw series
	one := func(m *netfault.Manager, s *series) {
		st := time.Now()
		f, err := m.Apply(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		s.apply = append(s.apply, time.Since(st))
		st = time.Now()
		if err := m.Heal(ctx, p.Client, f.ID); err != nil {
			t.Fatal(err)
		}
		s.heal = append(s.heal, time.Since(st))
	}
	for i := 0; i < n; i++ {
		one(long, &lng)
		one(direct, &dir)
		err := testnet.Do(p.Client, func() error {
			st := time.Now()
			if _, err := cmdrun.Output(ctx, "iptables", append([]string{"-w", "-t", "filter", "-I", netfault.ChainOut, "1"}, rule...)...); err != nil {
				return err
			}
			raw.apply = append(raw.apply, time.Since(st))
			st = time.Now()
			_, err := cmdrun.Output(ctx, "iptables", append([]string{"-w", "-t", "filter", "-D", netfault.ChainOut}, rule...)...)
			raw.heal = append(raw.heal, time.Since(st))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var ens []time.Duration
	for i := 0; i < n; i++ {
		st := time.Now()
		if err := long.EnsureJumps(ctx, p.Client); err != nil {
			t.Fatal(err)
		}
		ens = append(ens, time.Since(st))
	}
	med := func(d []time.Duration) time.Duration {
		x := append([]time.Duration(nil), d...)
		slices.Sort(x)
		return x[len(x)/2]
	}
	ratio := func(a, b []time.Duration) float64 { return float64(med(a)) / float64(med(b)) }
	t.Logf("raw iptables: -I %v, -D %v (median of %d)", med(raw.apply), med(raw.heal), n)
	t.Logf("long-lived (daemon): apply %v (ratio %.2f), heal %v (ratio %.2f)",
		med(lng.apply), ratio(lng.apply, raw.apply), med(lng.heal), ratio(lng.heal, raw.heal))
	t.Logf("direct (default): apply %v (ratio %.2f), heal %v (ratio %.2f)",
		med(dir.apply), ratio(dir.apply, raw.apply), med(dir.heal), ratio(dir.heal, raw.heal))
	t.Logf("EnsureJumps, jump already first: %v", med(ens))
}

// TestKernelLongLivedRecovers checks the hot path's assumptions against
// real iptables: a long-lived Manager whose chain was removed behind its
// back recovers on the next Apply (the error of `iptables -A` into a
// missing chain is recognised), EnsureJumps moves the jump back above a
// rule inserted at the top, and Close leaves nothing.
func TestKernelLongLivedRecovers(t *testing.T) {
	p, _ := kernelSetup(t)
	ctx := context.Background()
	m, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir(), LongLived: true})
	if err != nil {
		t.Fatal(err)
	}
	spec := netfault.Spec{Kind: netfault.KindDrop, Dst: p.ServerV4.String(), Port: 2049, Netns: p.Client, For: time.Minute}.WithDefaults()
	f, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Heal(ctx, p.Client, f.ID); err != nil {
		t.Fatal(err)
	}
	// The empty chain stayed; another tool removes it and its jump.
	testnet.MustExec(t, p.Client, "iptables", "-D", "OUTPUT", "-m", "comment", "--comment", "nfslab", "-j", netfault.ChainOut)
	testnet.MustExec(t, p.Client, "iptables", "-X", netfault.ChainOut)
	g, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatalf("apply after the chain was removed: %v", err)
	}
	firstIsJump := func() bool {
		out := strings.Split(strings.TrimSpace(testnet.MustExec(t, p.Client, "iptables", "-S", "OUTPUT")), "\n")
		return len(out) >= 2 && strings.HasSuffix(out[1], "-j "+netfault.ChainOut)
	}
	if !firstIsJump() {
		t.Fatal("jump not at position 1 after recovery")
	}
	testnet.MustExec(t, p.Client, "iptables", "-I", "OUTPUT", "1", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT")
	if err := m.EnsureJumps(ctx, p.Client); err != nil {
		t.Fatal(err)
	}
	if !firstIsJump() {
		t.Fatal("EnsureJumps did not move the jump back to position 1")
	}
	if err := m.Heal(ctx, p.Client, g.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, p.Client)
	testnet.MustExec(t, p.Client, "iptables", "-D", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT")
}

// TestKernelRouteIDsV6: each IPv6 route fault carries its own ID in the
// kernel (the window metric), so two faults on one prefix are told apart
// and a Manager without state finds the right ID.
func TestKernelRouteIDsV6(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	spec := netfault.Spec{Kind: netfault.KindUnreachable, Dst: "fd00:77::/64", Netns: p.Client, For: time.Minute}.WithDefaults()
	seen := map[string]bool{}
	for range 3 {
		f, err := m.Apply(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if seen[f.ID] {
			t.Fatalf("ID %s given twice on one prefix", f.ID)
		}
		seen[f.ID] = true
		var tag uint64
		if _, err := fmt.Sscanf(f.ID, "%08x", &tag); err != nil {
			t.Fatal(err)
		}
		out := testnet.MustExec(t, p.Client, "ip", "-6", "route", "show", "proto", "73")
		if !strings.Contains(out, "fd00:77::/64") || !strings.Contains(out, fmt.Sprintf("window %d", tag)) {
			t.Fatalf("route of %s does not carry its ID (window %d):\n%s", f.ID, tag, out)
		}
		stateless, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if g := faultByID(t, stateless, p.Client, f.ID); g.Spec.Dst != "fd00:77::/64" {
			t.Fatalf("found from the kernel alone: %+v", g)
		}
		if err := m.Heal(ctx, p.Client, f.ID); err != nil {
			t.Fatal(err)
		}
	}
	nothingLeft(t, p.Client)
}

// TestKernelStatePerNamespace: two namespaces keep their records apart in
// one state directory, each under its namespace's inode.
func TestKernelStatePerNamespace(t *testing.T) {
	p, _ := kernelSetup(t)
	ctx := context.Background()
	dir := t.TempDir()
	m, err := netfault.NewManager(netfault.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{p.Client, p.Server} {
		t.Cleanup(func() {
			if _, err := m.HealAll(context.Background(), ns); err != nil {
				t.Errorf("final heal in %s: %v", ns, err)
			}
		})
		f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Netns: ns, Label: ns}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		ino := strings.TrimSpace(testnet.MustExec(t, ns, "stat", "-L", "-c", "%i", "/proc/self/ns/net"))
		recs, _ := filepath.Glob(filepath.Join(dir, "net-*-"+ino, f.ID+".json"))
		if len(recs) != 1 {
			all, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
			t.Fatalf("record of %s not under the inode %s of %s: %v", f.ID, ino, ns, all)
		}
		if g := faultByID(t, m, ns, f.ID); g.Spec.Label != ns || g.Created.IsZero() {
			t.Fatalf("record of %s in %s: %+v", f.ID, ns, g)
		}
	}
	for _, ns := range []string{p.Client, p.Server} {
		if fs, _ := m.List(ctx, ns); len(fs) != 1 || fs[0].Spec.Label != ns {
			t.Fatalf("%s lists %+v", ns, fs)
		}
	}
}

// TestKernelZoneBindsInterface: a zoned link-local destination becomes
// -o/-i IFACE in the kernel, status reads the zone back from the rule, and
// heal by spec removes it.
func TestKernelZoneBindsInterface(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "fe80::1%lo", Port: 2049, Dir: netfault.DirBoth, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	save := testnet.MustExec(t, p.Client, "ip6tables-save")
	if !regexp.MustCompile(`-A NFSLAB-OUTPUT -d fe80::1/128 -o lo .*nfslab:`+f.ID).MatchString(save) ||
		!regexp.MustCompile(`-A NFSLAB-INPUT -s fe80::1/128 -i lo .*nfslab:`+f.ID).MatchString(save) {
		t.Fatalf("rules not bound to lo:\n%s", save)
	}
	stateless, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if g := faultByID(t, stateless, p.Client, f.ID); g.Spec.Dst != "fe80::1%lo" || g.Spec.Dir != netfault.DirBoth {
		t.Fatalf("read back from the kernel: %+v", g.Spec)
	}
	if err := m.Heal(ctx, p.Client, f.ID); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, p.Client)
}

// localhostDropMisses checks that 127.0.0.1:2049 reaches ln through the
// test's DNAT, then applies the seed's drop aimed at localhost and checks
// that it leaves connections alone and counts nothing: the verdict's
// findings are the caller's to check.
func localhostDropMisses(t *testing.T, p *testnet.Pair, m *netfault.Manager, ln *testnet.TCPServer) (netfault.Fault, netfault.Verdict) {
	t.Helper()
	ctx := context.Background()
	local := netip.MustParseAddrPort("127.0.0.1:2049")
	if errno, _ := dial(t, p.Client, local, 2*time.Second); errno != 0 || !accepted(ln) {
		t.Fatalf("DNAT setup does not reach the server: %v", errno)
	}
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if errno, _ := dial(t, p.Client, local, 2*time.Second); errno != 0 {
		t.Fatalf("plain localhost drop unexpectedly bit: %v", errno)
	}
	v, err := netfault.Verify(ctx, m, clock.Real{}, p.Client, f.ID, 500*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if v.Bit || v.Packets != 0 {
		t.Fatalf("plain drop counted hits: %+v", v)
	}
	return f, v
}

// matchOriginalBites heals the plain drop id and applies the fix the
// findings give, --match-original, which must time connections out and
// count packets.
func matchOriginalBites(t *testing.T, p *testnet.Pair, m *netfault.Manager, id string) {
	t.Helper()
	ctx := context.Background()
	if err := m.Heal(ctx, p.Client, id); err != nil {
		t.Fatal(err)
	}
	g, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, MatchOriginal: true, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if errno, took := dial(t, p.Client, netip.MustParseAddrPort("127.0.0.1:2049"), 1500*time.Millisecond); errno != unix.ETIMEDOUT {
		t.Fatalf("--match-original drop did not bite: %v after %v", errno, took)
	}
	if h := faultByID(t, m, p.Client, g.ID); h.Packets == 0 {
		t.Fatalf("--match-original counters stayed at 0")
	}
}
