package cleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/mount"
)

// FuseAborter aborts the FUSE connection of a mount whose st_dev is dev
// ("0:53"), so that every request waiting on it fails at once and the
// threads stuck in them return. Equivalent to:
// `echo 1 > /sys/fs/fuse/connections/53/abort`.
type FuseAborter func(ctx context.Context, dev string) error

// DefaultFuseCtlDir is where fusectl lists FUSE connections.
const DefaultFuseCtlDir = "/sys/fs/fuse/connections"

// FuseCtl returns the real FuseAborter: it mounts fusectl on dir when
// nothing is mounted there (systemd usually has), then writes the
// connection's abort file. A connection that is gone is done.
func FuseCtl(m mount.Mounter, dir string) FuseAborter {
	return func(ctx context.Context, dev string) error {
		major, minor, ok := strings.Cut(dev, ":")
		if !ok || major != "0" || minor == "" || strings.ContainsAny(minor, "/.") {
			return fmt.Errorf("device %q is not a FUSE connection (want 0:MINOR)", dev)
		}
		mounted, err := m.IsMounted(dir)
		if err != nil {
			return err
		}
		if !mounted {
			// Equivalent to: mount -t fusectl fusectl /sys/fs/fuse/connections
			if err := m.Mount(ctx, "fusectl", dir, "fusectl", nil); err != nil {
				return fmt.Errorf("mounting fusectl on %s: %w", dir, err)
			}
		}
		p := filepath.Join(dir, minor, "abort")
		// Bounded: a write into sysfs does not wait on the connection, but
		// nothing near a dead FUSE mount is trusted to return.
		err = mount.WithTimeout(ctx, 2*time.Second, func() error { return os.WriteFile(p, []byte("1"), 0) })
		if errors.Is(err, os.ErrNotExist) {
			return nil // the connection is gone already
		}
		if err != nil {
			return fmt.Errorf("aborting FUSE connection %s: %w", dev, err)
		}
		return nil
	}
}

// ffsMount is a faultfs mount Sweep found, and whether a live process
// still serves it.
type ffsMount struct {
	mount.MountPoint
	served  string // why it is live ("" if nobody serves it)
	byOwner bool   // served by its recorded owner, not a control socket
	record  *proctrack.Entry
}

// faultfsMounts returns the faultfs mounts nfslab made: those below
// FaultfsRoot and those the records name (a mount outside the root),
// deepest and most recent first. A mount is served while its control
// socket answers (`nfslab faultfs mount`) or its recorded owner runs (a
// scenario run); otherwise its server is gone.
func faultfsMounts(ctx context.Context, o Options) (mps []ffsMount, live map[string]bool, stale []string, records []proctrack.Entry, err error) {
	live = map[string]bool{}
	var errs []error
	if o.FaultfsRoot != "" {
		socks, err := filepath.Glob(filepath.Join(o.FaultfsRoot, "*.sock"))
		if err != nil {
			return nil, nil, nil, nil, err
		}
		for _, s := range socks {
			name := strings.TrimSuffix(filepath.Base(s), ".sock")
			if socketAnswers(ctx, s, o.DialTimeout) {
				live[name] = true
			} else {
				stale = append(stale, s)
			}
		}
	}
	recorded := map[string]*proctrack.Entry{}
	if o.Records != nil {
		es, err := o.Records.List()
		if err != nil {
			errs = append(errs, fmt.Errorf("reading records: %w", err))
		}
		for i := range es {
			if es[i].Kind == proctrack.KindMount {
				records = append(records, es[i])
				recorded[filepath.Clean(es[i].Path)] = &es[i]
			}
		}
	}
	all, err := o.Mounter.List()
	if err != nil {
		return nil, live, stale, records, errors.Join(append(errs, fmt.Errorf("listing mounts: %w", err))...)
	}
	for _, mp := range all {
		rec := recorded[filepath.Clean(mp.Path)]
		under := o.FaultfsRoot != "" && mount.Within(o.FaultfsRoot, mp.Path)
		if !under && (rec == nil || !strings.HasPrefix(mp.FSType, "fuse")) {
			continue
		}
		m := ffsMount{MountPoint: mp, record: rec}
		if under && live[topName(o.FaultfsRoot, mp.Path)] {
			m.served = "its faultfs server answers on " + topName(o.FaultfsRoot, mp.Path) + ".sock"
		} else if rec != nil && proctrack.Alive(o.procs(), rec.Owner) {
			m.served, m.byOwner = fmt.Sprintf("its nfslab process %d still runs", rec.Owner.PID), true
		}
		mps = append(mps, m)
	}
	sortDeepestFirst(mps)
	return mps, live, stale, records, errors.Join(errs...)
}

func (o Options) procs() proctrack.Procs {
	if o.Records != nil && o.Records.Procs != nil {
		return o.Records.Procs
	}
	return proctrack.Linux{}
}

// abortDead aborts the FUSE connection of each faultfs mount nobody serves:
// a request stuck on it (a killed JVM's thread in a page fault) returns, so
// the processes using it can die and the mount can go.
func abortDead(ctx context.Context, o Options, mps []ffsMount) (aborted []string, err error) {
	var errs []error
	for _, m := range mps {
		if m.served != "" || !strings.HasPrefix(m.FSType, "fuse") {
			continue
		}
		if err := o.AbortFuse(ctx, m.Dev); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Path, err))
			continue
		}
		aborted = append(aborted, m.Path)
	}
	return aborted, errors.Join(errs...)
}

// sweepProcesses ends the child processes nfslab recorded (the JVM probe)
// that outlived it. The FUSE connections of dead faultfs mounts are
// aborted first: a process blocked in one does not die from SIGKILL until
// its request returns.
func sweepProcesses(ctx context.Context, o Options, sr *StepReport) {
	if o.Records == nil {
		sr.Skipped = "no record directory given"
		return
	}
	var errs []error
	if o.Mounter != nil {
		mps, _, _, _, err := faultfsMounts(ctx, o)
		if err != nil {
			errs = append(errs, err)
		}
		if aborted, err := abortDead(ctx, o, mps); err != nil {
			errs = append(errs, fmt.Errorf("aborting FUSE connections: %w", err))
		} else if len(aborted) > 0 {
			o.Logger.Info("aborted FUSE connections of dead faultfs mounts", "mounts", aborted)
		}
	}
	scoped, err := mountScopes(o.Records)
	if err != nil {
		errs = append(errs, err)
	}
	ended, kept, err := o.Records.End(ctx, o.KeepLiveOwners, o.ProcessWait)
	sr.Removed, sr.Kept = ended, kept
	if err != nil {
		errs = append(errs, err)
	}
	left, err := unmountLeft(ctx, o, scoped)
	sr.Removed = append(sr.Removed, left...)
	if err != nil {
		errs = append(errs, err)
	}
	sr.Err = errors.Join(errs...)
}

// mountScopes returns the process records that name mounts their process
// may leave behind (the podman service's storage), by record key.
func mountScopes(s *proctrack.Store) (map[string]proctrack.Entry, error) {
	es, err := s.List()
	if err != nil {
		return nil, fmt.Errorf("listing process records: %w", err)
	}
	out := map[string]proctrack.Entry{}
	for _, e := range es {
		if e.Kind == proctrack.KindProcess && e.Mounts != nil {
			out[e.Key] = e
		}
	}
	return out, nil
}

// unmountLeft removes, for each record in scoped that End removed (its
// process is gone), the mounts its process left in its scope: what the
// owner's own stop would have unmounted had it not been killed
// (podman.Service.Stop). A record End kept (its owner runs) keeps them.
func unmountLeft(ctx context.Context, o Options, scoped map[string]proctrack.Entry) ([]string, error) {
	if len(scoped) == 0 || o.Mounter == nil {
		return nil, nil
	}
	es, err := o.Records.List()
	if err != nil {
		return nil, fmt.Errorf("listing process records: %w", err)
	}
	for _, e := range es {
		delete(scoped, e.Key) // still recorded: its process was kept
	}
	if len(scoped) == 0 {
		return nil, nil
	}
	mps, err := o.Mounter.List()
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	paths := make([]string, 0, len(mps))
	for _, m := range mps {
		paths = append(paths, m.Path)
	}
	var removed []string
	var errs []error
	seen := map[string]bool{} // two services on one storage left it once
	for _, e := range scoped {
		for _, p := range e.Mounts.Left(paths) {
			if seen[p] {
				continue
			}
			seen[p] = true
			res, err := unmount(ctx, o, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("mount left by %s pid %d: %w", e.Name, e.Proc.PID, err))
				continue
			}
			removed = append(removed, fmt.Sprintf("mount %s left by %s pid %d", describe(p, res), e.Name, e.Proc.PID))
		}
	}
	return removed, errors.Join(errs...)
}
