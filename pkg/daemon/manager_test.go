package daemon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

// TestDaemonOverManagerOnFakeKernel runs the daemon on the real Manager
// with netfaulttest's kernel fakes: the daemon's bookkeeping must agree with
// what the Manager leaves in iptables.
func TestDaemonOverManagerOnFakeKernel(t *testing.T) {
	world := netfaulttest.NewWorld()
	clk := clock.NewFake(t0)
	state := t.TempDir()
	mgr, err := netfault.NewManager(world.Options(clk, state))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, daemon.Options{Injector: mgr})
	e.clk = nil // the env's own clock is not the Manager's
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ipt := world.IPTables("lab", "iptables")
	var ids []string
	for _, dst := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		s := drop(dst)
		s.Netns = "lab"
		a, err := e.cli.Apply(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
		if len(a.Rules) == 0 {
			t.Fatalf("no rules in plan: %+v", a)
		}
	}
	if n := ipt.BumpComment("nfslab:"+ids[0], 4, 400); n == 0 {
		t.Fatalf("no rule carries comment nfslab:%s:\n%s", ids[0], ipt.Save())
	}
	fs, err := e.cli.List(ctx, "lab")
	if err != nil || len(fs) != 3 {
		t.Fatalf("list = %+v, %v", fs, err)
	}
	for _, f := range fs {
		if f.ID == ids[0] && f.Packets != 4 {
			t.Fatalf("fault %s counted %d packets, want 4", f.ID, f.Packets)
		}
	}
	if err := e.cli.Heal(ctx, "lab", ids[1]); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ipt.Save(), "nfslab:"+ids[1]) {
		t.Fatalf("healed fault still in iptables:\n%s", ipt.Save())
	}

	// A second daemon (the first one "crashed") sweeps the rest at start.
	mgr2, _ := netfault.NewManager(world.Options(clk, state))
	srv2, err := daemon.New(daemon.Options{Injector: mgr2, Namespaces: []string{"lab"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if save := ipt.Save(); strings.Contains(save, "nfslab") || strings.Contains(save, "NFSLAB") {
		t.Fatalf("nfslab objects left after a fresh start:\n%s", save)
	}
}
