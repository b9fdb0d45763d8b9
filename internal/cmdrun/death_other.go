//go:build !linux

package cmdrun

import "os/exec"

// tieToParent does nothing where the kernel has no parent-death signal.
func tieToParent(*exec.Cmd) {}
