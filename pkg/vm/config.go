package vm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// ErrInvalid marks a bad configuration value.
var ErrInvalid = errors.New("invalid vm configuration")

// DefaultCacheDir holds the image cache and the downloaded packages.
const DefaultCacheDir = "/var/cache/nfslab/vm"

// ImageSpec is everything that determines the content of the base image.
// Its hash names the cache directory.
type ImageSpec struct {
	Suite    string   `json:"suite"`
	Packages []string `json:"packages"`
	// GuestInit is the content of the guest's /nfslab/init.
	GuestInit []byte `json:"-"`
	// DiskSizeMB is the ext4 image's (sparse) size.
	DiskSizeMB int `json:"disk_size_mb"`
	// Flavour names an image variant whose Customize step changes the
	// rootfs (e.g. "vagrant-box/1"); empty for the lab VM. Part of the key.
	Flavour string `json:"flavour,omitempty"`
	// Customize, when set, runs on the rootfs after the common configure
	// step and before mkfs.
	Customize func(ctx context.Context, rootfs string) error `json:"-"`
}

// Validate checks the spec before anything is built.
func (s ImageSpec) Validate() error {
	if s.Suite == "" || strings.ContainsAny(s.Suite, "/ \t") {
		return fmt.Errorf("%w: suite %q is not a Debian release name", ErrInvalid, s.Suite)
	}
	if len(s.Packages) == 0 {
		return fmt.Errorf("%w: empty package list", ErrInvalid)
	}
	for _, p := range s.Packages {
		if p == "" || strings.ContainsAny(p, ", \t") {
			return fmt.Errorf("%w: package name %q", ErrInvalid, p)
		}
	}
	if len(s.GuestInit) == 0 {
		return fmt.Errorf("%w: guest init script is empty", ErrInvalid)
	}
	if s.DiskSizeMB < 1024 {
		return fmt.Errorf("%w: disk size %d MiB is below 1024 MiB", ErrInvalid, s.DiskSizeMB)
	}
	return nil
}

// sortedPackages returns the package list sorted and without duplicates, so
// the order in which they are named does not change the cache key.
func (s ImageSpec) sortedPackages() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range s.Packages {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// BootConfig says how to start the VM.
type BootConfig struct {
	MemoryMB int
	CPUs     int
	// Accel is "auto" (KVM when it works, else TCG), "kvm" or "tcg".
	Accel string
}

// DefaultBoot is 3 GiB and 2 vCPUs: the JVM and knfsd share the guest.
func DefaultBoot() BootConfig { return BootConfig{MemoryMB: 3072, CPUs: 2, Accel: "auto"} }

// Validate checks the boot settings.
func (b BootConfig) Validate() error {
	if b.MemoryMB < 1024 || b.MemoryMB > 65536 {
		return fmt.Errorf("%w: memory %d MiB is outside 1024..65536", ErrInvalid, b.MemoryMB)
	}
	if b.CPUs < 1 || b.CPUs > 64 {
		return fmt.Errorf("%w: cpus %d is outside 1..64", ErrInvalid, b.CPUs)
	}
	switch b.Accel {
	case "auto", "kvm", "tcg":
	default:
		return fmt.Errorf("%w: accel %q is not one of auto, kvm, tcg", ErrInvalid, b.Accel)
	}
	return nil
}

// absDir cleans dir and makes it absolute (qemu and debootstrap need it).
func absDir(dir string) (string, error) {
	a, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", dir, err)
	}
	return a, nil
}
