package backends

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// NFSStorage starts an NFS server (netns, container or external) and soft-mounts it
// below nfslab's mount directory; the data directory is Subdir inside the
// mount (the seed's srv/nfs).
type NFSStorage struct {
	Spec     scenario.Storage
	MountDir string // below mount.DefaultRoot
	Mounter  mount.Mounter
	Host     nfsserver.Host
	Clock    clock.Clock // times mount retries; nil is the wall clock
	// Container is what server kind container needs: the runtime (podman),
	// the run's label and the host directory it exports.
	Container ContainerServerEnv

	mu      sync.Mutex
	server  nfsserver.Server
	mounted bool
}

var _ engine.Storage = (*NFSStorage)(nil)

// NewNFSStorage builds the server the scenario names.
func NewNFSStorage(spec scenario.Storage, mountName string) (*NFSStorage, error) {
	target, err := mount.Target(mount.DefaultRoot, mountName)
	if err != nil {
		return nil, err
	}
	return &NFSStorage{Spec: spec, MountDir: target, Mounter: mount.NewLinux(mount.LinuxOptions{}), Host: nfsserver.NewHost()}, nil
}

func (s *NFSStorage) newServer(ctx context.Context) (nfsserver.Server, error) {
	sv := s.Spec.Server
	switch sv.Kind {
	case scenario.ServerNetns:
		cfg := nfsserver.NetnsConfig{ExportSize: int64(sv.ExportSize), ExportFS: sv.ExportFS,
			AllowLocalIO: sv.LocalIO == scenario.LocalIOAllow, DisableLocalIO: sv.LocalIO == scenario.LocalIODisable}.WithDefaults()
		return nfsserver.NewNetns(cfg, s.Host)
	case scenario.ServerContainer:
		return s.newContainerServer(ctx)
	case scenario.ServerExternal:
		port := 0
		if o, err := mount.ParseNFSOptions(s.Spec.Options); err == nil {
			port = o.Port
		}
		return nfsserver.NewExternal(nfsserver.ExternalConfig{Addr: sv.Address, Port: port, Export: cmp.Or(sv.Export, "/")}, s.Host)
	}
	return nil, fmt.Errorf("NFS server kind %q: %w", sv.Kind, engine.ErrUnsupported)
}

func (s *NFSStorage) Setup(ctx context.Context) (engine.StorageInfo, error) {
	srv, err := s.newServer(ctx)
	if err != nil {
		return engine.StorageInfo{}, err
	}
	s.mu.Lock()
	s.server = srv
	s.mu.Unlock()
	ep, err := srv.Start(ctx)
	if err != nil {
		return engine.StorageInfo{}, fmt.Errorf("starting NFS server (%s): %w", srv.Kind(), err)
	}
	optStr := s.Spec.Options
	if optStr == "" {
		optStr = ep.MountOptions()
	}
	opts, err := mount.ParseNFSOptions(optStr)
	if err != nil {
		return engine.StorageInfo{}, err
	}
	if opts.Port == 0 && ep.Port != 0 {
		opts.Port = ep.Port
	}
	if err := mount.PrepareTarget(mount.DefaultRoot, s.MountDir); err != nil {
		return engine.StorageInfo{}, err
	}
	var used mount.NFSOptions
	attempts, err := retryMount(ctx, s.clock(), mountRetryBudget, func() error {
		var err error
		used, err = mount.MountNFS(ctx, s.Mounter, mount.NetResolver{}, ep.Source(), s.MountDir, opts)
		return err
	})
	if err != nil {
		return engine.StorageInfo{}, fmt.Errorf("mounting %s on %s (%d attempts): %w", ep.Source(), s.MountDir, attempts, err)
	}
	s.mu.Lock()
	s.mounted = true
	s.mu.Unlock()
	data := filepath.Join(s.MountDir, s.Spec.Subdir)
	if err := mount.WithTimeout(ctx, 0, func() error { return os.MkdirAll(data, 0o755) }); err != nil {
		return engine.StorageInfo{}, fmt.Errorf("creating data directory %s: %w", data, err)
	}
	detail := []string{
		fmt.Sprintf("NFS server %s at %s port %s", srv.Kind(), ep.Source(), strconv.Itoa(max(ep.Port, 2049))),
		fmt.Sprintf("mounted on %s with %s (%s)", s.MountDir, used.String(), used.Describe()),
	}
	if attempts > 1 {
		detail = append(detail, fmt.Sprintf("the mount succeeded at attempt %d: the earlier ones failed with EIO/ETIMEDOUT (a just-started server, or the client's state of the previous server at the same address)", attempts))
	}
	return engine.StorageInfo{DataDir: data, ServerAddr: ep.Addr.String(), Detail: detail}, nil
}

func (s *NFSStorage) clock() clock.Clock {
	if s.Clock == nil {
		return clock.Real{}
	}
	return s.Clock
}

// mountRetryBudget bounds the retries of a mount that fails with EIO: the
// netns server's grace (10 s) plus its lease (15 s), with margin.
const mountRetryBudget = 45 * time.Second

// retryMount runs mountFn until it succeeds, fails with an error other
// than EIO or ETIMEDOUT, or budget is spent, waiting 1, 2, 4, 8, 8... s
// between attempts. It returns the number of attempts made.
//
// Why: in the lab VM, a mount(2) of a freshly started netns server at
// 10.213.0.2 failed with EIO right after the previous scenario had torn
// down its server at the same address (the kernel's NFSv4 client state for
// that address outlives the unmount for a while); a later mount worked.
// The mount is set-up, not the experiment, so it is retried, bounded, and
// the attempts are reported.
func retryMount(ctx context.Context, clk clock.Clock, budget time.Duration, mountFn func() error) (int, error) {
	deadline := clk.Now().Add(budget)
	wait := time.Second
	for attempt := 1; ; attempt++ {
		err := mountFn()
		if err == nil {
			return attempt, nil
		}
		if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.ETIMEDOUT) {
			return attempt, err
		}
		if clk.Now().Add(wait).After(deadline) {
			return attempt, fmt.Errorf("giving up after %s: %w", budget, err)
		}
		select {
		case <-ctx.Done():
			return attempt, errors.Join(err, ctx.Err())
		case <-clk.After(wait):
		}
		wait = min(2*wait, 8*time.Second)
	}
}

func (s *NFSStorage) SetFault(context.Context, string, scenario.FaultfsRule) error {
	return fmt.Errorf("faultfs rules need storage kind faultfs: %w", engine.ErrUnsupported)
}
func (s *NFSStorage) ClearFault(context.Context, string) error { return nil }

// DropCache drops the client's page cache so a replay reads from the server
// (echo 3 > /proc/sys/vm/drop_caches: the NFS client has no per-file way
// that also covers mapped pages).
func (s *NFSStorage) DropCache(context.Context) error {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
		return fmt.Errorf("dropping the page cache: %w", err)
	}
	return nil
}

// Teardown unmounts (plain, force, detach) and stops the server.
func (s *NFSStorage) Teardown(ctx context.Context) error {
	s.mu.Lock()
	srv, mounted := s.server, s.mounted
	s.mounted = false
	s.mu.Unlock()
	var errs []error
	if mounted {
		if _, err := s.Mounter.Unmount(ctx, s.MountDir, mount.UnmountOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", s.MountDir, err))
		}
	}
	if srv != nil {
		if err := srv.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping NFS server: %w", err))
		} else if srv.Kind() == nfsserver.KindContainer && s.Container.ExportDir != "" {
			// The export is the run's (ContainerExportDir), in memory.
			if err := os.RemoveAll(s.Container.ExportDir); err != nil {
				errs = append(errs, fmt.Errorf("removing the container server's export: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

var _ engine.ServerFaulter = (*NFSStorage)(nil)

// ServerFault switches a fault of nfslab's own server (netns or container)
// on or off (the server-* actions); an external server is not nfslab's to
// break.
func (s *NFSStorage) ServerFault(ctx context.Context, fault string, on bool, target nfsserver.FaultTarget) error {
	s.mu.Lock()
	srv := s.server
	s.mu.Unlock()
	ns, ok := srv.(nfsserver.Faulter)
	if !ok {
		return fmt.Errorf("server faults need nfslab's own server (kind netns or container), not %T: %w", srv, engine.ErrUnsupported)
	}
	f, err := nfsserver.ParseServerFault(fault)
	if err != nil {
		return err
	}
	return ns.Fault(ctx, f, on, target)
}
