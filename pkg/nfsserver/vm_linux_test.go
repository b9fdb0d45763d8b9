//go:build linux && nfsguest

// This file needs a kernel with the NFS client and knfsd, which the host
// and CI machines lack: it is built only with -tags nfsguest, into a test
// binary that cmd/nfslab's TestVMFullDropNFS runs in the lab VM
// (nfslab vm run --test-binary nfsserver.test=KnfsdInNetnsReal).

package nfsserver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/pkg/mount"
)

// kernelHasNFS reports whether this kernel has (or can load) both the NFS
// client and knfsd, from /proc/filesystems and modules.dep.
func kernelHasNFS() bool {
	fsys, _ := os.ReadFile("/proc/filesystems")
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	dep, _ := os.ReadFile("/lib/modules/" + strings.TrimSpace(string(rel)) + "/modules.dep")
	has := func(fs, mod string) bool {
		return strings.Contains(string(fsys), "\t"+fs+"\n") || strings.Contains(string(dep), mod)
	}
	return has("nfs4", "kernel/fs/nfs/nfs.ko") && has("nfsd", "kernel/fs/nfsd/nfsd.ko")
}

// TestKnfsdInNetnsReal is the lab VM's test of the whole storage path:
// knfsd in a test-owned server namespace, the client end in a second
// test-owned namespace (so the machine's own network is untouched), a real
// soft NFSv4.2 mount made from that namespace, a write that lands in the
// export, then the server cut off (veth down) and Unmount returning within
// its timeout, and Stop leaving nothing behind.
//
// Built only with -tags nfsguest; on a kernel without NFS it skips, or
// fails under CI=true. In the guest:
//
//	CGO_ENABLED=0 go test -tags nfsguest -c -o nfsserver.test ./pkg/nfsserver   # on the host
//	nfslab vm run --smoke-only --test-binary nfsserver.test=KnfsdInNetnsReal
func TestKnfsdInNetnsReal(t *testing.T) {
	if !kernelHasNFS() {
		privtest.Skip(t, "this kernel has no NFS client/server; the test runs in the lab VM (Debian guest with nfs-kernel-server)")
	}
	ctx := context.Background()
	s, target := startAndMount(t, NetnsConfig{})
	hostNS := s.Config().HostNetns
	st := s.Status(ctx)
	t.Logf("server %s: %+v", s.Config().Name, st)
	if !st.Running || len(st.Exports) == 0 {
		t.Fatalf("status after mounting: %+v", st)
	}
	m := mount.NewLinux(mount.LinuxOptions{})
	mps, _ := m.List()
	for _, mp := range mps {
		if mp.Path == target {
			t.Logf("mountinfo: %s %s %s", mp.FSType, mp.Source, mp.SuperOptions)
		}
	}
	err := mount.WithTimeout(ctx, 30*time.Second, func() error {
		return os.WriteFile(filepath.Join(target, "probe"), []byte("through knfsd"), 0o644)
	})
	if err != nil {
		t.Fatalf("writing through NFS: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Config().ExportDir, "probe")); err != nil || string(b) != "through knfsd" {
		t.Fatalf("export holds %q, %v", b, err)
	}

	// Cut the server off: every RPC now times out. A process blocked in
	// the mount, then an Unmount that must return within its timeout.
	if err := cmdrun.Run(ctx, "ip", "-n", hostNS, "link", "set", s.Config().HostVeth, "down"); err != nil {
		t.Fatal(err)
	}
	_ = mount.WithTimeout(ctx, 200*time.Millisecond, func() error {
		_, err := os.ReadFile(filepath.Join(target, "probe-missing"))
		return err
	})
	// The blocked reader keeps the mount busy (plain and forced unmount
	// answer EBUSY), and MNT_DETACH itself waits while the kernel
	// revalidates the mount's root with a GETATTR that only the soft
	// timeout ends (the path lookup of umount2 crosses into the mount).
	// Measured in the guest: a detach given 1.2 s timed out; with 15 s the
	// forced unmount hung for up to 12 s and then completed. 30 s bounds
	// it with margin.
	const unmountTimeout = 30 * time.Second
	start := time.Now()
	res, err := m.Unmount(ctx, target, mount.UnmountOptions{Timeout: unmountTimeout})
	t.Logf("Unmount of the cut-off mount: %s (took %s)", res, time.Since(start))
	if err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if time.Since(start) > unmountTimeout+time.Second {
		t.Errorf("Unmount took %s, want within %s", time.Since(start), unmountTimeout)
	}
	if ok, _ := m.IsMounted(target); ok {
		t.Error("still mounted")
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	out, _ := cmdrun.Output(ctx, "ip", "netns", "list")
	if strings.Contains(string(out), s.Config().Name) {
		t.Errorf("namespace left behind: %s", out)
	}
}
