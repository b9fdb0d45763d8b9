//go:build linux

package doctor

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
)

// TestDoctorOnThisMachine runs every real probe here and asserts the
// machine's known facts: FUSE works, the kernel has no NFS client or
// server, the iptables matches work (inserted in a throwaway namespace
// that is gone afterwards), so "faultfs" can run and "nfs-host" cannot.
func TestDoctorOnThisMachine(t *testing.T) {
	privtest.Short(t)
	privtest.Root(t)
	privtest.Tools(t, "ip", "iptables")
	privtest.FUSE(t)
	r := Run(context.Background(), NewProbe())
	for _, c := range r.Checks {
		t.Logf("%-20s %-4s %s | %s", c.Name, c.Status, c.Detail, c.Fix)
	}
	s := statuses(r)
	want := map[string]Status{CheckRoot: OK, CheckFUSE: OK, CheckMatchStatistic: OK, CheckMatchComment: OK, CheckMatchTime: OK}
	if !strings.Contains(string(must(os.ReadFile("/proc/filesystems"))), "\tnfs") {
		want[CheckNFSClient] = Fail // this machine's kernel: no NFS at all
		if err := r.Require("nfs-host"); err == nil || !strings.Contains(err.Error(), "nfs-client") {
			t.Errorf("Require(nfs-host) = %v, want it to name nfs-client", err)
		}
	}
	for name, st := range want {
		if s[name] != st {
			t.Errorf("%s = %s, want %s", name, s[name], st)
		}
	}
	out, err := cmdrun.Output(context.Background(), "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "nfslab-doctor-") {
		t.Errorf("doctor left its namespace behind: %s", out)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		return nil
	}
	return b
}
