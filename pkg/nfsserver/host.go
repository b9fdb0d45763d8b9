package nfsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"

	"github.com/nfslab/nfslab/internal/cmdrun"
)

// NewHost returns the real Host: commands through internal/cmdrun, files
// through os, dials through net.
func NewHost() Host { return realHost{} }

type realHost struct{}

func (realHost) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return cmdrun.Output(ctx, name, args...)
}
func (realHost) LookPath(name string) (string, error) { return exec.LookPath(name) }
func (realHost) ReadFile(p string) ([]byte, error)    { return os.ReadFile(p) }
func (realHost) WriteFile(p string, b []byte) error {
	// sysfs parameters must be written in place, not created.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	return errors.Join(werr, f.Close())
}
func (realHost) MkdirAll(p string) error                { return os.MkdirAll(p, 0o755) }
func (realHost) Chmod(p string, mode os.FileMode) error { return os.Chmod(p, mode) }
func (realHost) CreateFile(p string) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	return f.Close()
}
func (realHost) RemoveAll(p string) error { return os.RemoveAll(p) }
func (realHost) Exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
func (realHost) Signal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
func (realHost) DialTCP(ctx context.Context, ap netip.AddrPort) error {
	return netDial(ctx, ap)
}
func (realHost) LocalAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}
