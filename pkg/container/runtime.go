package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"syscall"
	"time"
)

// Labels put on every container nfslab creates. Cleanup selects on
// LabelOwner=OwnerValue and never touches a container without it.
const (
	LabelOwner = "io.nfslab.owner"
	LabelRun   = "io.nfslab.run"
	LabelRole  = "io.nfslab.role"
	OwnerValue = "nfslab"
)

// Roles of nfslab containers (LabelRole values).
const (
	RoleZeebe     = "zeebe"
	RoleNFSServer = "nfs-server"
	RoleProbe     = "probe"
)

// Errors the Runtime returns, wrapped with context. They mirror podman's
// HTTP statuses so that fakes and the real service fail alike.
var (
	// ErrNotFound: no such container or image (404). Cleanup treats it as done.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the name is in use, or the container is in a state that
	// forbids the operation, e.g. removing a running one without force (409).
	ErrConflict = errors.New("conflict")
	// ErrNotModified: the container already is in the asked-for state, e.g.
	// stopping a stopped container (304).
	ErrNotModified = errors.New("not modified")
	// ErrNoService: no podman service answers on the socket.
	ErrNoService = errors.New("no podman service")
	// ErrNoImage: the image is not in local storage and cannot be pulled.
	ErrNoImage = errors.New("image not present")
)

// Mount is a bind mount of a host path into the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Port publishes ContainerPort on HostIP:HostPort.
type Port struct {
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      uint16 `json:"host_port"`
	ContainerPort uint16 `json:"container_port"`
	Proto         string `json:"proto,omitempty"` // tcp (default) or udp
}

// Rlimit is a resource limit with podman's short name ("nofile", "nproc"):
// podman 4.3 rejects the long RLIMIT_* names that podman 5 accepts.
type Rlimit struct {
	Name string `json:"name"`
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// Network modes for Spec.Network.
const (
	NetworkBridge = "bridge" // podman's default network (needs netavark or CNI)
	NetworkNone   = "none"   // own network namespace with only lo
	NetworkHost   = "host"   // the host's network namespace
)

// Spec describes a container to create.
type Spec struct {
	Name    string            `json:"name"`
	Image   string            `json:"image"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Mounts  []Mount           `json:"mounts,omitempty"`
	Ports   []Port            `json:"ports,omitempty"`
	// Network is bridge (""), none or host.
	Network    string   `json:"network,omitempty"`
	Privileged bool     `json:"privileged,omitempty"`
	WorkDir    string   `json:"workdir,omitempty"`
	Rlimits    []Rlimit `json:"rlimits,omitempty"`
	// Init runs podman's catatonit as PID 1 so that signals reach the
	// workload and its exit status is passed through.
	Init bool `json:"init,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Validate checks what podman would reject later, naming the bad value.
func (s Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("container name %q is invalid (want [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63 characters)", s.Name)
	}
	if s.Image == "" {
		return fmt.Errorf("container %s: image is required", s.Name)
	}
	switch s.Network {
	case "", NetworkBridge, NetworkNone, NetworkHost:
	default:
		return fmt.Errorf("container %s: network %q is not one of bridge, none, host", s.Name, s.Network)
	}
	for k := range s.Env {
		if !envKeyRE.MatchString(k) {
			return fmt.Errorf("container %s: environment variable name %q is invalid", s.Name, k)
		}
	}
	for _, m := range s.Mounts {
		if !isAbs(m.Source) || !isAbs(m.Target) {
			return fmt.Errorf("container %s: mount %s:%s needs absolute paths", s.Name, m.Source, m.Target)
		}
	}
	for _, p := range s.Ports {
		if p.ContainerPort == 0 {
			return fmt.Errorf("container %s: container port 0 is invalid", s.Name)
		}
		if p.Proto != "" && p.Proto != "tcp" && p.Proto != "udp" {
			return fmt.Errorf("container %s: port protocol %q is not tcp or udp", s.Name, p.Proto)
		}
		if s.Network == NetworkNone || s.Network == NetworkHost {
			return fmt.Errorf("container %s: ports cannot be published with network %s", s.Name, s.Network)
		}
	}
	for _, r := range s.Rlimits {
		if !rlimitRE.MatchString(r.Name) {
			return fmt.Errorf("container %s: rlimit name %q is not a short lowercase name such as nofile", s.Name, r.Name)
		}
		if r.Soft > r.Hard {
			return fmt.Errorf("container %s: rlimit %s soft %d above hard %d", s.Name, r.Name, r.Soft, r.Hard)
		}
	}
	if s.Labels[LabelOwner] != OwnerValue {
		return fmt.Errorf("container %s: label %s=%s is missing (use OwnedLabels)", s.Name, LabelOwner, OwnerValue)
	}
	return nil
}

var (
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
	rlimitRE = regexp.MustCompile(`^[a-z]+$`)
)

func isAbs(p string) bool { return len(p) > 0 && p[0] == '/' }

// OwnedLabels returns the labels that mark a container as nfslab's, plus
// extra (which cannot override them).
func OwnedLabels(runID, role string, extra map[string]string) map[string]string {
	l := make(map[string]string, len(extra)+3)
	for k, v := range extra {
		l[k] = v
	}
	l[LabelOwner] = OwnerValue
	if runID != "" {
		l[LabelRun] = runID
	}
	if role != "" {
		l[LabelRole] = role
	}
	return l
}

// State is a container's life-cycle state as podman names it.
type State string

const (
	StateCreated State = "created"
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateStopped State = "stopped"
	StateExited  State = "exited"
)

// Info is what Inspect and List report.
type Info struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Image   string            `json:"image"`
	State   State             `json:"state"`
	PID     int               `json:"pid,omitempty"` // host PID of the container's process 1 while it runs
	Exit    int               `json:"exit_code"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Mounts  []Mount           `json:"mounts,omitempty"`
	// OOMKilled and similar details stay out: nfslab looks at exit codes
	// and logs.
}

// Running reports whether the container's processes exist (running or paused).
func (i Info) Running() bool { return i.State == StateRunning || i.State == StatePaused }

// NetnsPath is the path of the container's network namespace while it runs.
func (i Info) NetnsPath() (string, error) {
	if !i.Running() || i.PID <= 0 {
		return "", fmt.Errorf("container %s is %s: it has no network namespace: %w", i.Name, i.State, ErrConflict)
	}
	return fmt.Sprintf("/proc/%d/ns/net", i.PID), nil
}

// Stream tells which stream a log line came from.
type Stream string

const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// LogLine is one line of a container's output without its newline.
type LogLine struct {
	Stream Stream `json:"stream"`
	Text   string `json:"text"`
}

// LogOptions select which log lines Logs returns.
type LogOptions struct {
	// Follow keeps the stream open until the container exits or ctx ends.
	Follow bool
	// Tail is the number of lines from the end to start with; 0 means all.
	Tail int
	// Since starts at this time; zero means from the start.
	Since time.Time
}

// RemoveOptions tune Remove.
type RemoveOptions struct {
	Force   bool // kill a running container first
	Volumes bool // remove anonymous volumes too
}

// Runtime is the part of a container engine nfslab uses. Methods take a
// container name or ID. Errors wrap ErrNotFound, ErrConflict,
// ErrNotModified where podman answers 404, 409, 304.
type Runtime interface {
	// Create creates a container (not started) and returns its ID.
	// Equivalent to: podman create --name NAME --label ... IMAGE CMD.
	Create(ctx context.Context, spec Spec) (string, error)
	Start(ctx context.Context, name string) error
	Inspect(ctx context.Context, name string) (Info, error)
	// List returns containers in any state whose labels include all of
	// labels.
	List(ctx context.Context, labels map[string]string) ([]Info, error)
	// Logs calls fn for each line of stdout and stderr, in order, until the
	// log ends (the container exited, or !opts.Follow) or ctx is done, in
	// which case it returns ctx.Err().
	Logs(ctx context.Context, name string, opts LogOptions, fn func(LogLine)) error
	// Wait blocks until the container has exited and returns its exit
	// status: 128+N when signal N ended it (134 for a JVM abort after a
	// SIGBUS, 135 for a raw SIGBUS).
	Wait(ctx context.Context, name string) (int, error)
	// Pause freezes the container's processes (cgroup freezer). Kernel
	// threads the container started (knfsd) are not frozen.
	Pause(ctx context.Context, name string) error
	Unpause(ctx context.Context, name string) error
	// Stop sends the stop signal, then SIGKILL after timeout.
	// ErrNotModified if it was not running.
	Stop(ctx context.Context, name string, timeout time.Duration) error
	Kill(ctx context.Context, name string, sig syscall.Signal) error
	Restart(ctx context.Context, name string, timeout time.Duration) error
	Remove(ctx context.Context, name string, opts RemoveOptions) error
	// CopyOut writes the content of the regular file path inside the
	// container (running or exited) to w.
	CopyOut(ctx context.Context, name, path string, w io.Writer) error
	// ListDir lists the names of entries directly under dir in the container.
	ListDir(ctx context.Context, name, dir string) ([]string, error)
	ImageExists(ctx context.Context, ref string) (bool, error)
	// Pull pulls ref, writing progress lines to progress.
	Pull(ctx context.Context, ref string, progress io.Writer) error
	// Import creates image ref from a rootfs tarball and returns its ID.
	// Equivalent to: podman import TARBALL REF.
	Import(ctx context.Context, tarball io.Reader, ref string) (string, error)
	// Version reports the service's podman version.
	Version(ctx context.Context) (string, error)
}

// Run creates and starts a container; on a failed start it removes what
// it created, so nothing half-made stays.
func Run(ctx context.Context, rt Runtime, spec Spec) (string, error) {
	id, err := rt.Create(ctx, spec)
	if err != nil {
		return "", err
	}
	if err := rt.Start(ctx, id); err != nil {
		_ = rt.Remove(context.WithoutCancel(ctx), id, RemoveOptions{Force: true, Volumes: true})
		return "", err
	}
	return id, nil
}

// ListOwned lists nfslab's containers; runID "" means of every run.
func ListOwned(ctx context.Context, rt Runtime, runID string) ([]Info, error) {
	sel := map[string]string{LabelOwner: OwnerValue}
	if runID != "" {
		sel[LabelRun] = runID
	}
	return rt.List(ctx, sel)
}

func isNotModified(err error) bool { return errors.Is(err, ErrNotModified) }

// readAll is CopyOut into memory.
func readAll(ctx context.Context, rt Runtime, name, file string) ([]byte, error) {
	var b bytes.Buffer
	err := rt.CopyOut(ctx, name, file, &b)
	return b.Bytes(), err
}
