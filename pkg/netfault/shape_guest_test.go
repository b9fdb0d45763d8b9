//go:build linux && nfsguest

// This file needs sch_netem, which the host and CI kernels lack: it is
// built only with -tags nfsguest, into a test binary that cmd/nfslab's
// TestVMShapeDelay runs in the lab VM guest
// (nfslab vm run --test-binary netfault.test=^TestGuest).

package netfault_test

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// connectRTT is the shortest of n TCP connects from the client to the
// listener: one SYN out and one SYN-ACK back, i.e. one round trip. netem's
// delay is fixed and the noise of an emulated guest (TCG, a loaded host)
// only ever adds, so the minimum is the estimator that tracks the wire.
func connectRTT(t *testing.T, p *testnet.Pair, ln *testnet.TCPServer, n int) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		errno, err := testnet.Dial(p.Client, ln.Addr, 5*time.Second)
		if err != nil || errno != 0 {
			t.Fatalf("connect %d: %v %v", i, errno, err)
		}
		ds = append(ds, time.Since(start))
	}
	return slices.Min(ds)
}

func within(got, want time.Duration, frac float64) bool {
	return math.Abs(float64(got-want)) <= frac*float64(want)
}

// TestGuestDelayOnTheWire: the round trip of a TCP connect through the
// veth grows by the requested delay, within 10 %: 100 ms on the way out
// (netem under nfslab's class on the client's veth), then 2 x 50 ms with
// --dir both (the reply through nfslab's ifb). The class counters prove
// it; after heal the round trip is back and nothing is left.
func TestGuestDelayOnTheWire(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "tc", "iptables", "iptables-save", "ip6tables-save")
	p := testnet.NewPair(t, "nfslg-sh")
	m, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ln := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 2049))
	base := connectRTT(t, p, ln, 15)
	t.Logf("connect round trip without a fault: %v", base)
	for _, tc := range []struct {
		dir   netfault.Direction
		delay time.Duration
		rtt   time.Duration
	}{
		{netfault.DirOut, 100 * time.Millisecond, 100 * time.Millisecond},
		{netfault.DirBoth, 50 * time.Millisecond, 100 * time.Millisecond},
		{netfault.DirIn, 200 * time.Millisecond, 200 * time.Millisecond},
	} {
		before := connectRTT(t, p, ln, 15) // again right before: the guest's speed drifts
		f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDelay, Dst: p.ServerV4.String(), Port: 2049, Delay: tc.delay, Dir: tc.dir, Netns: p.Client, For: time.Minute}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Rules {
			t.Logf("  %s", r)
		}
		got := connectRTT(t, p, ln, 15) - before
		t.Logf("dir %s, delay %v: connect round trip grew by %v (want %v ± 10%%; baseline %v)", tc.dir, tc.delay, got, tc.rtt, before)
		if !within(got, tc.rtt, 0.10) {
			t.Errorf("dir %s, delay %v: round trip grew by %v, want %v ± 10%%", tc.dir, tc.delay, got, tc.rtt)
		}
		v, err := netfault.Verify(ctx, m, clock.Real{}, p.Client, f.ID, time.Second, 50*time.Millisecond)
		if err != nil || !v.Bit || v.Packets == 0 {
			t.Errorf("verify: %+v %v", v, err)
		}
		if err := m.Heal(ctx, p.Client, f.ID); err != nil {
			t.Fatal(err)
		}
		nothingShaped(t, p.Client, p.ClientIf)
	}
	// TCG emulation makes a connect take 10-40 ms; the smallest delay
	// (2 x 50 ms) stands well clear of that.
	if after := connectRTT(t, p, ln, 15); after > base+50*time.Millisecond {
		t.Errorf("after heal the round trip is %v (was %v): still delayed", after, base)
	}
}

// TestGuestDelaySIGKILL: SIGKILL of the process that applied a delay in
// both directions, then heal --all: no qdisc, class, ifb, mangle rule or
// record is left, the veth's root is noqueue again.
func TestGuestDelaySIGKILL(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "tc", "iptables", "iptables-save", "ip6tables-save")
	p := testnet.NewPair(t, "nfslg-sk")
	shapeSIGKILL(t, p, netfault.Spec{Kind: netfault.KindDelay, Dst: p.ServerV4.String(), Port: 2049, Delay: 200 * time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 1, Dir: netfault.DirBoth, Netns: p.Client, For: time.Minute}.WithDefaults())
}
