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
// It prints the table of BENCHMARKS.md; it fails only if a path fails.
func TestGuestShapeBench(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "tc", "iptables")
	for _, kind := range []string{"delay", "limit"} {
		ns := testnet.RandomName("nfslt-bench")
		testnet.NewNetns(t, ns)
		if err := netnsdo.Do(ns, func() error { return measureShape(ns, 21, kind) }); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
}
