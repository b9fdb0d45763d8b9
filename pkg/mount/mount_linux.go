//go:build linux

package mount

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/pkg/clock"
)

// LinuxOptions tune the Linux Mounter.
type LinuxOptions struct {
	// MountInfoPath overrides /proc/self/mountinfo (tests).
	MountInfoPath string
	// MountTimeout bounds Mount when the context has no deadline;
	// 0 means DefaultMountTimeout.
	MountTimeout time.Duration
	// NFSHelper mounts "nfs" and "nfs4" through mount.nfs(8) (nfs-common)
	// instead of mount(2). The direct syscall works for v4 and for v3 (the
	// kernel asks the server's rpcbind for mountd itself when addr= is
	// given); the helper is the fallback when a server needs mount.nfs's
	// negotiation (for example v3 with a mountd behind a firewall).
	NFSHelper bool
	// Clock times the unmount attempts; nil means the wall clock.
	Clock clock.Clock
}

// NewLinux returns the kernel Mounter: mount(2) and umount2(2) through
// golang.org/x/sys/unix, state from /proc/self/mountinfo.
func NewLinux(o LinuxOptions) Mounter {
	if o.MountInfoPath == "" {
		o.MountInfoPath = MountInfoPath
	}
	clk := o.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	return &kernelMounter{k: linuxKernel{o}, clk: clk, mountTimeout: o.MountTimeout}
}

type linuxKernel struct{ o LinuxOptions }

// msFlags maps mount(8) flag words to mount(2) flags.
var msFlags = map[string]uintptr{
	"ro": unix.MS_RDONLY, "rw": 0, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV,
	"noexec": unix.MS_NOEXEC, "noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME,
	"relatime": unix.MS_RELATIME, "sync": unix.MS_SYNCHRONOUS,
}

// splitOptions separates mount(2) flags from the filesystem data string.
func splitOptions(options []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range options {
		if f, ok := msFlags[o]; ok {
			flags |= f
			continue
		}
		data = append(data, o)
	}
	return flags, strings.Join(data, ",")
}

// mount is equivalent to `mount -i -t FSTYPE -o OPTIONS SOURCE TARGET`.
func (l linuxKernel) mount(source, target, fstype string, options []string) error {
	if l.o.NFSHelper && (fstype == "nfs" || fstype == "nfs4") {
		// mount.nfs does its own resolution and version negotiation.
		helper := "mount." + fstype
		_, err := cmdrun.Output(context.Background(), helper, source, target, "-o", strings.Join(options, ","))
		return err
	}
	flags, data := splitOptions(options)
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		if err == unix.ENODEV {
			return fmt.Errorf("mount(2): %w: this kernel has no %s filesystem (see `nfslab doctor`; NFS runs in the lab VM)", err, fstype)
		}
		return fmt.Errorf("mount(2): %w", err)
	}
	return nil
}

// unmount is umount2(2) with UMOUNT_NOFOLLOW, so a symlink planted at
// the target cannot redirect it.
func (l linuxKernel) unmount(target string, flags int) error {
	return unix.Unmount(target, flags|unix.UMOUNT_NOFOLLOW)
}

func (l linuxKernel) mountInfo() (io.ReadCloser, error) { return os.Open(l.o.MountInfoPath) }
