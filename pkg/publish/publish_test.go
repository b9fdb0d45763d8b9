package publish_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
	"github.com/nfslab/nfslab/pkg/publish"
)

// fakeSysctl keeps values per namespace.
type fakeSysctl struct {
	mu   sync.Mutex
	v    map[string]string
	sets []string
	// failOn fails a Set of that value.
	failOn string
}

func (f *fakeSysctl) Get(ns, key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.v[ns+"|"+key]; ok {
		return v, nil
	}
	return "0", nil
}

func (f *fakeSysctl) Set(ns, key, val string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn != "" && val == f.failOn {
		return errors.New("read-only file system")
	}
	f.sets = append(f.sets, ns+"|"+key+"="+val)
	f.v[ns+"|"+key] = val
	return nil
}

type env struct {
	w     *netfaulttest.World
	sys   *fakeSysctl
	state string
	p     *publish.Publisher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{w: netfaulttest.NewWorld(), sys: &fakeSysctl{v: map[string]string{}}, state: t.TempDir()}
	e.p = e.publisher()
	return e
}

// publisher is a fresh Publisher on the same world: a second process, or
// the next one after a crash.
func (e *env) publisher() *publish.Publisher {
	return publish.New(publish.Options{
		IPTables:    func(ns string) (publish.IPTables, error) { return e.w.IPTables(ns, "iptables"), nil },
		Sysctl:      e.sys,
		StateDir:    e.state,
		NetnsExists: func(string) bool { return true },
	})
}

func spec(id, ns string) publish.Spec {
	return publish.Spec{ID: id, Netns: ns, From: netip.MustParseAddrPort("127.0.0.1:2049"), To: netip.MustParseAddrPort("10.213.0.2:2049")}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// foreign puts user rules in the nat table that publish must not touch.
func foreign(t *testing.T, ipt *netfaulttest.IPTables) {
	t.Helper()
	must(t, ipt.Append("nat", "OUTPUT", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "80"))
	must(t, ipt.NewChain("nat", "USER-POST"))
	must(t, ipt.Append("nat", "POSTROUTING", "-j", "USER-POST"))
	must(t, ipt.Append("nat", "USER-POST", "-s", "10.0.0.0/8", "-j", "MASQUERADE"))
}

func TestPublishRulesAndUnpublish(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ipt := e.w.IPTables("cns", "iptables")
	foreign(t, ipt)
	before := ipt.Save()
	rec, err := e.p.Publish(ctx, spec("run1", "cns"))
	must(t, err)
	if rec.PrevRouteLocalnet != "0" {
		t.Fatalf("previous route_localnet %q, want 0", rec.PrevRouteLocalnet)
	}
	want := map[string][]string{
		"OUTPUT":          {`-A OUTPUT -m comment --comment "nfslab:publish" -j NFSLAB-PUBLISH-OUT`},
		"PREROUTING":      {`-A PREROUTING -m comment --comment "nfslab:publish" -j NFSLAB-PUBLISH-PRE`},
		"POSTROUTING":     {`-A POSTROUTING -m comment --comment "nfslab:publish" -j NFSLAB-PUBLISH-POST`},
		publish.ChainOut:  {`-A NFSLAB-PUBLISH-OUT -d 127.0.0.1/32 -p tcp -m tcp --dport 2049 -m comment --comment "nfslab:publish-run1" -j DNAT --to-destination 10.213.0.2:2049`},
		publish.ChainPre:  {`-A NFSLAB-PUBLISH-PRE -d 127.0.0.1/32 -p tcp -m tcp --dport 2049 -m comment --comment "nfslab:publish-run1" -j DNAT --to-destination 10.213.0.2:2049`},
		publish.ChainPost: {`-A NFSLAB-PUBLISH-POST -s 127.0.0.0/8 -d 10.213.0.2/32 -p tcp -m tcp --dport 2049 -m comment --comment "nfslab:publish-run1" -j MASQUERADE`},
	}
	for chain, lines := range want {
		got := ipt.Rules("nat", chain)
		// the jump is at position 1 of a built-in chain (above the user's rules)
		if len(got) < 2 || got[1] != lines[0] {
			t.Errorf("%s: got %q, want first rule %q", chain, got, lines[0])
		}
	}
	if v, _ := e.sys.Get("cns", publish.RouteLocalnet); v != "1" {
		t.Fatalf("route_localnet %s, want 1", v)
	}
	if _, err := os.Stat(filepath.Join(e.state, "run1.json")); err != nil {
		t.Fatalf("no record: %v", err)
	}
	if _, err := e.p.Publish(ctx, spec("run1", "cns")); !errors.Is(err, publish.ErrInvalid) {
		t.Fatalf("second publish with the same id: %v", err)
	}
	must(t, e.p.Unpublish(ctx, "cns", "run1"))
	if got := ipt.Save(); got != before {
		t.Fatalf("nat table after unpublish:\n%s\nwant:\n%s", got, before)
	}
	if v, _ := e.sys.Get("cns", publish.RouteLocalnet); v != "0" {
		t.Fatalf("route_localnet %s after unpublish, want 0", v)
	}
	if recs, _ := e.p.List(); len(recs) != 0 {
		t.Fatalf("records left: %+v", recs)
	}
	if err := e.p.Unpublish(ctx, "cns", "run1"); !errors.Is(err, publish.ErrNotFound) {
		t.Fatalf("unpublish twice: %v", err)
	}
	// The host namespace was never touched.
	if s := e.w.IPTables("", "iptables").Save(); s != "" {
		t.Fatalf("host namespace touched:\n%s", s)
	}
}

func TestRouteLocalnetRestoredByTheLastPublish(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := spec("a", "cns")
	b := spec("b", "cns")
	b.From = netip.MustParseAddrPort("127.0.0.2:2049")
	_, err := e.p.Publish(ctx, a)
	must(t, err)
	rb, err := e.p.Publish(ctx, b)
	must(t, err)
	if rb.PrevRouteLocalnet != "0" {
		t.Fatalf("second publish must inherit the value from before the first: %q", rb.PrevRouteLocalnet)
	}
	must(t, e.p.Unpublish(ctx, "cns", "a"))
	if v, _ := e.sys.Get("cns", publish.RouteLocalnet); v != "1" {
		t.Fatalf("route_localnet %s while b is still published", v)
	}
	if r := e.w.IPTables("cns", "iptables").Rules("nat", publish.ChainOut); len(r) != 2 || !strings.Contains(r[1], "publish-b") {
		t.Fatalf("b's rule must stay: %q", r)
	}
	must(t, e.p.Unpublish(ctx, "cns", "b"))
	if v, _ := e.sys.Get("cns", publish.RouteLocalnet); v != "0" {
		t.Fatalf("route_localnet %s after the last unpublish", v)
	}
	// Already 1 (set by someone else): publish neither sets nor restores it.
	e.sys.v["cns|"+publish.RouteLocalnet] = "1"
	e.sys.sets = nil
	r, err := e.p.Publish(ctx, a)
	must(t, err)
	must(t, e.p.Unpublish(ctx, "cns", "a"))
	if r.PrevRouteLocalnet != "" || len(e.sys.sets) != 0 {
		t.Fatalf("touched a route_localnet that was already 1: %+v %v", r, e.sys.sets)
	}
}

func TestPublishIsAllOrNothing(t *testing.T) {
	for _, fail := range []string{"NewChain", "Append", "Insert", "sysctl"} {
		t.Run(fail, func(t *testing.T) {
			e := newEnv(t)
			ipt := e.w.IPTables("cns", "iptables")
			foreign(t, ipt)
			before := ipt.Save()
			n := 0
			ipt.Hook = func(op, table, chain string, args []string) error {
				if op == fail {
					if n++; n == 2 { // fail half-way
						return &netfaulttest.Error{Args: append([]string{op}, args...), Status: 1, Msg: "iptables: Resource temporarily unavailable.\n"}
					}
				}
				return nil
			}
			if fail == "sysctl" {
				e.sys.failOn = "1"
			}
			_, err := e.p.Publish(context.Background(), spec("x", "cns"))
			if err == nil {
				t.Fatal("publish succeeded")
			}
			ipt.Hook = nil
			if got := ipt.Save(); got != before {
				t.Fatalf("left behind after %v:\n%s", err, got)
			}
			if recs, _ := e.p.List(); len(recs) != 0 {
				t.Fatalf("record left: %+v", recs)
			}
			if v, _ := e.sys.Get("cns", publish.RouteLocalnet); v != "0" {
				t.Fatalf("route_localnet %s", v)
			}
		})
	}
}

func TestSweepAfterCrash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ipt := e.w.IPTables("cns", "iptables")
	foreign(t, ipt)
	before := ipt.Save()
	_, err := e.p.Publish(ctx, spec("crashed", "cns"))
	must(t, err)
	// A stray rule without a tag in nfslab's chain goes too.
	must(t, ipt.Append("nat", publish.ChainOut, "-d", "127.0.0.9/32", "-j", "DNAT", "--to-destination", "10.1.1.1"))
	// The next process knows nothing but the state directory.
	ids, err := e.publisher().Sweep(ctx)
	must(t, err)
	if strings.Join(ids, ",") != "publish-(untagged rule) (netns cns),publish-crashed (netns cns)" {
		t.Fatalf("removed %q", ids)
	}
	if got := ipt.Save(); got != before {
		t.Fatalf("left behind:\n%s", got)
	}
	if v, _ := e.sys.Get("cns", publish.RouteLocalnet); v != "0" {
		t.Fatalf("route_localnet %s", v)
	}
	// No record: the kernel is still scanned in the namespaces named.
	_, err = e.p.Publish(ctx, spec("norecord", "other"))
	must(t, err)
	must(t, os.Remove(filepath.Join(e.state, "norecord.json")))
	ids, err = e.publisher().Sweep(ctx, "other")
	must(t, err)
	if len(ids) != 1 || ids[0] != "publish-norecord (netns other)" {
		t.Fatalf("removed %q", ids)
	}
	if s := e.w.IPTables("other", "iptables").Rules("nat", publish.ChainOut); s != nil {
		t.Fatalf("chain left: %q", s)
	}
	// Nothing left: a second sweep is a no-op.
	ids, err = e.publisher().Sweep(ctx, "cns", "other")
	if err != nil || len(ids) != 0 {
		t.Fatalf("second sweep: %q %v", ids, err)
	}
}

func TestSpecValidate(t *testing.T) {
	ap := netip.MustParseAddrPort
	ok := spec("ok", "")
	cases := []struct {
		name string
		mod  func(*publish.Spec)
		want string
	}{
		{"bad id", func(s *publish.Spec) { s.ID = "Bad ID" }, `id "Bad ID"`},
		{"proto", func(s *publish.Spec) { s.Proto = "sctp" }, `proto "sctp"`},
		{"no port", func(s *publish.Spec) { s.From = ap("127.0.0.1:0") }, "127.0.0.1:0"},
		{"v6", func(s *publish.Spec) { s.From = ap("[::1]:2049") }, "[::1]:2049 must be a specific IPv4"},
		{"loopback server", func(s *publish.Spec) { s.To = ap("127.0.0.2:2049") }, "loopback"},
		{"same", func(s *publish.Spec) { s.From = s.To }, "server's own address"},
		{"netns", func(s *publish.Spec) { s.Netns = "../x" }, `netns "../x"`},
	}
	if err := ok.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		s := ok
		c.mod(&s)
		err := s.WithDefaults().Validate()
		if !errors.Is(err, publish.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	e := newEnv(t)
	if _, err := e.p.Publish(context.Background(), publish.Spec{From: ap("[::1]:2049"), To: ap("10.0.0.2:2049")}); !errors.Is(err, publish.ErrInvalid) {
		t.Fatalf("bad spec applied: %v", err)
	}
	if e.sys.sets != nil {
		t.Fatal("bad spec touched sysctl")
	}
}

func TestPlanShowsEveryChange(t *testing.T) {
	got := strings.Join(spec("p", "cns").WithDefaults().Plan(), "\n")
	for _, w := range []string{
		"# in network namespace cns",
		"iptables -t nat -A NFSLAB-PUBLISH-OUT -d 127.0.0.1/32 -p tcp -m tcp --dport 2049 -m comment --comment nfslab:publish-p -j DNAT --to-destination 10.213.0.2:2049",
		"iptables -t nat -A NFSLAB-PUBLISH-POST -s 127.0.0.0/8 -d 10.213.0.2/32",
		"iptables -t nat -I OUTPUT 1 -m comment --comment nfslab:publish -j NFSLAB-PUBLISH-OUT",
		"sysctl -w net.ipv4.conf.all.route_localnet=1",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("plan lacks %q:\n%s", w, got)
		}
	}
}

// TestDiagnoseNamesThePublish: netfault's Diagnose, on the same (fake)
// kernel, explains a drop aimed at the published address with
// nat-before-filter and names publish's DNAT rule.
func TestDiagnoseNamesThePublish(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.p.Publish(ctx, spec("seed", ""))
	must(t, err)
	m, err := netfault.NewManager(e.w.Options(nil, t.TempDir()))
	must(t, err)
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049}.WithDefaults())
	must(t, err)
	fs, err := m.Diagnose(ctx, "", f.ID)
	must(t, err)
	var nat *netfault.Finding
	for i := range fs {
		if fs[i].Cause == netfault.CauseNATBeforeFilter && nat == nil {
			nat = &fs[i]
		}
	}
	if nat == nil || !strings.Contains(nat.Detail, publish.ChainOut) || !strings.Contains(nat.Detail, "nfslab:publish-seed") || !strings.Contains(nat.Detail, "10.213.0.2:2049") {
		t.Fatalf("findings: %+v", fs)
	}
}

// The jump is kept at rule 1: a rule another tool inserted above it is
// passed by the next publish.
func TestPublishPutsJumpBackOnTop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ipt := e.w.IPTables("cns", "iptables")
	_, err := e.p.Publish(ctx, spec("one", "cns"))
	must(t, err)
	must(t, ipt.Insert("nat", "OUTPUT", 1, "-p", "tcp", "-m", "tcp", "--dport", "2049", "-j", "ACCEPT"))
	_, err = e.p.Publish(ctx, spec("two", "cns"))
	must(t, err)
	got := ipt.Rules("nat", "OUTPUT")
	if len(got) != 3 || got[1] != `-A OUTPUT -m comment --comment "nfslab:publish" -j NFSLAB-PUBLISH-OUT` {
		t.Fatalf("nat OUTPUT %q: the jump is not rule 1", got)
	}
	must(t, e.p.Unpublish(ctx, "cns", "one"))
	must(t, e.p.Unpublish(ctx, "cns", "two"))
	if got := ipt.Rules("nat", "OUTPUT"); len(got) != 2 {
		t.Fatalf("nat OUTPUT after unpublish %q", got)
	}
}
