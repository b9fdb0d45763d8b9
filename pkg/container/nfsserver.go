package container

import (
	"fmt"
	"path/filepath"
)

// DefaultNFSServerImage is the containerized NFS server of the workshop.
const DefaultNFSServerImage = "ghcr.io/normal-computing/nfs-server:latest"

// NFSServerSpec is the seed's containerized NFS server, the third kind of
// server next to a VM's knfsd and a server in a namespace. Equivalent to:
//
//	podman run --privileged -v DIR:/mnt/data:rw -p 2049:2049 \
//	  -e NFS_SERVER_ALLOWED_CLIENTS=10.88.0.0/12 IMAGE
//
// Read Traps before trusting a fault against it.
type NFSServerSpec struct {
	Name           string // default nfslab-nfs-server
	Image          string // default DefaultNFSServerImage
	ExportDir      string // host directory exported as /mnt/data
	HostIP         string // default 127.0.0.1
	HostPort       int    // default 2049
	AllowedClients string // default 10.88.0.0/12, podman's bridge range
	Debug          bool   // NFS_SERVER_DEBUG=1
	RunID          string
	Labels         map[string]string
}

// WithDefaults fills unset fields.
func (s NFSServerSpec) WithDefaults() NFSServerSpec {
	if s.Name == "" {
		s.Name = "nfslab-nfs-server"
	}
	if s.Image == "" {
		s.Image = DefaultNFSServerImage
	}
	if s.HostIP == "" {
		s.HostIP = "127.0.0.1"
	}
	if s.HostPort == 0 {
		s.HostPort = 2049
	}
	if s.AllowedClients == "" {
		s.AllowedClients = "10.88.0.0/12"
	}
	return s
}

// Validate names the first bad value.
func (s NFSServerSpec) Validate() error {
	if s.ExportDir == "" || !filepath.IsAbs(s.ExportDir) {
		return fmt.Errorf("nfs server export directory %q must be an absolute host path", s.ExportDir)
	}
	if s.HostPort < 1 || s.HostPort > 65535 {
		return fmt.Errorf("nfs server port %d is out of range 1..65535", s.HostPort)
	}
	return s.ContainerSpec().Validate()
}

// ContainerSpec is the privileged server container.
func (s NFSServerSpec) ContainerSpec() Spec {
	env := map[string]string{"NFS_SERVER_ALLOWED_CLIENTS": s.AllowedClients}
	if s.Debug {
		env["NFS_SERVER_DEBUG"] = "1"
	}
	return Spec{
		Name:       s.Name,
		Image:      s.Image,
		Privileged: true, // exportfs and nfsd need it
		Env:        env,
		Labels:     OwnedLabels(s.RunID, RoleNFSServer, s.Labels),
		Mounts:     []Mount{{Source: s.ExportDir, Target: "/mnt/data"}},
		Ports:      []Port{{HostIP: s.HostIP, HostPort: uint16(s.HostPort), ContainerPort: 2049}},
	}
}

// Trap is a way an experiment can silently test nothing.
type Trap struct {
	// Code is stable: pause-kernel-threads, dnat-port-mapping, localio,
	// userspace-proxy.
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

// Traps of the containerized NFS server, which cost the workshop half a
// day: the faults they applied matched 0 packets and `pause` did not stop
// the server.
func (s NFSServerSpec) Traps() []Trap {
	s = s.WithDefaults()
	return []Trap{
		{
			Code: "pause-kernel-threads",
			Detail: "the server is the kernel's knfsd: the container only configures it, and its nfsd threads are kernel threads " +
				"outside the container's cgroup, so `podman pause` (cgroup freezer) stops only the userspace helpers and the server keeps serving",
			Fix: "fault the network (nfslab drop or unreachable) instead of pausing the container; stop the server with `rpc.nfsd 0` inside it",
		},
		{
			Code: "dnat-port-mapping",
			Detail: fmt.Sprintf("-p %s:%d:2049 is a DNAT: packets to %s:%d are rewritten in nat OUTPUT before filter OUTPUT sees them, "+
				"so a rule matching -d %s --dport %d counts 0 packets", s.HostIP, s.HostPort, s.HostIP, s.HostPort, s.HostIP, s.HostPort),
			Fix: fmt.Sprintf("nfslab drop --dst %s --port %d --match-original (matches conntrack's original destination)", s.HostIP, s.HostPort),
		},
		{
			Code: "localio",
			Detail: "on kernels >= 6.12 with CONFIG_NFS_LOCALIO, a client and server on the same kernel bypass the network entirely, " +
				"so no packet fault can bite",
			Fix: "run the server in a VM (nfslab vm) or disable LOCALIO (nfs module parameter localio_enabled=N)",
		},
		{
			Code: "userspace-proxy",
			Detail: "rootless podman publishes ports through a userspace proxy (rootlessport, slirp4netns or pasta): the client talks to the proxy, " +
				"and the proxy's own connection to the server is what a rule must match",
			Fix: "run podman as root, or aim the fault at the container's address inside its network namespace",
		},
	}
}

// TrapsFor returns the traps that apply to an existing container, chosen
// by its role label; none for roles without known traps.
func TrapsFor(in Info) []Trap {
	if in.Labels[LabelRole] == RoleNFSServer {
		return NFSServerSpec{}.Traps()
	}
	return nil
}

// PauseWarning explains, before pausing container in, why the pause may
// not have the effect the caller expects; "" when none is known.
func PauseWarning(in Info) string {
	for _, t := range TrapsFor(in) {
		if t.Code == "pause-kernel-threads" {
			return fmt.Sprintf("pausing %s will not stop NFS service: %s; %s", in.Name, t.Detail, t.Fix)
		}
	}
	return ""
}
