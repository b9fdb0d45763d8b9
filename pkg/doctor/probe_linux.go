//go:build linux

package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
)

// NewProbe returns the real probe of this machine.
func NewProbe() Probe { return realProbe{} }

type realProbe struct{}

func (realProbe) Geteuid() int                      { return os.Geteuid() }
func (realProbe) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }
func (realProbe) Exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
func (realProbe) LookPath(n string) (string, error) { return exec.LookPath(n) }

func (realProbe) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := cmdrun.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, &cmdrun.Error{Args: append([]string{name}, args...), Output: strings.TrimSpace(string(out)), Err: err}
	}
	return out, nil
}

func (realProbe) OpenRW(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// KVM ioctls (linux/kvm.h): _IO(KVMIO=0xAE, 0x00) and _IO(KVMIO, 0x01).
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
)

func (realProbe) KVMCreateVM() error {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/kvm: %w", err)
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != 12 {
		return fmt.Errorf("KVM API version %d, want 12", v)
	}
	vm, err := unix.IoctlRetInt(fd, kvmCreateVM)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	return unix.Close(vm)
}

func (realProbe) KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (realProbe) RandomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
