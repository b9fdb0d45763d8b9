package backends

import (
	"testing"

	"github.com/nfslab/nfslab/pkg/mount"
)

// TestFaultfsMountpointIsBelowTheRoot: a run's faultfs is mounted where
// heal --all looks (below the faultfs root), never inside the run
// directory.
func TestFaultfsMountpointIsBelowTheRoot(t *testing.T) {
	for _, runDir := range []string{"runs/faultfs-full-drop-20261202T061940.486Z", "/abs/runs/r1/", "r"} {
		mp := FaultfsMountpoint("/run/nfslab/faultfs", runDir)
		if !mount.Within("/run/nfslab/faultfs", mp) || mount.Within(runDir, mp) {
			t.Errorf("run %q mounts at %q, want below /run/nfslab/faultfs", runDir, mp)
		}
	}
	if got := FaultfsMountpoint("/r", "/abs/runs/r1/"); got != "/r/run-r1" {
		t.Errorf("mountpoint %q, want /r/run-r1", got)
	}
}
