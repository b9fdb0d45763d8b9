//go:build !linux

package mount

import (
	"errors"
	"io"

	"github.com/nfslab/nfslab/pkg/clock"
)

// NewLinux on other systems returns a Mounter whose every call fails.
func NewLinux(LinuxOptions) Mounter { return &kernelMounter{k: noKernel{}, clk: clock.Real{}} }

// LinuxOptions is empty off Linux.
type LinuxOptions struct{}

var errNotLinux = errors.New("mounting needs Linux")

type noKernel struct{}

func (noKernel) mount(string, string, string, []string) error { return errNotLinux }
func (noKernel) unmount(string, int) error                    { return errNotLinux }
func (noKernel) mountInfo() (io.ReadCloser, error)            { return nil, errNotLinux }
