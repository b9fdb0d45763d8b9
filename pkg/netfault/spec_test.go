package netfault_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
)

func TestValidateRefusesDangerousAndMalformed(t *testing.T) {
	for _, tc := range []struct {
		spec netfault.Spec
		want string
	}{
		{netfault.Spec{Kind: netfault.KindUnreachable, Dst: "0.0.0.0/0"}, "0.0.0.0/0"},
		{netfault.Spec{Kind: netfault.KindUnreachable, Dst: "::/0", RouteType: netfault.RouteBlackhole}, "::/0"},
		{netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.1.2.3/0"}, "10.1.2.3/0"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "0.0.0.0/0", Port: 0}, "0.0.0.0/0"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Netns: "."}, `"."`},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Netns: ".."}, `".."`},
		{netfault.Spec{Kind: netfault.KindUnreachable, Dst: "fe80::1%lo"}, "fe80::1%lo"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "fe80::1%2"}, `"2"`},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "fe80::1%a/b"}, "fe80::1%a/b"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "fe80::1%averyveryverylongname"}, "averyveryverylongname"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", LocalPort: 70000}, "local port 70000"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", LocalPort: -1}, "local port -1"},
		{netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.5", LocalPort: 2049, Delay: time.Second}, "--local-port 2049 applies to drop and reject, not delay"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", LocalPort: 2049, MatchOriginal: true}, "--local-port 2049 and --match-original"},
		{netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.0.0.5", LocalPort: 2049}, "local port"},
		{netfault.Spec{Kind: netfault.KindDrop, Dst: "0.0.0.0/0"}, "0.0.0.0/0"},
	} {
		err := tc.spec.WithDefaults().Validate()
		if !errors.Is(err, netfault.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalid naming %s", tc.spec, err, tc.want)
		}
	}
	for _, ok := range []netfault.Spec{
		{Kind: netfault.KindUnreachable, Dst: "0.0.0.0/0", Netns: "lab"},
		{Kind: netfault.KindUnreachable, Dst: "::/0", Force: true},
		{Kind: netfault.KindDrop, Dst: "0.0.0.0/0", Port: 2049},
		{Kind: netfault.KindDrop, Dst: "fe80::1%lo"},
		{Kind: netfault.KindDrop, Dst: "fe80::1%eth0.100", Dir: netfault.DirBoth},
		{Kind: netfault.KindDrop, Dst: "10.0.0.5", Netns: "a.b"},
		{Kind: netfault.KindDrop, Dst: "0.0.0.0/0", LocalPort: 2049, Dir: netfault.DirBoth}, // every client of the server's port
		{Kind: netfault.KindReject, Dst: "10.0.0.5", LocalPort: 2049, Port: 800, Dir: netfault.DirIn},
	} {
		if err := ok.WithDefaults().Validate(); err != nil {
			t.Errorf("%+v refused: %v", ok, err)
		}
	}
}

// A zoned link-local destination binds the rule to the zone's interface,
// and status shows what the rule matches.
func TestZoneBindsRuleToInterface(t *testing.T) {
	m, w, _, dir := newFake(t)
	ctx := context.Background()
	spec := netfault.Spec{Kind: netfault.KindDrop, Dst: "fe80::1%lo", Port: 2049, Dir: netfault.DirBoth}.WithDefaults()
	p, err := m.Plan(ctx, spec)
	must(t, err)
	plan := strings.Join(p.Rules, "\n")
	for _, want := range []string{"-A NFSLAB-OUTPUT -d fe80::1/128 -o lo -p tcp", "-A NFSLAB-INPUT -s fe80::1/128 -i lo -p tcp"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	f, err := m.Apply(ctx, spec)
	must(t, err)
	ipt := w.IPTables("", "ip6tables")
	out := strings.Join(ipt.Rules("filter", netfault.ChainOut), "\n")
	in := strings.Join(ipt.Rules("filter", netfault.ChainIn), "\n")
	if !strings.Contains(out, "-o lo") || !strings.Contains(in, "-i lo") {
		t.Fatalf("rules not bound to lo:\n%s\n%s", out, in)
	}
	// From the kernel alone (no state record), the zone comes back.
	m2, err := netfault.NewManager(w.Options(nil, t.TempDir()))
	must(t, err)
	for _, mm := range []*netfault.Manager{m, m2} {
		fs, err := mm.List(ctx, "")
		must(t, err)
		if len(fs) != 1 || fs[0].Spec.Dst != "fe80::1%lo" || fs[0].Spec.Dir != netfault.DirBoth {
			t.Fatalf("listed %+v", fs)
		}
	}
	must(t, m.Heal(ctx, "", f.ID))
	if ents, _ := fs2(dir); len(ents) != 0 || len(ipt.Rules("filter", netfault.ChainOut)) != 0 {
		t.Fatalf("heal left %v / %q", ents, ipt.Rules("filter", netfault.ChainOut))
	}
}

// A fault that names the server's own port leaves the client's port open
// when the user gave none: the client's is ephemeral.
func TestDefaultPortFor(t *testing.T) {
	if p := netfault.DefaultPortFor(netfault.Spec{Kind: netfault.KindDrop}); p != netfault.DefaultPort {
		t.Errorf("client side: %d", p)
	}
	if p := netfault.DefaultPortFor(netfault.Spec{Kind: netfault.KindDrop, LocalPort: 2049}); p != 0 {
		t.Errorf("server side: %d", p)
	}
}
