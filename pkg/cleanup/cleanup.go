package cleanup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// Default roots: where nfslab creates its objects on a host.
const (
	DefaultFaultfsRoot = DefaultRoot + "/faultfs"
	DefaultMountRoot   = mount.DefaultRoot
	DefaultNFSDRoot    = nfsserver.DefaultStateDir
	DefaultExportRoot  = nfsserver.DefaultExport
	DefaultNetnsDir    = container.NetnsDir
	// DefaultRecordsDir holds the records of child processes and served
	// mounts (internal/proctrack).
	DefaultRecordsDir = DefaultRoot + "/proc"
	// DefaultRoot is nfslab's root: every default above but the netns
	// directory lies below it.
	DefaultRoot = "/run/nfslab"
)

// Step names, in the order Sweep runs them.
const (
	StepFaults     = "faults"
	StepContainers = "containers"
	StepNetnsNames = "netns-names"
	StepProcesses  = "processes"
	StepFaultfs    = "faultfs"
	StepMounts     = "mounts"
	StepNFSServer  = "nfs-server"
	StepExports    = "exports"
	StepDevices    = "block-devices"
)

// Steps lists the step names in the order Sweep runs them.
var Steps = []string{StepFaults, StepContainers, StepNetnsNames, StepProcesses, StepFaultfs, StepMounts, StepNFSServer, StepExports, StepDevices}

// FaultHealer removes every nfslab network fault in a namespace;
// netfault.Injector satisfies it.
type FaultHealer interface {
	HealAll(ctx context.Context, netns string) ([]string, error)
}

// Podman connects to the container service. It returns an error wrapping
// container.ErrNoService when none answers: then there are no containers
// to remove. podman.At gives one; it lives with the podman bindings, so that
// this package (and the daemon, and the benchmark) build without them.
type Podman func(ctx context.Context) (container.Runtime, error)

// NetnsDetacher removes the namespace names nfslab attached to containers
// (dir/nfslab-ctr-*) and returns the names removed. Equivalent to:
// `ip netns delete nfslab-ctr-X` for each.
type NetnsDetacher func(dir string) ([]string, error)

// ServerStopper stops the netns NFS server called name whose state lives
// in stateDir, treating "not found" as done.
type ServerStopper func(ctx context.Context, name, stateDir string) error

// StopNetnsServer is the real ServerStopper: nfsserver's Stop for the
// configuration nfslab's defaults give that name. Settings not kept in
// the state directory (a custom subnet or export directory) only affect
// the `exportfs -u` step, whose "not found" counts as done; the knfsd
// threads, processes, mounts, veth and namespace go anyway.
func StopNetnsServer(ctx context.Context, name, stateDir string) error {
	s, err := nfsserver.NewNetns(nfsserver.NetnsConfig{Name: name, StateDir: stateDir}, nfsserver.NewHost())
	if err != nil {
		return err
	}
	return s.Stop(ctx)
}

// DeviceRemover removes nfslab's device-mapper devices (name prefix
// nfslab-) and then the loop devices whose backing file lies below
// backingRoot, and returns what it removed; none is not an error.
type DeviceRemover func(ctx context.Context, backingRoot string) ([]string, error)

// RemoveBlockDevices is the real DeviceRemover (nfsserver's, through
// dmsetup and losetup).
func RemoveBlockDevices(ctx context.Context, backingRoot string) ([]string, error) {
	return nfsserver.RemoveBlockDevices(ctx, nfsserver.NewHost(), backingRoot)
}

// Options say what Sweep looks at. A step whose root (or implementation,
// for faults and containers) is empty is skipped, so a caller sweeps only
// what it names; HostOptions names everything on this host.
type Options struct {
	// Faults heals network faults in each of Namespaces ("" is the
	// caller's own). nil skips the step (a caller that heals faults through
	// its own client, like the CLI and the daemon).
	Faults     FaultHealer
	Namespaces []string
	// Podman finds the container service; nil skips the step.
	Podman Podman
	// NetnsDir holds the names attached to containers; "" skips the step.
	NetnsDir string
	Detach   NetnsDetacher // nil: container.DetachAllNetnsIn
	// FaultfsRoot holds faultfs mountpoints (ROOT/NAME) and control
	// sockets (ROOT/NAME.sock); "" skips the step.
	FaultfsRoot string
	// KeepLiveFaultfs keeps a faultfs mount whose control socket answers:
	// a running `nfslab faultfs mount` serves it, so it is no leftover (the
	// daemon's start-up sets this; `heal --all` does not).
	KeepLiveFaultfs bool
	// Records holds the records of the child processes nfslab started and
	// of the faultfs mounts a running nfslab serves (internal/proctrack);
	// nil skips the processes step and the recorded mounts.
	Records *proctrack.Store
	// KeepLiveOwners keeps what a running nfslab process owns: its
	// recorded children and the faultfs mounts it serves (the daemon's
	// start-up sets this; `heal --all` does not).
	KeepLiveOwners bool
	// ProcessWait bounds the wait for a killed process to go; 0: 5s.
	ProcessWait time.Duration
	// AbortFuse aborts the FUSE connection of a faultfs mount nobody
	// serves; nil: FuseCtl(Mounter, DefaultFuseCtlDir).
	AbortFuse FuseAborter
	// MountRoot is nfslab's mount directory; "" skips the step.
	MountRoot string
	// Mounter unmounts; nil: mount.NewLinux.
	Mounter mount.Mounter
	// UnmountTimeout bounds each unmount; 0 means mount's default.
	UnmountTimeout time.Duration
	// NFSDRoot holds one state directory per netns NFS server; "" skips
	// the step.
	NFSDRoot string
	Servers  ServerStopper // nil: StopNetnsServer
	// ExportRoot holds the export directories of nfslab's servers
	// (ROOT/NAME: a netns server's, NAME its namespace, or a container
	// server's, NAME its run); "" skips the step. It runs after the
	// containers and the servers, which take an export out of use.
	ExportRoot string
	// ServerRunning says whether a netns server still runs, so that
	// KeepLiveOwners keeps its export; nil: NetnsServerRunning.
	ServerRunning ServerProber
	// Devices removes the ext4 exports' dm and loop devices that no
	// server's Stop removed (the state directory was gone); it runs after
	// the servers, with NFSDRoot as the backing root. Device-mapper names
	// are the host's, not a root's: nil skips the step (HostOptions sets
	// RemoveBlockDevices).
	Devices DeviceRemover
	// ContainerStopTimeout is the grace before SIGKILL; 0: container's default.
	ContainerStopTimeout time.Duration
	// DialTimeout bounds the liveness check of a control socket; 0: 1s.
	DialTimeout time.Duration
	Logger      *slog.Logger // nil: discard
}

// HostOptions returns Options for every nfslab object on this host:
// faults heals in namespaces (nil: none, the caller heals faults itself);
// podman finds the container service (podman.At("")).
func HostOptions(faults FaultHealer, podman Podman, namespaces ...string) Options {
	o := RootOptions(faults, DefaultRoot, namespaces...)
	o.Podman = podman
	o.NetnsDir = DefaultNetnsDir
	o.Devices = RemoveBlockDevices
	return o
}

// Roots are nfslab's directories below one root.
type Roots struct {
	Faultfs, Records, Mount, NFSD, Export string
}

// RootsAt lays nfslab's directories out below root (DefaultRoot on a host;
// a private directory for a test).
func RootsAt(root string) Roots {
	return Roots{
		Faultfs: filepath.Join(root, "faultfs"),
		Records: filepath.Join(root, "proc"),
		Mount:   filepath.Join(root, "mnt"),
		NFSD:    filepath.Join(root, "nfsd"),
		Export:  filepath.Join(root, "export"),
	}
}

// RootOptions returns Options for the nfslab objects whose state lives
// below root (a root other than DefaultRoot: NFSLAB_ROOT), in the caller's
// network namespace. Containers and /run/netns names are the host's, not
// the root's: they are skipped.
func RootOptions(faults FaultHealer, root string, namespaces ...string) Options {
	r := RootsAt(root)
	return Options{
		Faults:      faults,
		Namespaces:  namespaces,
		FaultfsRoot: r.Faultfs,
		Records:     proctrack.NewStore(r.Records),
		MountRoot:   r.Mount,
		NFSDRoot:    r.NFSD,
		ExportRoot:  r.Export,
	}
}

// StepReport is what one step did.
type StepReport struct {
	Step string `json:"step"`
	// Removed names the objects removed (fault IDs, container names,
	// paths, server names).
	Removed []string `json:"removed,omitempty"`
	// Kept names objects found but left on purpose, with the reason.
	Kept []string `json:"kept,omitempty"`
	// Skipped says why the step did nothing ("" if it ran).
	Skipped string `json:"skipped,omitempty"`
	// Err is the step's joined error; Error is its text for JSON.
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
}

// Report is what Sweep did, one StepReport per step in order.
type Report struct {
	Steps []StepReport `json:"steps"`
}

// Removed counts the objects removed by all steps.
func (r Report) Removed() int {
	n := 0
	for _, s := range r.Steps {
		n += len(s.Removed)
	}
	return n
}

// Step returns the report of step name (zero if it did not run).
func (r Report) Step(name string) StepReport {
	for _, s := range r.Steps {
		if s.Step == name {
			return s
		}
	}
	return StepReport{}
}

// Sweep removes every nfslab object the options name, in reverse order of
// creation. A failing step does not stop the next ones; the returned error
// joins every step's error, each prefixed with its step.
func Sweep(ctx context.Context, o Options) (Report, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Mounter == nil && (o.FaultfsRoot != "" || o.MountRoot != "" || o.Records != nil || o.ExportRoot != "") {
		o.Mounter = mount.NewLinux(mount.LinuxOptions{})
	}
	if o.AbortFuse == nil {
		o.AbortFuse = FuseCtl(o.Mounter, DefaultFuseCtlDir)
	}
	if o.ProcessWait <= 0 {
		o.ProcessWait = 5 * time.Second
	}
	if o.Detach == nil {
		o.Detach = container.DetachAllNetnsIn
	}
	if o.Servers == nil {
		o.Servers = StopNetnsServer
	}
	if o.ServerRunning == nil {
		o.ServerRunning = NetnsServerRunning
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = time.Second
	}
	steps := []struct {
		name string
		run  func(context.Context, Options, *StepReport)
	}{
		{StepFaults, sweepFaults},
		{StepContainers, sweepContainers},
		{StepNetnsNames, sweepNetnsNames},
		{StepProcesses, sweepProcesses},
		{StepFaultfs, sweepFaultfs},
		{StepMounts, sweepMounts},
		{StepNFSServer, sweepServers},
		{StepExports, sweepExports},
		{StepDevices, sweepDevices},
	}
	var rep Report
	var errs []error
	for _, st := range steps {
		sr := StepReport{Step: st.name}
		if err := ctx.Err(); err != nil {
			sr.Err = err
		} else {
			st.run(ctx, o, &sr)
		}
		if sr.Err != nil {
			sr.Error = sr.Err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", st.name, sr.Err))
		}
		if len(sr.Removed) > 0 || sr.Err != nil {
			o.Logger.Info("cleanup step", "step", st.name, "removed", sr.Removed, "kept", sr.Kept, "err", sr.Err)
		}
		rep.Steps = append(rep.Steps, sr)
	}
	return rep, errors.Join(errs...)
}

func sweepFaults(ctx context.Context, o Options, sr *StepReport) {
	if o.Faults == nil {
		sr.Skipped = "no fault injector given"
		return
	}
	nss := o.Namespaces
	if len(nss) == 0 {
		nss = []string{""}
	}
	var errs []error
	for _, ns := range nss {
		ids, err := o.Faults.HealAll(ctx, ns)
		for _, id := range ids {
			if ns != "" {
				id += " (netns " + ns + ")"
			}
			sr.Removed = append(sr.Removed, id)
		}
		if err != nil {
			where := "the host namespace"
			if ns != "" {
				where = "namespace " + ns
			}
			errs = append(errs, fmt.Errorf("healing faults in %s: %w", where, err))
		}
	}
	sr.Err = errors.Join(errs...)
}

func sweepContainers(ctx context.Context, o Options, sr *StepReport) {
	if o.Podman == nil {
		sr.Skipped = "no container service given"
		return
	}
	rt, err := o.Podman(ctx)
	if errors.Is(err, container.ErrNoService) {
		// No podman: it cannot have nfslab containers running for us to stop.
		sr.Skipped = "no podman service answers"
		return
	}
	if err != nil {
		sr.Err = fmt.Errorf("connecting to podman: %w", err)
		return
	}
	// The names attached to containers go in the next step, with every
	// other stale name.
	sr.Removed, sr.Err = container.Cleanup(ctx, rt, container.CleanupOptions{StopTimeout: o.ContainerStopTimeout})
}

func sweepNetnsNames(_ context.Context, o Options, sr *StepReport) {
	if o.NetnsDir == "" {
		sr.Skipped = "no namespace directory given"
		return
	}
	names, err := o.Detach(o.NetnsDir)
	sr.Removed = names
	if err != nil {
		sr.Err = fmt.Errorf("detaching %s/%s*: %w", o.NetnsDir, container.NetnsPrefix, err)
	}
}

// sortDeepestFirst orders mounts deepest and most recent first (the order
// mount.Sweep uses).
func sortDeepestFirst(ms []ffsMount) {
	sort.SliceStable(ms, func(i, j int) bool {
		di, dj := strings.Count(ms[i].Path, "/"), strings.Count(ms[j].Path, "/")
		if di != dj {
			return di > dj
		}
		return ms[i].ID > ms[j].ID
	})
}

// topName is the first path element of p below root ("x" for ROOT/x/y).
func topName(root, p string) string {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(p))
	if err != nil {
		return ""
	}
	return strings.SplitN(rel, string(filepath.Separator), 2)[0]
}

// unmount unmounts one mount point with the force and lazy fallbacks; a
// mount that is gone by the time it fails counts as removed.
func unmount(ctx context.Context, o Options, p string) (mount.UnmountResult, error) {
	res, err := o.Mounter.Unmount(ctx, p, mount.UnmountOptions{Timeout: o.UnmountTimeout})
	if err != nil {
		if mounted, lerr := o.Mounter.IsMounted(p); lerr == nil && !mounted {
			return res, nil // gone already, or a detached parent took it along
		}
		return res, fmt.Errorf("unmounting %s: %w", p, err)
	}
	return res, nil
}

// removeEmptyDir removes an empty mountpoint directory directly below
// root, bounded because it is a filesystem call near possibly dead mounts.
// A directory that is not empty or still a mountpoint stays.
func removeEmptyDir(ctx context.Context, root, p string) {
	if filepath.Dir(filepath.Clean(p)) != filepath.Clean(root) {
		return
	}
	_ = mount.WithTimeout(ctx, 2*time.Second, func() error { return os.Remove(p) })
}

func describe(p string, res mount.UnmountResult) string {
	switch {
	case res.Detached:
		return p + " (lazily detached)"
	case res.Method == mount.StepForce:
		return p + " (forced)"
	}
	return p
}

// sweepFaultfs unmounts the faultfs mounts below the root and those the
// records name, and removes control sockets no server answers on. A mount
// nobody serves has its FUSE connection aborted first (by the processes
// step when it runs), so the unmount finds no request stuck on it; umount2
// works on such a mount, and force and lazy detach are the fallbacks.
func sweepFaultfs(ctx context.Context, o Options, sr *StepReport) {
	if o.FaultfsRoot == "" && o.Records == nil {
		sr.Skipped = "no faultfs directory given"
		return
	}
	var errs []error
	mps, live, stale, records, err := faultfsMounts(ctx, o)
	if err != nil {
		errs = append(errs, err)
	}
	if o.Records == nil {
		if _, err := abortDead(ctx, o, mps); err != nil {
			errs = append(errs, fmt.Errorf("aborting FUSE connections: %w", err))
		}
	}
	gone := map[string]bool{}
	for _, mp := range mps {
		if mp.served != "" && ((mp.byOwner && o.KeepLiveOwners) || (!mp.byOwner && o.KeepLiveFaultfs)) {
			sr.Kept = append(sr.Kept, mp.Path+" ("+mp.served+")")
			continue
		}
		res, err := unmount(ctx, o, mp.Path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		gone[filepath.Clean(mp.Path)] = true
		sr.Removed = append(sr.Removed, describe(mp.Path, res))
		if o.FaultfsRoot != "" {
			removeEmptyDir(ctx, o.FaultfsRoot, mp.Path)
		}
	}
	// A mount record goes with its mount, or when its owner is gone and
	// nothing is mounted there (a crash between the record and the mount).
	mounted := map[string]bool{}
	for _, mp := range mps {
		mounted[filepath.Clean(mp.Path)] = true
	}
	for _, e := range records {
		p := filepath.Clean(e.Path)
		if gone[p] || (!mounted[p] && !proctrack.Alive(o.procs(), e.Owner)) {
			if err := o.Records.Remove(e); err != nil {
				errs = append(errs, err)
			}
			if !gone[p] && o.FaultfsRoot != "" {
				removeEmptyDir(ctx, o.FaultfsRoot, p)
			}
		}
	}
	for _, s := range stale {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing stale control socket %s: %w", s, err))
			continue
		}
		sr.Removed = append(sr.Removed, s+" (stale control socket)")
	}
	if !o.KeepLiveFaultfs {
		for name := range live {
			// The running server removes its own socket when it exits.
			sr.Kept = append(sr.Kept, filepath.Join(o.FaultfsRoot, name+".sock")+" (a faultfs server still answers on it)")
		}
	}
	sort.Strings(sr.Kept)
	sr.Err = errors.Join(errs...)
}

// socketAnswers reports whether a server accepts connections on the unix
// socket s. Refused or missing means stale.
func socketAnswers(ctx context.Context, s string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// sweepMounts unmounts everything below nfslab's mount directory, deepest
// first; mount.Sweep touches nothing else.
func sweepMounts(ctx context.Context, o Options, sr *StepReport) {
	if o.MountRoot == "" {
		sr.Skipped = "no mount directory given"
		return
	}
	res, err := mount.Sweep(ctx, o.Mounter, o.MountRoot, mount.UnmountOptions{Timeout: o.UnmountTimeout})
	for _, r := range res {
		if r.Err != nil {
			continue
		}
		sr.Removed = append(sr.Removed, describe(r.Mount.Path, r.Result))
		removeEmptyDir(ctx, o.MountRoot, r.Mount.Path)
	}
	sr.Err = err
}

// sweepServers stops each netns NFS server with a state directory below
// the root (nfslab's own; Stop removes the directory too).
func sweepServers(ctx context.Context, o Options, sr *StepReport) {
	if o.NFSDRoot == "" {
		sr.Skipped = "no NFS server state directory given"
		return
	}
	ents, err := os.ReadDir(o.NFSDRoot)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		sr.Err = fmt.Errorf("reading %s: %w", o.NFSDRoot, err)
		return
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if err := o.Servers(ctx, e.Name(), filepath.Join(o.NFSDRoot, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("stopping NFS server %s: %w", e.Name(), err))
			continue
		}
		sr.Removed = append(sr.Removed, e.Name())
	}
	sr.Err = errors.Join(errs...)
}

// sweepDevices removes the dm devices with nfslab's prefix, then the loop
// devices backed below the servers' state root (after the servers and the
// exports: an ext4 export must be unmounted first).
func sweepDevices(ctx context.Context, o Options, sr *StepReport) {
	if o.Devices == nil || o.NFSDRoot == "" {
		sr.Skipped = "no device remover or NFS server state directory given"
		return
	}
	sr.Removed, sr.Err = o.Devices(ctx, o.NFSDRoot)
}
