package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// NFSStorage starts an NFS server (netns or external) and soft-mounts it
// below nfslab's mount directory; the data directory is Subdir inside the
// mount (the seed's srv/nfs).
type NFSStorage struct {
	Spec     scenario.Storage
	MountDir string // below mount.DefaultRoot
	Mounter  mount.Mounter
	Host     nfsserver.Host

	mu      sync.Mutex
	server  nfsserver.Server
	mounted bool
	pub     publishState // storage.server.publish (publish_linux.go)
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

func (s *NFSStorage) newServer() (nfsserver.Server, error) {
	sv := s.Spec.Server
	switch sv.Kind {
	case scenario.ServerNetns:
		cfg := nfsserver.NetnsConfig{}.WithDefaults()
		return nfsserver.NewNetns(cfg, s.Host)
	case scenario.ServerExternal:
		port := 0
		if o, err := mount.ParseNFSOptions(s.Spec.Options); err == nil {
			port = o.Port
		}
		return nfsserver.NewExternal(nfsserver.ExternalConfig{Addr: sv.Address, Port: port, Export: or(sv.Export, "/")}, s.Host)
	}
	// TODO(scenario): server kind container (pkg/container's NFS server
	// spec) once an NFS server image can be imported here.
	return nil, fmt.Errorf("NFS server kind %q is not wired into the engine yet (use --set storage.server.kind=netns): %w", sv.Kind, engine.ErrUnsupported)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *NFSStorage) Setup(ctx context.Context) (engine.StorageInfo, error) {
	srv, err := s.newServer()
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
	// storage.server.publish: mount the published address through a DNAT,
	// as podman -p makes (publish_linux.go).
	if ep, err = s.publish(ctx, ep); err != nil {
		return engine.StorageInfo{}, err
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
	used, err := mount.MountNFS(ctx, s.Mounter, mount.NetResolver{}, ep.Source(), s.MountDir, opts)
	if err != nil {
		return engine.StorageInfo{}, fmt.Errorf("mounting %s on %s: %w", ep.Source(), s.MountDir, err)
	}
	s.mu.Lock()
	s.mounted = true
	s.mu.Unlock()
	data := filepath.Join(s.MountDir, s.Spec.Subdir)
	if err := mount.WithTimeout(ctx, 0, func() error { return os.MkdirAll(data, 0o755) }); err != nil {
		return engine.StorageInfo{}, fmt.Errorf("creating data directory %s: %w", data, err)
	}
	return engine.StorageInfo{DataDir: data, ServerAddr: ep.Addr.String(), Detail: []string{
		fmt.Sprintf("NFS server %s at %s port %s", srv.Kind(), ep.Source(), strconv.Itoa(max(ep.Port, 2049))),
		fmt.Sprintf("mounted on %s with %s (%s)", s.MountDir, used.String(), used.Describe()),
	}}, nil
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
	// After the unmount (its traffic goes through the DNAT), before the server.
	if err := s.unpublish(ctx); err != nil {
		errs = append(errs, err)
	}
	if srv != nil {
		if err := srv.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping NFS server: %w", err))
		}
	}
	return errors.Join(errs...)
}
