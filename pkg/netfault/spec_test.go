package netfault_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
