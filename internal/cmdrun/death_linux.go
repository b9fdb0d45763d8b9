package cmdrun

import (
	"os/exec"
	"syscall"
)

// tieToParent makes the kernel SIGKILL the child when nfslab dies (a crash,
// a SIGKILL), so that no tool it started outlives it: a javac compiling
// the probe, an iptables, a qemu. The signal follows the OS thread that
// forked the child; the Go runtime keeps threads alive except those of
// goroutines that exit while locked to them, and cmdrun's callers wait for
// their commands, so the child never outlives the thread it needs.
func tieToParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
