package backends

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// ContainerServerEnv is what storage.server.kind container needs from the
// run: podman, the run's label for its container, and the host directory
// the container exports as /mnt/data.
type ContainerServerEnv struct {
	Runtime   func(ctx context.Context) (container.Runtime, error)
	RunID     string
	ExportDir string
}

// ContainerExportDir is the container server's export of run: below the
// netns servers' exports (nfsserver.DefaultExport; tmpfs on most systems,
// which knfsd exports with the image's fsid=0).
func ContainerExportDir(run string) string { return filepath.Join(nfsserver.DefaultExport, run) }

// DefaultContainerPublish is where the workshop published its server:
// podman run -p 2049:2049, mounted as localhost:/.
const DefaultContainerPublish = "127.0.0.1:2049"

// newContainerServer is the workshop's server: storage.server.image (""
// is nfslab's own image) run by podman, published on storage.server.publish
// (default 127.0.0.1:2049) through podman's own port mapping, the DNAT the
// workshop's rules never saw.
func (s *NFSStorage) newContainerServer(ctx context.Context) (nfsserver.Server, error) {
	sv, env := s.Spec.Server, s.Container
	if env.Runtime == nil || env.ExportDir == "" {
		return nil, fmt.Errorf("NFS server kind container: no container runtime configured")
	}
	pub := sv.Publish
	if pub == "" {
		pub = DefaultContainerPublish
	}
	ap, err := netip.ParseAddrPort(pub)
	if err != nil {
		return nil, fmt.Errorf("storage.server.publish %q is not ADDRESS:PORT: %w", pub, err)
	}
	rt, err := env.Runtime(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to podman for the NFS server container: %w", err)
	}
	return nfsserver.NewContainer(nfsserver.ContainerConfig{
		Spec: container.NFSServerSpec{Image: sv.Image, ExportDir: env.ExportDir, HostIP: ap.Addr().String(), HostPort: int(ap.Port()), RunID: env.RunID},
	}, rt, s.Host)
}
