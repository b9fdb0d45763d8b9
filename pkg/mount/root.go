package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultRoot is nfslab's own mount directory: every mount nfslab makes
// lives below it, and Sweep removes only mounts below it.
const DefaultRoot = "/run/nfslab/mnt"

// Within reports whether path lies strictly below root.
func Within(root, path string) bool {
	root, path = filepath.Clean(root), filepath.Clean(path)
	if root == "/" {
		return path != "/" && strings.HasPrefix(path, "/")
	}
	return strings.HasPrefix(path, root+string(filepath.Separator))
}

// Target maps a mount name or path to a mount point below root: a bare
// name ("zeebe") becomes root/zeebe; an absolute path must already lie
// below root. Anything escaping root is refused.
func Target(root, nameOrPath string) (string, error) {
	if nameOrPath == "" {
		return "", errors.New("empty mount point")
	}
	p := nameOrPath
	if !filepath.IsAbs(p) {
		p = filepath.Join(root, p)
	}
	p = filepath.Clean(p)
	if !Within(root, p) {
		return "", fmt.Errorf("mount point %q is not below nfslab's mount directory %s (heal only finds mounts there)", nameOrPath, root)
	}
	return p, nil
}

// PrepareTarget creates the mount point directory below root. It never
// touches anything outside root.
func PrepareTarget(root, target string) error {
	if !Within(root, target) {
		return fmt.Errorf("creating mount point %s: not below %s", target, root)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("creating mount point %s: %w", target, err)
	}
	return nil
}

// SweepResult is what Sweep did to one mount.
type SweepResult struct {
	Mount  MountPoint
	Result UnmountResult
	Err    error
}

// Sweep unmounts every mount below root, deepest and most recent first,
// and nothing else. Each unmount is bounded by opts; failures are collected,
// not fatal, so that one dead mount does not shield the others.
func Sweep(ctx context.Context, m Mounter, root string, opts UnmountOptions) ([]SweepResult, error) {
	mps, err := m.List()
	if err != nil {
		return nil, fmt.Errorf("sweeping %s: %w", root, err)
	}
	var ours []MountPoint
	for _, mp := range mps {
		if Within(root, mp.Path) {
			ours = append(ours, mp)
		}
	}
	// Deeper first; for mounts stacked on one path, the later (topmost) first.
	sort.SliceStable(ours, func(i, j int) bool {
		di, dj := strings.Count(ours[i].Path, "/"), strings.Count(ours[j].Path, "/")
		if di != dj {
			return di > dj
		}
		return ours[i].ID > ours[j].ID
	})
	var results []SweepResult
	var errs []error
	for _, mp := range ours {
		res, err := m.Unmount(ctx, mp.Path, opts)
		if err != nil {
			mounted, lerr := m.IsMounted(mp.Path)
			if lerr == nil && !mounted {
				err = nil // a lazy detach of a parent took it along
			}
		}
		results = append(results, SweepResult{Mount: mp, Result: res, Err: err})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}
