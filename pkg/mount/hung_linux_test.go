//go:build linux

package mount

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/faultfs"
)

// TestUnmountOfHungFUSEMountReal makes a real FUSE mount (faultfs) hang a
// process inside it, then shows that Unmount returns within its timeout by
// forcing (which aborts the FUSE connection) or detaching, and that the
// mount is gone from /proc/self/mountinfo.
func TestUnmountOfHungFUSEMountReal(t *testing.T) {
	privtest.Short(t)
	privtest.Root(t)
	privtest.FUSE(t)
	dir := t.TempDir()
	back, mp := filepath.Join(dir, "back"), filepath.Join(dir, "mnt")
	for _, d := range []string{back, mp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(back, "segment-1.log"), []byte("journal"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsys, err := faultfs.Mount(back, mp, faultfs.Options{Name: "nfslab-mount-test"})
	if err != nil {
		t.Fatalf("mounting faultfs: %v", err)
	}
	m := NewLinux(LinuxOptions{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fsys.Unmount(ctx)
		// Whatever happened above, never leave the test mount behind.
		if ok, _ := m.IsMounted(mp); ok {
			_, _ = m.Unmount(ctx, mp, UnmountOptions{Timeout: 3 * time.Second})
		}
	})
	// Every operation on the file hangs for an hour: a dead server.
	if _, err := fsys.Set(faultfs.Rule{Op: faultfs.OpAny, PathGlob: "segment-1.log", Latency: duration.Duration(time.Hour)}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	// A process that blocks in the kernel inside the mount.
	cat := exec.Command("cat", filepath.Join(mp, "segment-1.log"))
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cat.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cat.Process.Kill() // our own child, by PID
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("cat (pid %d) did not exit", cat.Process.Pid)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for blocked := 0; blocked == 0; {
		if time.Now().After(deadline) {
			t.Fatal("cat never blocked in the FUSE mount")
		}
		time.Sleep(20 * time.Millisecond)
		for _, s := range fsys.Stats() {
			blocked += s.Blocked
		}
	}
	// The mount is busy and its server does not answer: plain unmount fails.
	const timeout = 3 * time.Second
	start := time.Now()
	res, err := m.Unmount(context.Background(), mp, UnmountOptions{Timeout: timeout})
	took := time.Since(start)
	t.Logf("Unmount: %s (took %s)", res, took)
	if err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if took > timeout+500*time.Millisecond {
		t.Errorf("Unmount took %s, want within its timeout %s", took, timeout)
	}
	if res.Method == StepUnmount {
		t.Errorf("a plain unmount of a busy mount succeeded; the test did not make it busy")
	}
	if ok, err := m.IsMounted(mp); ok || err != nil {
		t.Errorf("IsMounted after Unmount = %v, %v; want gone from mountinfo", ok, err)
	}
	// The blocked reader is released once the connection is aborted/detached
	// and the filesystem is closed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = fsys.Unmount(ctx)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Errorf("cat still blocked 5s after the unmount")
	}
}
