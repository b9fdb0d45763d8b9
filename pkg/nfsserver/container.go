package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/container"
)

// KindContainer is the workshop's set-up: the kernel's nfsd configured
// from a privileged container and published on the host through podman's
// port mapping (a DNAT), mounted as localhost:/.
const KindContainer = "container"

// ContainerConfig is the containerized server.
type ContainerConfig struct {
	// Spec is the container: image ("" is nfslab's own, built from this
	// machine's nfs-kernel-server, not Spec's default, the workshop's
	// image, which no registry here serves), export directory, published
	// address.
	Spec container.NFSServerSpec
	// ReadyTimeout bounds the wait for the published port to accept a
	// connection (default 60 s: the image import and knfsd's start).
	ReadyTimeout time.Duration
	// DisableLocalIO turns LOCALIO off instead of refusing: client and
	// server share this kernel, as with any local server.
	DisableLocalIO bool
	// Clock paces the readiness retries (default the wall clock).
	Clock clock.Clock
}

// ContainerServer runs ContainerConfig through a container runtime.
type ContainerServer struct {
	cfg  ContainerConfig
	rt   container.Runtime
	host Host
	own  bool // the image is nfslab's own (Spec.Image was empty)
	id   string
}

// NewContainer validates cfg; nothing runs until Start.
func NewContainer(cfg ContainerConfig, rt container.Runtime, h Host) (*ContainerServer, error) {
	own := cfg.Spec.Image == ""
	cfg.Spec = cfg.Spec.WithDefaults()
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if _, err := netip.ParseAddr(cfg.Spec.HostIP); err != nil {
		return nil, invalid("published address %q is not an IP address", cfg.Spec.HostIP)
	}
	if err := cfg.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &ContainerServer{cfg: cfg, rt: rt, host: h, own: own}, nil
}

func (s *ContainerServer) Kind() string { return KindContainer }

// Start builds or finds the image, runs the server with the workshop's
// `podman run --privileged -v DIR:/mnt/data -p IP:PORT:2049` and waits
// until the published port accepts a connection. Equivalent to:
//
//	modprobe nfsd; mkdir -m 0777 DIR
//	podman run -d --privileged --label io.nfslab.owner=nfslab ... -v DIR:/mnt/data:rw -p 127.0.0.1:2049:2049 IMAGE
func (s *ContainerServer) Start(ctx context.Context) (Endpoint, error) {
	sp := s.cfg.Spec
	// The server and a client on this host share one kernel.
	if err := RequireNoLocalIO(s.host, s.cfg.DisableLocalIO); err != nil {
		return Endpoint{}, fmt.Errorf("server container publishes on this host: %w", err)
	}
	// A container cannot load modules: /proc/fs/nfsd exists only once the
	// host has nfsd loaded (built in, the command fails harmlessly).
	_, _ = s.host.Run(ctx, "modprobe", "nfsd")
	if !s.host.Exists("/proc/fs/nfsd") {
		return Endpoint{}, fmt.Errorf("starting the NFS server container: %w", ErrNoKernelNFSD)
	}
	// The export is root_squash, as in the workshop's image: a root
	// client writes as nobody, so the directory is open to everyone.
	if err := s.host.MkdirAll(sp.ExportDir); err != nil {
		return Endpoint{}, fmt.Errorf("creating export directory %s: %w", sp.ExportDir, err)
	}
	if err := s.host.Chmod(sp.ExportDir, 0o777); err != nil {
		return Endpoint{}, fmt.Errorf("opening export directory %s to the squashed root: %w", sp.ExportDir, err)
	}
	cs := sp.ContainerSpec()
	if s.own {
		rootfs, err := container.NFSServerRootfs(s.host.LookPath)
		if err != nil {
			return Endpoint{}, err
		}
		if cs.Image, err = container.EnsureOwnImage(ctx, s.rt, container.OwnNFSServerImage, rootfs); err != nil {
			return Endpoint{}, err
		}
		cs.Command = container.NFSServerCommand(rootfs)
	} else if err := container.EnsureImage(ctx, s.rt, sp.Image, container.PullOptions{Hint: "or leave storage.server.image empty for nfslab's own server image"}); err != nil {
		return Endpoint{}, err
	}
	id, err := container.Run(ctx, s.rt, cs)
	if err != nil {
		return Endpoint{}, fmt.Errorf("starting the NFS server container %s: %w", cs.Name, err)
	}
	s.id = id
	ep := Endpoint{Addr: netip.MustParseAddr(sp.HostIP).Unmap(), Port: sp.HostPort, Export: "/"}
	if err := s.waitReady(ctx, netip.AddrPortFrom(ep.Addr, uint16(ep.Port))); err != nil {
		// A server that never answered leaves nothing: its last words go
		// into the error, then the container goes.
		if tail := s.logTail(ctx, 10); tail != "" {
			err = fmt.Errorf("%w; its log ends:\n%s", err, tail)
		}
		return Endpoint{}, errors.Join(err, s.Stop(context.WithoutCancel(ctx)))
	}
	return ep, nil
}

// logTail is the container's last n log lines ("" if none can be read).
func (s *ContainerServer) logTail(ctx context.Context, n int) string {
	var lines []string
	_ = s.rt.Logs(ctx, s.id, container.LogOptions{Tail: n}, func(l container.LogLine) { lines = append(lines, "  "+l.Text) })
	return strings.Join(lines, "\n")
}

// waitReady connects to the published port until it answers, the
// container exits, or ReadyTimeout passes.
func (s *ContainerServer) waitReady(ctx context.Context, ap netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	for {
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.host.DialTCP(dctx, ap)
		dcancel()
		if err == nil {
			return nil
		}
		if info, ierr := s.rt.Inspect(ctx, s.id); ierr == nil && !info.Running() {
			return fmt.Errorf("%w: the server container %s exited (code %d) before %s answered",
				ErrUnreachable, s.cfg.Spec.Name, info.Exit, ap)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s did not answer within %s: %w", ErrUnreachable, ap, s.cfg.ReadyTimeout, err)
		case <-s.cfg.Clock.After(500 * time.Millisecond):
		}
	}
}

// Stop removes the container (force: stop, then remove); a container
// already gone is done. knfsd ends with the container's network namespace.
func (s *ContainerServer) Stop(ctx context.Context) error {
	if s.id == "" {
		return nil
	}
	err := s.rt.Remove(ctx, s.id, container.RemoveOptions{Force: true, Volumes: true})
	if err != nil && !errors.Is(err, container.ErrNotFound) {
		return fmt.Errorf("removing the NFS server container %s: %w", s.cfg.Spec.Name, err)
	}
	s.id = ""
	return nil
}

// ContainerID is the running server's container ID ("" before Start).
func (s *ContainerServer) ContainerID() string { return s.id }

// Fault switches a server fault of the container server. FaultStop stops
// the container (knfsd ends with its namespace, and podman removes the
// DNAT, so the client meets a refused port, not a silent one) and off
// starts it again: a new knfsd instance in its grace period, which the
// client must reclaim from. The other faults need a shell in the server
// and are the netns server's.
func (s *ContainerServer) Fault(ctx context.Context, f ServerFault, on bool, _ FaultTarget) error {
	if s.id == "" {
		return fmt.Errorf("%w: the server container is not running", ErrNotRunning)
	}
	if f != FaultStop {
		return invalid("server fault %q needs server kind netns; the container server has only %q", f, FaultStop)
	}
	if on {
		err := s.rt.Stop(ctx, s.id, 10*time.Second)
		if err != nil && !errors.Is(err, container.ErrNotModified) {
			return fmt.Errorf("stopping the NFS server container %s: %w", s.cfg.Spec.Name, err)
		}
		return nil
	}
	if err := s.rt.Start(ctx, s.id); err != nil && !errors.Is(err, container.ErrNotModified) {
		return fmt.Errorf("starting the NFS server container %s again: %w", s.cfg.Spec.Name, err)
	}
	return s.waitReady(ctx, netip.AddrPortFrom(netip.MustParseAddr(s.cfg.Spec.HostIP), uint16(s.cfg.Spec.HostPort)))
}
