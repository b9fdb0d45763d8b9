//go:build linux && nfsguest

package main

import (
	"testing"

	"github.com/nfslab/nfslab/internal/netnsdo"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
)

// TestGuestShapeBench runs `faults -shape delay` in the lab VM guest, whose
// kernel has sch_netem (the host's has not): built with -tags nfsguest and
// run by `nfslab vm run --test-binary faults.test=^TestGuestShapeBench$`.
// It prints the delay table of BENCHMARKS.md; it fails only if a path fails.
func TestGuestShapeBench(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "tc", "iptables")
	// Only delay: limit runs on the host (htb), and under TCG one kind
	// already takes minutes of the guest's 10-minute test bound.
	for _, kind := range []string{"delay"} {
		ns := testnet.RandomName("nfslt-bench")
		testnet.NewNetns(t, ns)
		if err := netnsdo.Do(ns, func() error { return measureShape(ns, 15, kind) }); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
}
