package cleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// ServerProber reports whether the netns NFS server called name, whose
// state lives in stateDir, is running.
type ServerProber func(ctx context.Context, name, stateDir string) bool

// NetnsServerRunning is the real ServerProber: nfsserver's Status for the
// configuration nfslab's defaults give that name (knfsd threads in its
// namespace). A server it cannot ask is not running.
func NetnsServerRunning(ctx context.Context, name, stateDir string) bool {
	s, err := nfsserver.NewNetns(nfsserver.NetnsConfig{Name: name, StateDir: stateDir}, nfsserver.NewHost())
	if err != nil {
		return false
	}
	return s.Status(ctx).Running
}

// sweepExports removes the export directories below ExportRoot
// (ROOT/NAME): a netns server's (NAME is its namespace; its Stop in the
// nfs-server step removes it, so what is left here lost its state
// directory) and a container server's (NAME is its run; nothing but the
// run's own teardown removed it, so a killed run left it). It runs after
// the containers and the servers, which take an export out of use (the
// container's bind mount, knfsd's export table). Only directories
// directly below the root are looked at, by Lstat: a symlink is never
// followed, neither in place of the root nor of an export.
//
// A directory with a mount on or below it is never removed (RemoveAll
// would delete the mounted filesystem's files first), with one
// exception: a mount on ROOT/NAME itself whose source marks it as a
// netns server's size-bounded export (nfsserver.IsExportSource: the
// tmpfs, or ext4 on nfslab's dm device) is nfslab's, nothing else
// removes it once the server's state is gone, and its ext4 keeps the dm
// and loop devices busy for the block-devices step after this one; it is
// unmounted first. Any other mount is somebody else's: the export is kept
// and reported, not unmounted.
//
// With KeepLiveOwners (the daemon's start-up) an export whose owner is
// still there is kept: the netns server NAME (its state directory below
// NFSDRoot exists and it runs, as ServerRunning says) or the container
// server of run NAME (a container the containers step finds: nfslab's
// labels, role nfs-server, run NAME). heal --all removes it either way.
func sweepExports(ctx context.Context, o Options, sr *StepReport) {
	if o.ExportRoot == "" {
		sr.Skipped = "no export directory given"
		return
	}
	root := filepath.Clean(o.ExportRoot)
	fi, err := os.Lstat(root)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		sr.Err = fmt.Errorf("reading %s: %w", root, err)
		return
	}
	if !fi.IsDir() {
		sr.Err = fmt.Errorf("%s is not a directory (mode %s): not following it", root, fi.Mode().Type())
		return
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		sr.Err = fmt.Errorf("reading %s: %w", root, err)
		return
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() { // the entry's own type: a symlink to a directory is not one
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return
	}
	mps, err := o.Mounter.List()
	if err != nil {
		// Without the mount table nothing may be removed: a mount below
		// an export would lose its files.
		sr.Err = fmt.Errorf("listing mounts: %w", err)
		return
	}
	owner := exportOwners(ctx, o)
	var errs []error
	for _, name := range names {
		p := filepath.Join(root, name)
		if o.KeepLiveOwners {
			if why := owner(name); why != "" {
				sr.Kept = append(sr.Kept, p+" ("+why+")")
				continue
			}
		}
		ours, foreign := exportMounts(mps, p)
		if foreign != nil {
			sr.Kept = append(sr.Kept, fmt.Sprintf("%s (%s is mounted on %s: not nfslab's export mount)", p, foreign.Source, foreign.Path))
			continue
		}
		failed := false
		for range ours { // each call takes the topmost mount off p
			if _, err := unmount(ctx, o, p); err != nil {
				errs = append(errs, err)
				failed = true
				break
			}
		}
		if failed {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
			continue
		}
		if len(ours) > 0 {
			p += " (unmounted its " + ours[0].FSType + ")"
		}
		sr.Removed = append(sr.Removed, p)
	}
	sr.Err = errors.Join(errs...)
}

// exportMounts sorts the mounts on or below dir: nfslab's export mounts on
// dir itself, and the first other one (nil if none).
func exportMounts(mps []mount.MountPoint, dir string) (ours []mount.MountPoint, foreign *mount.MountPoint) {
	for i, m := range mps {
		on := filepath.Clean(m.Path) == dir
		if !on && !mount.Within(dir, m.Path) {
			continue
		}
		if on && nfsserver.IsExportSource(m.Source) {
			ours = append(ours, m)
			continue
		}
		if foreign == nil {
			foreign = &mps[i]
		}
	}
	return ours, foreign
}

// exportOwners returns what says why export name still has a live owner
// ("" if none). It asks podman at most once, and only when asked about an
// export (with KeepLiveOwners and an export left).
func exportOwners(ctx context.Context, o Options) func(name string) string {
	var (
		asked   bool
		servers map[string]string // run -> container server's name
		ctrErr  error
	)
	containers := func() {
		asked = true
		if o.Podman == nil {
			return
		}
		rt, err := o.Podman(ctx)
		if errors.Is(err, container.ErrNoService) {
			return // no podman: no container can hold the export
		}
		if err == nil {
			var infos []container.Info
			infos, err = container.ListOwned(ctx, rt, "")
			servers = map[string]string{}
			for _, in := range infos {
				if container.Owned(in, "", container.RoleNFSServer) {
					servers[in.Labels[container.LabelRun]] = in.Name
				}
			}
		}
		ctrErr = err
	}
	return func(name string) string {
		if o.NFSDRoot != "" {
			sd := filepath.Join(o.NFSDRoot, name)
			if fi, err := os.Lstat(sd); err == nil && fi.IsDir() && o.ServerRunning(ctx, name, sd) {
				return "netns NFS server " + name + " runs"
			}
		}
		if !asked {
			containers()
		}
		if ctrErr != nil {
			// Unknown is kept: the daemon must not empty a live run's export.
			return "cannot ask podman for its container server: " + ctrErr.Error()
		}
		if c, ok := servers[name]; ok {
			return "container server " + c + " of run " + name + " is still there"
		}
		return ""
	}
}
