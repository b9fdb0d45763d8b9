package podman

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/mount"
)

// ServiceOptions configure a podman service started by nfslab.
type ServiceOptions struct {
	// Podman is the podman executable; "" means "podman" on PATH.
	Podman string
	// Socket is the path of the unix socket to listen on (required).
	Socket string
	// Runtime is the OCI runtime; "" means runc, which podman 4.3 on
	// Debian needs (its crun lacks features the v5 bindings ask for).
	Runtime string
	// Root, RunRoot and TmpDir, when set, give the service storage of its
	// own (--root, --runroot, --tmpdir), so that tests leave the machine's
	// podman storage untouched.
	Root, RunRoot, TmpDir string
	// StorageDriver, e.g. overlay or vfs; "" is podman's choice.
	StorageDriver string
	// CgroupManager: "" means cgroupfs, which needs no systemd.
	CgroupManager string
	// Wrap is put before the command, e.g. nsenter --net=/run/netns/NS so
	// that a test's service (its bridge, DNAT and conntrack) lives in a
	// namespace of the test's own.
	Wrap []string
	// Env is added to the service's environment, e.g.
	// CONTAINERS_CONF_OVERRIDE=FILE to choose netavark's firewall driver.
	Env []string
	// Log receives the service's stdout and stderr; nil discards them.
	Log io.Writer
	// Records, when set, records the service process for heal; it dies
	// with nfslab either way (proctrack.Start).
	Records *proctrack.Store
	// ReadyTimeout bounds the wait for the socket to answer; 0 means 20 s.
	ReadyTimeout time.Duration
	Clock        clock.Clock
}

// Service is a podman service process nfslab started.
type Service struct {
	URI  string
	cmd  *exec.Cmd
	done chan error
	// mounts are the storage directories and the mounts below them when
	// the service started; its record carries them too, so that a sweep
	// after nfslab was killed removes what Stop would have.
	mounts proctrack.MountScope
}

// Podman's storage directories for root when storage.conf is left as
// Debian ships it.
const (
	DefaultStorageRoot    = "/var/lib/containers/storage"
	DefaultStorageRunRoot = "/run/containers/storage"
)

// Args returns the command line StartService runs, for logs and docs.
func (o ServiceOptions) Args() []string {
	podman := o.Podman
	if podman == "" {
		podman = "podman"
	}
	rt := o.Runtime
	if rt == "" {
		rt = "runc"
	}
	cg := o.CgroupManager
	if cg == "" {
		cg = "cgroupfs"
	}
	args := []string{podman, "--runtime", rt, "--cgroup-manager", cg, "--events-backend", "file"}
	if o.Root != "" {
		args = append(args, "--root", o.Root)
	}
	if o.RunRoot != "" {
		args = append(args, "--runroot", o.RunRoot)
	}
	if o.TmpDir != "" {
		args = append(args, "--tmpdir", o.TmpDir)
	}
	if o.StorageDriver != "" {
		args = append(args, "--storage-driver", o.StorageDriver)
	}
	args = append(args, "system", "service", "--time=0", "unix://"+o.Socket)
	if len(o.Env) > 0 {
		args = append(append([]string{"env"}, o.Env...), args...)
	}
	return append(slices.Clone(o.Wrap), args...)
}

// StartService starts `podman system service` as a child process and waits
// until its socket answers. Stop it with Service.Stop; nothing else ends it.
func StartService(ctx context.Context, o ServiceOptions) (*Service, error) {
	if o.Socket == "" || !filepath.IsAbs(o.Socket) {
		return nil, fmt.Errorf("podman service socket %q must be an absolute path", o.Socket)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 20 * time.Second
	}
	if o.Runtime == "" {
		// runc where it is installed (podman 4.3's crun on Debian lacks
		// what the v5 bindings ask for); else crun (podman 5 on trixie
		// pulls in only crun).
		if _, err := exec.LookPath("runc"); err != nil {
			if _, err := exec.LookPath("crun"); err == nil {
				o.Runtime = "crun"
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(o.Socket), 0o700); err != nil {
		return nil, fmt.Errorf("creating directory for podman socket: %w", err)
	}
	args := o.Args()
	// Not tied to ctx: the service outlives the call; Stop ends it by PID.
	cmd := cmdrun.Command(context.WithoutCancel(ctx), args[0], args[1:]...)
	if o.Log != nil {
		cmd.Stdout, cmd.Stderr = o.Log, o.Log
	}
	// proctrack.Start: its own process group, so a Ctrl-C meant for nfslab
	// reaches the service only through Stop, after nfslab cleaned up its
	// containers; SIGKILL when nfslab dies. The parent-death signal
	// follows the forking thread, so a goroutine of the service's own
	// starts it, holds that thread until the service exits, then releases.
	roots := []string{cmp.Or(o.Root, DefaultStorageRoot), cmp.Or(o.RunRoot, DefaultStorageRunRoot)}
	s := &Service{URI: "unix://" + o.Socket, cmd: cmd, done: make(chan error, 1),
		mounts: proctrack.MountScope{Roots: roots, Before: proctrack.MountScope{Roots: roots}.Left(mountPoints())}}
	started := make(chan error, 1)
	go func() {
		release, err := proctrack.StartRecord(o.Records, cmd, proctrack.Record{Name: serviceRecord, Mounts: &s.mounts})
		started <- err
		if err != nil {
			return
		}
		werr := cmd.Wait()
		release()
		s.done <- werr
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting podman service (%v): %w", args, err)
	}
	deadline := o.Clock.Now().Add(o.ReadyTimeout)
	for {
		if _, err := os.Stat(o.Socket); err == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := Connect(cctx, s.URI)
			cancel()
			if err == nil {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("podman service (%v) exited before it answered: %v", args, err)
		case <-ctx.Done():
			_ = s.Stop()
			return nil, ctx.Err()
		case <-o.Clock.After(100 * time.Millisecond):
		}
		if o.Clock.Now().After(deadline) {
			_ = s.Stop()
			return nil, fmt.Errorf("podman service (%v) did not answer on %s within %s", args, o.Socket, o.ReadyTimeout)
		}
	}
}

// PID is the service's process ID.
func (s *Service) PID() int { return s.cmd.Process.Pid }

// Stop ends the service by PID: SIGTERM, then SIGKILL after 10 s, and
// removes the mounts the service left below its storage directories (the
// overlay driver's private bind mount of its home, which outlives the
// process). Running containers survive it (conmon keeps them); run
// Cleanup first.
func (s *Service) Stop() error {
	select {
	case err := <-s.done:
		s.done <- err
		return s.unmountOwn()
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping podman service pid %d: %w", s.PID(), err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		return s.unmountOwn()
	case <-time.After(10 * time.Second):
	}
	_ = s.cmd.Process.Kill()
	err := <-s.done
	s.done <- err
	return s.unmountOwn()
}

// unmountOwn lazily unmounts, deepest first, the mounts below the storage
// directories that were not there when the service started.
func (s *Service) unmountOwn() error {
	var errs []error
	for _, mp := range s.mounts.Left(mountPoints()) {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s, left by the podman service: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// mountPoints lists the mount points in this mount namespace.
func mountPoints() []string {
	f, err := os.Open(mount.MountInfoPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	mps, err := mount.ParseMountInfo(f)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(mps))
	for _, mp := range mps {
		out = append(out, mp.Path)
	}
	return out
}
