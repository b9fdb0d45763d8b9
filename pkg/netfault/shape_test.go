package netfault_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/vishvananda/netlink"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

func TestValidateShape(t *testing.T) {
	bad := []struct {
		spec netfault.Spec
		want string
	}{
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5"}, "needs --delay"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 10 * time.Millisecond, Jitter: 20 * time.Millisecond}, "jitter 20ms exceeds"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 10 * time.Millisecond, Correlation: 25}, "correlation 25% needs --jitter"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 10 * time.Millisecond, Loss: 101}, "loss 101%"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 10 * time.Millisecond, Duplicate: -1}, "duplicate -1%"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Loss: 5, Reorder: 10}, "reorder 10% needs --delay"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 2 * time.Minute}, "exceeds the maximum"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 1500 * time.Nanosecond}, "whole microseconds"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: time.Millisecond, Rate: 1e6}, "rate and burst apply only to limit"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: time.Millisecond, MatchOriginal: true}, "--match-original applies to drop and reject"},
		{netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5"}, "needs --rate"},
		{netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1000}, "rate 1kbit is below"},
		{netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1e6, Delay: time.Second}, "apply only to delay faults"},
		{netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1e6, Dir: "sideways"}, `"sideways"`},
		{netfault.Spec{Kind: netfault.KindLimit, Dst: "0.0.0.0/0", Port: 0, Rate: 1e6}, "covers every address"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Loss: 5}, "apply only to delay faults, not drop"},
	}
	for _, tc := range bad {
		err := tc.spec.WithDefaults().Validate()
		if !errors.Is(err, netfault.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalid naming %q", tc.spec, err, tc.want)
		}
	}
	for _, ok := range []netfault.Spec{
		{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 200 * time.Millisecond, Jitter: 50 * time.Millisecond, Correlation: 25, Loss: 1, Duplicate: 1, Corrupt: 0.1, Reorder: 5},
		{Kind: netfault.KindDelay, Dst: "fd00::5", Loss: 10, Dir: netfault.DirBoth},
		{Kind: netfault.KindLimit, Dst: "10.0.0.0/24", Rate: 1e6, Burst: 32 << 10, Dir: netfault.DirIn},
	} {
		if err := ok.WithDefaults().Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

func TestRateAndSizeUnits(t *testing.T) {
	for in, want := range map[string]netfault.Rate{"1mbit": 1e6, "512kbit": 512e3, "10gbit": 1e10, "100kbps": 800e3, "1.5mbit": 1.5e6, "9600": 9600, "2Mbit": 2e6} {
		got, err := netfault.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]netfault.Size{"32kb": 32 << 10, "1mb": 1 << 20, "1500b": 1500, "1500": 1500, "64k": 64 << 10} {
		got, err := netfault.ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1mbit", "1xbit", "NaNmbit"} {
		if _, err := netfault.ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
	// A scenario step's fault and the daemon's JSON carry tc's units.
	var s netfault.Spec
	if err := yaml.UnmarshalWithOptions([]byte("dst: 10.0.0.5\nrate: 1mbit\nburst: 32kb\ndelay: 200ms\njitter: 50ms\nloss: 1.5\n"), &s, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if s.Rate != 1e6 || s.Burst != 32<<10 || s.Delay != 200*time.Millisecond || s.Jitter != 50*time.Millisecond || s.Loss != 1.5 {
		t.Fatalf("yaml: %+v", s)
	}
	b, err := json.Marshal(netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1e6, Burst: 32 << 10})
	if err != nil || !strings.Contains(string(b), `"rate":"1mbit"`) || !strings.Contains(string(b), `"burst":"32kb"`) {
		t.Fatalf("json: %s %v", b, err)
	}
	var back netfault.Spec
	if err := json.Unmarshal(b, &back); err != nil || back.Rate != 1e6 || back.Burst != 32<<10 {
		t.Fatalf("json back: %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"kind":"limit","dst":"10.0.0.5","rate":"fast"}`), &back); !errors.Is(err, netfault.ErrInvalid) {
		t.Fatalf("bad rate in json: %v", err)
	}
}

func TestPlanShape(t *testing.T) {
	m, w, _, _ := newFake(t)
	p, err := m.Plan(context.Background(), netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Port: 2049, Delay: 200 * time.Millisecond, Jitter: 50 * time.Millisecond, Correlation: 25, Loss: 1, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables -t mangle -N NFSLAB-SHAPE  # if missing",
		"iptables -t mangle -I POSTROUTING 1 -m comment --comment nfslab -j NFSLAB-SHAPE  # unless already first",
		"tc qdisc replace dev eth0 root handle 7f73: htb default 0 direct_qlen 1000",
		"tc class add dev eth0 parent 7f73: classid 7f73:<n> htb rate 10gbit ceil 10gbit quantum 60000",
		"tc qdisc add dev eth0 parent 7f73:<n> handle <7e00+n>: netem limit 20000 delay 200ms 50ms 25% loss 1%",
		"iptables -t mangle -A NFSLAB-SHAPE -d 10.0.0.5/32 -p tcp -m tcp --dport 2049 -m time --datestop 2026-06-12T16:00:59 -m comment --comment nfslab:<id> -j CLASSIFY --set-class 7f73:<n>",
	}
	if !slices.Equal(p.Rules, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(p.Rules, "\n"), strings.Join(want, "\n"))
	}
	p, err = m.Plan(context.Background(), netfault.Spec{Kind: netfault.KindLimit, Dst: "fd00::5", Port: 2049, Rate: 1e6, Burst: 32 << 10, Dir: netfault.DirIn, Netns: "lab", For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(p.Rules, "\n")
	for _, s := range []string{
		"ip -n lab link add nfslab-<id> type ifb",
		"tc -n lab class add dev nfslab-<id> parent 7f73: classid 7f73:1 htb rate 1mbit ceil 1mbit burst 32kb cburst 32kb",
		"tc -n lab qdisc add dev eth0 ingress",
		"tc -n lab filter add dev eth0 ingress protocol ipv6 prio 32627 u32 match ip6 src fd00::5/128 match ip6 protocol 6 0xff match ip6 sport 2049 0xffff action mirred egress redirect dev nfslab-<id>",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("plan lacks %q:\n%s", s, got)
		}
	}
	if n := w.Shape("").Calls["QdiscReplace"] + w.Shape("").Calls["ClassAdd"] + w.Shape("lab").Calls["LinkAdd"]; n != 0 {
		t.Fatalf("plan changed the kernel: %d calls", n)
	}
}

func hasChain(ipt *netfaulttest.IPTables, table, chain string) bool {
	ok, _ := ipt.ChainExists(table, chain)
	return ok
}

func readShapeState(t *testing.T, dir, id string) map[string]any {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "*", id+".json"))
	if len(matches) != 1 {
		t.Fatalf("state of %s: %v", id, matches)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	sh, _ := rec["shape"].(map[string]any)
	return sh
}

// TestShapeLimitsShareRootAndRestoreIt: two limits on one device share
// nfslab's htb root (one class each); the record says what the root
// replaced; healing the last one puts fq_codel back.
func TestShapeLimitsShareRootAndRestoreIt(t *testing.T) {
	m, w, _, dir := newFake(t)
	ctx := context.Background()
	sh := w.Shape("")
	a, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1e6, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if kind, h := sh.Root("eth0"); kind != "htb" || h != netlink.MakeHandle(netfault.ShapeMajor, 0) {
		t.Fatalf("root %s %x", kind, h)
	}
	if st := readShapeState(t, dir, a.ID); st["replaced"] != "fq_codel" || st["dev"] != "eth0" || st["minor"] != 1.0 {
		t.Fatalf("record: %v", st)
	}
	b, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.6", Port: 0, Rate: 2e6, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if st := readShapeState(t, dir, b.ID); st["replaced"] != "fq_codel" || st["minor"] != 2.0 {
		t.Fatalf("second record: %v", st)
	}
	rules := w.IPTables("", "iptables").Rules("mangle", netfault.ChainShape)
	if len(rules) != 3 || !strings.Contains(rules[2], "--set-class 7f73:2") || strings.Contains(rules[2], "--dport") {
		t.Fatalf("mangle rules: %v", rules)
	}
	sh.SetClassPackets("eth0", netlink.MakeHandle(netfault.ShapeMajor, 2), 42, 4200)
	fs, err := m.List(ctx, "")
	if err != nil || len(fs) != 2 {
		t.Fatalf("list: %+v %v", fs, err)
	}
	for _, f := range fs {
		if f.ID == b.ID && (f.Packets != 42 || f.Bytes != 4200 || !f.Counted || f.Spec.Rate != 2e6) {
			t.Fatalf("counters of %s: %+v", b.ID, f)
		}
	}
	if err := m.Heal(ctx, "", a.ID); err != nil {
		t.Fatal(err)
	}
	if kind, _ := sh.Root("eth0"); kind != "htb" {
		t.Fatalf("root removed while %s still uses it: %s", b.ID, kind)
	}
	if err := m.Heal(ctx, "", b.ID); err != nil {
		t.Fatal(err)
	}
	if kind, h := sh.Root("eth0"); kind != "fq_codel" || h != 0 {
		t.Fatalf("root not restored: %s %x\n%s", kind, h, strings.Join(sh.Dump(), "\n"))
	}
	if hasChain(w.IPTables("", "iptables"), "mangle", netfault.ChainShape) {
		t.Fatal("mangle chain left")
	}
}

// TestShapeDelayWithoutNetem: on a kernel without sch_netem (the host's)
// the netem leaf fails with ENOENT; Apply says why and leaves nothing.
func TestShapeDelayWithoutNetem(t *testing.T) {
	m, w, _, dir := newFake(t)
	ctx := context.Background()
	before := w.Shape("").Dump()
	_, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Delay: 200 * time.Millisecond, For: time.Minute}.WithDefaults())
	if err == nil || !strings.Contains(err.Error(), "sch_netem") {
		t.Fatalf("apply without netem: %v", err)
	}
	if after := w.Shape("").Dump(); !slices.Equal(after, before) {
		t.Fatalf("not rolled back:\n%s\nwas:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	if hasChain(w.IPTables("", "iptables"), "mangle", netfault.ChainShape) {
		t.Fatal("mangle chain left")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*", "*.json")); len(m) != 0 {
		t.Fatalf("state left: %v", m)
	}
}

// TestShapeDelayListsNetem: with netem (the VM's kernel) the leaf carries
// the delay, and List reads it back from the kernel without state.
func TestShapeDelayListsNetem(t *testing.T) {
	m, w, clk, _ := newFake(t)
	ctx := context.Background()
	delete(w.Shape("").Unknown, "netem")
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", Port: 2049, Delay: 200 * time.Millisecond, Jitter: 50 * time.Millisecond, Correlation: 25, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if d := strings.Join(w.Shape("").Dump(), "\n"); !strings.Contains(d, "eth0 leaf netem 7e010000 parent 7f730001") {
		t.Fatalf("no netem leaf:\n%s", d)
	}
	// A Manager without the records (another state dir) still knows it.
	m2, err := netfault.NewManager(w.Options(clk, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := m2.List(ctx, "")
	if err != nil || len(fs) != 1 {
		t.Fatalf("list: %+v %v", fs, err)
	}
	g := fs[0]
	if g.ID != f.ID || g.Spec.Kind != netfault.KindDelay || g.Spec.Delay != 200*time.Millisecond || g.Spec.Jitter != 50*time.Millisecond || g.Spec.Correlation != 25 ||
		g.Spec.Dst != "10.0.0.5" || g.Spec.Port != 2049 || !g.Expires.Equal(f.Expires) {
		t.Fatalf("listed without state: %+v", g)
	}
}

// TestShapeRefusesForeignRoot: a user's root qdisc is named and untouched.
func TestShapeRefusesForeignRoot(t *testing.T) {
	m, w, _, _ := newFake(t)
	w.Shape("").SetRoot("eth0", "tbf", netlink.MakeHandle(1, 0))
	before := w.Shape("").Dump()
	for _, k := range []netfault.Kind{netfault.KindLimit, netfault.KindDelay} {
		spec := netfault.Spec{Kind: k, Dst: "10.0.0.5", Rate: 1e6, Delay: time.Millisecond, For: time.Minute}
		if k == netfault.KindLimit {
			spec.Delay = 0
		} else {
			spec.Rate = 0
		}
		_, err := m.Apply(context.Background(), spec.WithDefaults())
		if !errors.Is(err, netfault.ErrForeignQdisc) || !strings.Contains(err.Error(), "root qdisc tbf (handle 1:)") || !strings.Contains(err.Error(), "eth0") {
			t.Fatalf("%s over a user's tbf: %v", k, err)
		}
		if _, err := m.Plan(context.Background(), spec.WithDefaults()); !errors.Is(err, netfault.ErrForeignQdisc) {
			t.Fatalf("plan over a user's tbf: %v", err)
		}
	}
	if after := w.Shape("").Dump(); !slices.Equal(after, before) {
		t.Fatalf("changed:\n%s", strings.Join(after, "\n"))
	}
}

// TestShapeCrashRecovery: a second Manager with the first's state heals a
// limit in both directions: mangle rule, class, root (fq_codel back), ifb,
// ingress filter and the ingress qdisc the first one added.
func TestShapeCrashRecovery(t *testing.T) {
	m, w, clk, dir := newFake(t)
	ctx := context.Background()
	sh := w.Shape("lab")
	before := sh.Dump()
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1e6, Dir: netfault.DirBoth, Netns: "lab", For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	d := strings.Join(sh.Dump(), "\n")
	for _, s := range []string{"eth0 ingress", "eth0 filter prio 7f73", "nfslab-" + f.ID + " ifb root htb 7f730000", "nfslab-" + f.ID + " class 7f730001", "eth0 class 7f730001"} {
		if !strings.Contains(d, s) {
			t.Fatalf("missing %q:\n%s", s, d)
		}
	}
	m2, err := netfault.NewManager(w.Options(clk, dir))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := m2.HealAll(ctx, "lab")
	if err != nil || !slices.Equal(ids, []string{f.ID}) {
		t.Fatalf("heal all: %v %v", ids, err)
	}
	if after := sh.Dump(); !slices.Equal(after, before) {
		t.Fatalf("left:\n%s\nwas:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	if hasChain(w.IPTables("lab", "iptables"), "mangle", netfault.ChainShape) {
		t.Fatal("mangle chain left")
	}
}

// TestShapeSweepOrphans: a class of nfslab's without rule or record (a
// crash between class and rule, with the record lost) and an expired
// fault are swept; the root goes back.
func TestShapeSweepOrphans(t *testing.T) {
	m, w, clk, _ := newFake(t)
	ctx := context.Background()
	sh := w.Shape("")
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1e6, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.ClassAdd(netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: 2, Parent: netlink.MakeHandle(netfault.ShapeMajor, 0), Handle: netlink.MakeHandle(netfault.ShapeMajor, 9)}, netlink.HtbClassAttrs{Rate: 1e6})); err != nil {
		t.Fatal(err)
	}
	ids, err := m.Sweep(ctx, "")
	if err != nil || !slices.Equal(ids, []string{"class-eth0-7f73:9"}) {
		t.Fatalf("sweep of the orphan: %v %v", ids, err)
	}
	clk.Advance(time.Minute)
	ids, err = m.Sweep(ctx, "")
	if err != nil || !slices.Equal(ids, []string{f.ID}) {
		t.Fatalf("sweep of the expired: %v %v", ids, err)
	}
	if kind, _ := sh.Root("eth0"); kind != "fq_codel" {
		t.Fatalf("root %s", kind)
	}
}

// TestShapeDiagnosis: a class another tool removed (its root replaced)
// and a route that moved are named; the causes shared with drop (no TCP
// connection) still come.
func TestShapeDiagnosis(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	sh := w.Shape("")
	sh.AddLink("eth1", "fq_codel")
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Port: 2049, Rate: 1e6, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	w.SetNetFile("", "tcp", "  sl  local_address rem_address   st\n")
	causes := func() []string {
		fs, err := m.Diagnose(ctx, "", f.ID)
		if err != nil {
			t.Fatal(err)
		}
		var c []string
		for _, x := range fs {
			c = append(c, x.Cause)
		}
		return c
	}
	if c := causes(); !slices.Equal(c, []string{netfault.CauseNoConnection}) {
		t.Fatalf("causes: %v", c)
	}
	sh.RouteDev = "eth1"
	if c := causes(); !slices.Contains(c, netfault.CauseShapeOffRoute) {
		t.Fatalf("route moved: %v", c)
	}
	sh.SetRoot("eth0", "tbf", netlink.MakeHandle(1, 0))
	if c := causes(); !slices.Contains(c, netfault.CauseShapeClassMissing) {
		t.Fatalf("class gone: %v", c)
	}
	// The rule alone is still the fault: heal removes it, the user's tbf stays.
	if err := m.Heal(ctx, "", f.ID); err != nil {
		t.Fatal(err)
	}
	if kind, _ := sh.Root("eth0"); kind != "tbf" {
		t.Fatalf("the user's root was touched: %s", kind)
	}
}

// TestShapeLongLivedHotPath: a daemon's Manager applies a shaping fault
// with one `iptables -A` once its mangle chain is set up, heals it with
// one `iptables -D`, and sets the chain up again when another tool
// removed it; Close removes the empty chain.
func TestShapeLongLivedHotPath(t *testing.T) {
	w := netfaulttest.NewWorld()
	opts := w.Options(clock.NewFake(t0), t.TempDir())
	opts.LongLived = true
	m, err := netfault.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	spec := netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.5", Rate: 1e6, For: time.Minute}.WithDefaults()
	first, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	clear(ipt.Calls)
	f, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if ipt.Calls["Append"] != 1 || len(ipt.Calls) != 1 {
		t.Fatalf("warm apply ran %v, want one Append", ipt.Calls)
	}
	clear(ipt.Calls)
	if err := m.Heal(ctx, "", f.ID); err != nil {
		t.Fatal(err)
	}
	if ipt.Calls["Delete"] != 1 || len(ipt.Calls) != 1 {
		t.Fatalf("heal ran %v, want one Delete", ipt.Calls)
	}
	if err := m.Heal(ctx, "", first.ID); err != nil {
		t.Fatal(err)
	}
	// Another tool removes the empty chain and its jump.
	if err := ipt.Delete("mangle", "POSTROUTING", "-m", "comment", "--comment", "nfslab", "-j", netfault.ChainShape); err != nil {
		t.Fatal(err)
	}
	if err := ipt.DeleteChain("mangle", netfault.ChainShape); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(ctx, spec); err != nil {
		t.Fatalf("apply after the chain was removed: %v", err)
	}
	if _, err := m.HealAll(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if hasChain(ipt, "mangle", netfault.ChainShape) {
		t.Fatal("chain left after Close")
	}
}
