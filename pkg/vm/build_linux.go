package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
)

// Commander runs an external program with an argument list. The real one
// is cmdrun; tests use a fake that records the calls.
type Commander interface {
	Run(ctx context.Context, name string, args ...string) error
}

// ExecCommander runs commands through internal/cmdrun (LC_ALL=C, errors
// carrying the command and its output).
type ExecCommander struct{}

func (ExecCommander) Run(ctx context.Context, name string, args ...string) error {
	return cmdrun.Run(ctx, name, args...)
}

// Builder builds and caches base images.
type Builder struct {
	CacheDir string
	Mirror   string
	Cmd      Commander
	Clock    clock.Clock
	Log      *slog.Logger
}

// debsDir is debootstrap's package cache, shared by all image versions so a
// rebuild after a guest script change downloads nothing.
func (b Builder) debsDir() string { return filepath.Join(b.CacheDir, "debs") }

// ImageDir is where the image for spec lives (built or not).
func (b Builder) ImageDir(spec ImageSpec) string { return filepath.Join(b.CacheDir, spec.Key()) }

// Cached returns the cached image for spec, if a complete one exists.
func (b Builder) Cached(spec ImageSpec) (Image, bool) {
	im, err := LoadImage(b.ImageDir(spec))
	if err != nil {
		return Image{}, false
	}
	return im, true
}

// Build returns the cached image for spec, building it first when missing
// or when force is set. Concurrent builds of the same cache serialise on a
// lock file; a half-built image never becomes visible (built in KEY.tmp,
// renamed at the end).
func (b Builder) Build(ctx context.Context, spec ImageSpec, force bool) (Image, error) {
	if err := spec.Validate(); err != nil {
		return Image{}, err
	}
	if b.Mirror == "" {
		return Image{}, fmt.Errorf("%w: no mirror", ErrInvalid)
	}
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return Image{}, fmt.Errorf("creating cache dir: %w", err)
	}
	unlock, err := lockDir(ctx, b.CacheDir, b.Clock)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if !force {
		if im, ok := b.Cached(spec); ok {
			b.Log.Info("using cached vm image", "dir", im.Dir, "kernel", im.KernelRelease)
			return im, nil
		}
	}
	return b.build(ctx, spec)
}

func (b Builder) build(ctx context.Context, spec ImageSpec) (Image, error) {
	final := b.ImageDir(spec)
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return Image{}, fmt.Errorf("removing stale build dir: %w", err)
	}
	if err := os.MkdirAll(b.debsDir(), 0o755); err != nil {
		return Image{}, fmt.Errorf("creating package cache: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Image{}, fmt.Errorf("creating build dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	start := b.Clock.Now()
	im := Image{Dir: tmp, Key: spec.Key(), Suite: spec.Suite, Packages: spec.sortedPackages(), Mirror: b.Mirror,
		Kernel: "vmlinuz", Initrd: "initrd.img", Disk: "root.img"}
	phase := func(name string, f func() error) error {
		t := b.Clock.Now()
		b.Log.Info("vm image: "+name, "dir", tmp)
		if err := f(); err != nil {
			return err
		}
		im.Phases = append(im.Phases, PhaseTiming{Name: name, Duration: duration.Duration(b.Clock.Now().Sub(t))})
		return nil
	}
	rootfs := filepath.Join(tmp, "rootfs")
	steps := []struct {
		name string
		f    func() error
	}{
		{"debootstrap", func() error {
			return b.Cmd.Run(ctx, "debootstrap", DebootstrapArgs(spec, b.debsDir(), rootfs, b.Mirror)...)
		}},
		{"configure", func() error {
			rel, err := configureRootfs(rootfs, spec.GuestInit, tmp)
			im.KernelRelease = rel
			if err == nil && spec.Customize != nil {
				err = spec.Customize(ctx, rootfs)
			}
			return err
		}},
		{"mkfs", func() error {
			return b.Cmd.Run(ctx, "mkfs.ext4", MkfsArgs(rootfs, filepath.Join(tmp, im.Disk), spec.DiskSizeMB)...)
		}},
		{"cleanup", func() error { return os.RemoveAll(rootfs) }},
	}
	for _, s := range steps {
		if err := phase(s.name, s.f); err != nil {
			return Image{}, fmt.Errorf("building vm image (%s): %w", s.name, err)
		}
	}
	im.Built = b.Clock.Now().UTC()
	im.BuildTime = duration.Duration(im.Built.Sub(start))
	if err := im.save(); err != nil {
		return Image{}, fmt.Errorf("writing image manifest: %w", err)
	}
	if err := os.RemoveAll(final); err != nil {
		return Image{}, fmt.Errorf("replacing old image: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Image{}, fmt.Errorf("publishing image: %w", err)
	}
	ok = true
	im.Dir = final
	b.Log.Info("vm image built", "dir", final, "kernel", im.KernelRelease, "took", im.BuildTime.D().Round(time.Second))
	return im, nil
}

// DebootstrapArgs is debootstrap's argument list for spec.
//
// Equivalent to: debootstrap --variant=minbase --include=PKGS
// --cache-dir=DEBS SUITE ROOTFS MIRROR
func DebootstrapArgs(spec ImageSpec, debs, rootfs, mirror string) []string {
	return []string{"--variant=minbase", "--include=" + strings.Join(spec.sortedPackages(), ","),
		"--cache-dir=" + debs, spec.Suite, rootfs, mirror}
}

// MkfsArgs makes the ext4 disk straight from the directory: no loop mount.
//
// Equivalent to: mkfs.ext4 -q -F -L nfslab-root -d ROOTFS IMG SIZEM
func MkfsArgs(rootfs, img string, sizeMB int) []string {
	return []string{"-q", "-F", "-L", "nfslab-root", "-d", rootfs, img, strconv.Itoa(sizeMB) + "M"}
}

// configureRootfs installs the guest init, copies the kernel and initrd out
// of /boot into out, and drops what the VM never needs (package archives,
// docs) so mkfs has less to copy. It returns the kernel release.
func configureRootfs(rootfs string, init []byte, out string) (string, error) {
	if err := os.MkdirAll(filepath.Join(rootfs, "nfslab"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "nfslab", "init"), init, 0o755); err != nil {
		return "", fmt.Errorf("installing guest init: %w", err)
	}
	files := map[string]string{
		"etc/hostname": "nfslab-vm\n",
		"etc/hosts":    "127.0.0.1 localhost nfslab-vm\n::1 localhost\n",
		"etc/fstab":    "# the nfslab guest init mounts everything itself\n",
		"etc/exports":  "# nfslab's netns server exports through exportfs, not this file\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("writing %s: %w", name, err)
		}
	}
	for _, dir := range []string{"var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/info"} {
		if err := removeContents(filepath.Join(rootfs, dir)); err != nil {
			return "", err
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return "", fmt.Errorf("expected one kernel in %s/boot, found %d", rootfs, len(kernels))
	}
	rel := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	initrd := filepath.Join(rootfs, "boot", "initrd.img-"+rel)
	if err := copyFile(kernels[0], filepath.Join(out, "vmlinuz")); err != nil {
		return "", err
	}
	if err := copyFile(initrd, filepath.Join(out, "initrd.img")); err != nil {
		return "", err
	}
	return rel, nil
}

func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trimming %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name() == "partial" || e.Name() == "lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("trimming %s: %w", dir, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// lockDir takes an exclusive flock on dir/.lock, waiting while ctx allows.
func lockDir(ctx context.Context, dir string, clk clock.Clock) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening cache lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another build of %s: %w", dir, ctx.Err())
		case <-clk.After(500 * time.Millisecond):
		}
	}
}

// Clean removes the whole cache directory (images and downloaded packages).
func Clean(dir string) error {
	if dir == "" || dir == "/" {
		return fmt.Errorf("%w: refusing to remove cache dir %q", ErrInvalid, dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing vm cache %s: %w", dir, err)
	}
	return nil
}
