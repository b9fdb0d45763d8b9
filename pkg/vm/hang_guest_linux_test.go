//go:build linux && nfsguest

package vm

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGuestHangOnce stops the guest agent (SIGSTOP) the first time it
// runs, so that the guest answers nothing more, as when its kernel locked
// up in CI (2026-12-03), and passes the second time: the host's `vm run`
// must see the heartbeat stand still, end the boot, and boot again for it
// and the steps after it. cmd/nfslab's TestVMFullDropNFS runs it with a
// short --hang-timeout.
func TestGuestHangOnce(t *testing.T) {
	// The agent started this binary: stop only that process.
	agent := os.Getppid()
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(agent), "cmdline"))
	if err != nil || !strings.Contains(string(cmdline), "agent") {
		t.Fatalf("parent %d is not the guest agent: %q %v", agent, cmdline, err)
	}
	if !firstBoot(t, "hung-once") {
		return
	}
	t.Logf("stopping the guest agent (pid %d)", agent)
	if err := syscall.Kill(agent, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Minute)
	t.Fatal("the host did not end the hung guest")
}
