package faultfs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nfslab/nfslab/pkg/faultfs"
)

// TestFuseDescriptorNotInherited: a child started after the mount must not
// hold /dev/fuse, or the FUSE connection outlives nfslab (the mount hangs
// instead of failing, and the child's threads stick in the kernel).
func TestFuseDescriptorNotInherited(t *testing.T) {
	_, _, _ = mountT(t, faultfs.Options{})
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	fdDir := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "fd")
	// The child has exec'd once its fd table differs from ours: wait for
	// the exec by its command name.
	for range 200 {
		if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "comm")); string(b) == "sleep\n" {
			break
		}
		exec.Command("true").Run()
	}
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	self := 0
	if own, _ := os.ReadDir("/proc/self/fd"); own != nil {
		for _, e := range own {
			if l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); l == "/dev/fuse" {
				self++
			}
		}
	}
	if self == 0 {
		t.Fatal("this process holds no /dev/fuse descriptor: the mount did not go through /dev/fuse?")
	}
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join(fdDir, e.Name())); l == "/dev/fuse" {
			t.Fatalf("child %d inherited /dev/fuse as fd %s", cmd.Process.Pid, e.Name())
		}
	}
}
