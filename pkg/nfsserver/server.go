package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
)

// Server is an NFS server an experiment mounts from.
type Server interface {
	// Start makes the server ready to serve and returns where to mount it.
	Start(ctx context.Context) (Endpoint, error)
	// Stop removes everything Start created; stopping a stopped server is
	// not an error.
	Stop(ctx context.Context) error
	// Kind is "netns", "external" or "container".
	Kind() string
}

// Faulter is a server nfslab can break (ServerFault): the netns server
// has every fault, the container server the stop fault.
type Faulter interface {
	Fault(ctx context.Context, f ServerFault, on bool, t FaultTarget) error
}

var (
	_ Faulter = (*NetnsServer)(nil)
	_ Faulter = (*ContainerServer)(nil)
)

// Server kinds.
const (
	KindNetns    = "netns"
	KindExternal = "external"
)

// Endpoint is where a started server serves.
type Endpoint struct {
	Addr   netip.Addr `json:"addr"`
	Port   int        `json:"port"`
	Export string     `json:"export"`
	// ClientAddr is the address the client side uses to reach Addr, when
	// the server knows it (the host end of the netns veth).
	ClientAddr netip.Addr `json:"client_addr,omitzero"`
}

// Source is the mount source "ADDR:/EXPORT" ("[v6]:/EXPORT").
func (e Endpoint) Source() string {
	if e.Addr.Is6() {
		return "[" + e.Addr.String() + "]:" + e.Export
	}
	return e.Addr.String() + ":" + e.Export
}

// MountOptions returns the nfslab mount options for this endpoint: the
// default soft mount on the endpoint's port.
func (e Endpoint) MountOptions() string {
	port := e.Port
	if port == 0 {
		port = 2049
	}
	return "vers=4.2,proto=tcp,port=" + strconv.Itoa(port) + ",soft,timeo=10,retrans=2"
}

// Errors callers can test for.
var (
	// ErrNoKernelNFSD: this kernel cannot serve NFS (no nfsd).
	ErrNoKernelNFSD = errors.New("kernel has no NFS server (nfsd)")
	// ErrLocalIO: NFS LOCALIO would let the client bypass the network.
	ErrLocalIO = errors.New("NFS LOCALIO is enabled")
	// ErrUnreachable: the server does not accept TCP connections.
	ErrUnreachable = errors.New("NFS server unreachable")
	// ErrInvalid: bad configuration (mapped to a usage error).
	ErrInvalid = errors.New("invalid NFS server configuration")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Host is every side effect the servers have. NewHost returns the real one.
type Host interface {
	// Run runs a command (argument list, LC_ALL=C) and returns its stdout;
	// errors are *cmdrun.Error with the output.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
	// LookPath finds an executable.
	LookPath(name string) (string, error)
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte) error
	MkdirAll(path string) error
	Chmod(path string, mode os.FileMode) error
	// CreateFile creates an empty file if it does not exist.
	CreateFile(path string) error
	RemoveAll(path string) error
	Exists(path string) bool
	// Signal sends sig to pid.
	Signal(pid int, sig syscall.Signal) error
	// DialTCP connects to addr within ctx and closes the connection.
	DialTCP(ctx context.Context, addr netip.AddrPort) error
	// LocalAddrs lists the addresses assigned to this namespace's interfaces.
	LocalAddrs() ([]netip.Addr, error)
}

// dialCheck connects to ep with a bounded TCP connect.
func dialCheck(ctx context.Context, h Host, ap netip.AddrPort) error {
	if err := h.DialTCP(ctx, ap); err != nil {
		return fmt.Errorf("%w: connecting to %s: %w", ErrUnreachable, ap, err)
	}
	return nil
}

// netDial is the DialTCP of the real host.
func netDial(ctx context.Context, ap netip.AddrPort) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ap.String())
	if err != nil {
		return err
	}
	return c.Close()
}
