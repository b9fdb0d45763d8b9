package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// AttachNetns gives the network namespace of running container ctr a name
// that nfslab owns, so that pkg/netfault (Spec.Netns) can add unreachable
// routes or rules inside it. Equivalent to:
//
//	ip netns attach nfslab-ctr-CTR $(podman inspect -f '{{.State.Pid}}' CTR)
//
// The name pins the namespace; DetachNetns releases it.
func AttachNetns(ctx context.Context, rt Runtime, ctr string) (string, error) {
	in, err := rt.Inspect(ctx, ctr)
	if err != nil {
		return "", err
	}
	src, err := in.NetnsPath()
	if err != nil {
		return "", err
	}
	name := NetnsName(in.Name)
	if err := bindNetns(src, filepath.Join(NetnsDir, name)); err != nil {
		return "", fmt.Errorf("naming network namespace of container %s as %s: %w", ctr, name, err)
	}
	return name, nil
}

func bindNetns(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if sameNetns(src, dst) {
		return nil // already attached to this container
	}
	if err := detachPath(dst); err != nil {
		return fmt.Errorf("replacing stale %s: %w", dst, err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(dst)
		return fmt.Errorf("bind-mounting %s on %s: %w", src, dst, err)
	}
	return nil
}

func sameNetns(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino && isNsfs(b)
}

func isNsfs(p string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(p, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

// DetachNetns removes the name AttachNetns gave container ctr's network
// namespace. Not attached counts as done. Equivalent to:
// ip netns delete nfslab-ctr-CTR.
func DetachNetns(ctr string) error {
	return detachPath(filepath.Join(NetnsDir, NetnsName(ctr)))
}

func detachPath(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}

// DetachAllNetns removes every namespace name nfslab attached (for
// heal after a crash) and returns the names it removed.
func DetachAllNetns() ([]string, error) { return DetachAllNetnsIn(NetnsDir) }

// DetachAllNetnsIn is DetachAllNetns for names under dir instead of
// NetnsDir (pkg/cleanup's tests use a temporary directory).
func DetachAllNetnsIn(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), NetnsPrefix) {
			continue
		}
		if err := detachPath(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e.Name())
	}
	return out, errors.Join(errs...)
}
