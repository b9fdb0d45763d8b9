//go:build linux && nfsguest

// Built only with -tags nfsguest, into a test binary that cmd/nfslab's
// TestVMShapeDelay runs in the lab VM guest: it ends the guest's kernel.

package vm

import (
	"os"
	"testing"
	"time"
)

// TestGuestKernelPanicOnce panics the lab VM guest's kernel the first time
// it runs (sysrq 'c': "Kernel panic - not syncing: sysrq triggered
// crash", as a kernel bug ends the guest) and passes the second time: the
// host's `vm run` must boot again for it and the steps after it.
func TestGuestKernelPanicOnce(t *testing.T) {
	if !firstBoot(t, "panicked-once") {
		return
	}
	t.Log("panicking the guest kernel")
	if err := os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Second)
	t.Fatal("the guest kernel did not panic")
}
