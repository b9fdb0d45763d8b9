package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of the netns server.
const (
	DefaultNetns    = "nfslab-nfsd"
	DefaultHostVeth = "nfslab-nfs0" // in the client's (host's) namespace
	DefaultPeerVeth = "nfslab-nfs1" // in the server's namespace
	DefaultStateDir = "/run/nfslab/nfsd"
	DefaultExport   = "/run/nfslab/export"
	DefaultThreads  = 8
	DefaultFSID     = 2049
	NFSPort         = 2049
)

// DefaultSubnet is the private /30 of the veth pair: .1 is the host end
// (the NFS client), .2 the server.
var DefaultSubnet = netip.MustParsePrefix("10.213.0.0/30")

// NetnsConfig configures the netns server. The zero value plus
// WithDefaults is nfslab's standard lab server.
type NetnsConfig struct {
	// Name is the network namespace (/run/netns/NAME) knfsd runs in.
	Name string `json:"name"`
	// HostNetns is the namespace of the client end of the veth; "" is the
	// caller's own (the normal case). Tests use a namespace they made.
	HostNetns string `json:"host_netns,omitempty"`
	// HostVeth and PeerVeth name the veth ends (at most 15 bytes).
	HostVeth string `json:"host_veth"`
	PeerVeth string `json:"peer_veth"`
	// Subnet is the veth pair's /30 (IPv4).
	Subnet netip.Prefix `json:"subnet"`
	// ExportDir is the exported directory; it is created and, when it lies
	// below DefaultExport, removed by Stop.
	ExportDir string `json:"export_dir"`
	// StateDir holds the server's persistent mount namespace file.
	StateDir string `json:"state_dir"`
	// Threads is the number of knfsd threads.
	Threads int `json:"threads"`
	// FSID is the export's fsid= (needed for tmpfs and other device-less
	// filesystems, harmless elsewhere).
	FSID int `json:"fsid"`
	// GraceTime and LeaseTime shorten NFSv4's grace period: without client
	// tracking in a namespace, OPENs wait for the whole grace period after
	// start (90 s by default).
	GraceTime time.Duration `json:"grace_time"`
	LeaseTime time.Duration `json:"lease_time"`
	// DisableLocalIO turns NFS LOCALIO off instead of refusing to start.
	DisableLocalIO bool `json:"disable_localio"`
	// AllowLocalIO starts the server with LOCALIO on: a client mounting it
	// from this kernel then reads and writes the export's files directly,
	// around the veth, so packet faults do not reach its I/O. Only for
	// experiments that show that (nfs-localio); nfslab refuses otherwise.
	AllowLocalIO bool `json:"allow_localio,omitempty"`
	// ExportSize, when set, bounds the export: a tmpfs of this many bytes
	// (source "nfslab-export") is mounted on ExportDir, which must then be
	// nfslab's own (below DefaultExport). FaultFill fills it.
	ExportSize int64 `json:"export_size,omitempty"`
	// ExportFS is the size-bounded export's filesystem: ExportTmpfs ("",
	// the default) or ExportExt4 (on a loop device through the dm device
	// nfslab-NAME-export, for FaultEIO).
	ExportFS string `json:"export_fs,omitempty"`
}

// WithDefaults fills unset fields. Names derived from a non-default Name
// are hashed so that they fit the 15-byte interface name limit.
func (c NetnsConfig) WithDefaults() NetnsConfig {
	if c.Name == "" {
		c.Name = DefaultNetns
	}
	if c.HostVeth == "" || c.PeerVeth == "" {
		if c.Name == DefaultNetns {
			c.HostVeth, c.PeerVeth = DefaultHostVeth, DefaultPeerVeth
		} else {
			h := fnv.New32a()
			h.Write([]byte(c.Name))
			base := fmt.Sprintf("nl%08x", h.Sum32())
			c.HostVeth, c.PeerVeth = base+"h", base+"p"
		}
	}
	if !c.Subnet.IsValid() {
		c.Subnet = DefaultSubnet
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(DefaultStateDir, c.Name)
	}
	if c.ExportDir == "" {
		c.ExportDir = filepath.Join(DefaultExport, c.Name)
	}
	if c.Threads == 0 {
		c.Threads = DefaultThreads
	}
	if c.FSID == 0 {
		c.FSID = DefaultFSID
	}
	if c.GraceTime == 0 {
		c.GraceTime = 10 * time.Second
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = 15 * time.Second
	}
	return c
}

// Validate names the bad value.
func (c NetnsConfig) Validate() error {
	if c.AllowLocalIO && c.DisableLocalIO {
		return invalid("allow and disable LOCALIO are both set")
	}
	for _, n := range []struct{ what, v string }{{"netns name", c.Name}, {"host veth", c.HostVeth}, {"peer veth", c.PeerVeth}} {
		if n.v == "" || strings.ContainsAny(n.v, "/ \t\n") || n.v == "." || n.v == ".." {
			return invalid("%s %q is empty or has a slash or space", n.what, n.v)
		}
	}
	if len(c.HostVeth) > 15 || len(c.PeerVeth) > 15 {
		return invalid("veth names %q and %q must be at most 15 bytes", c.HostVeth, c.PeerVeth)
	}
	if c.HostVeth == c.PeerVeth {
		return invalid("host and peer veth are both %q", c.HostVeth)
	}
	if !c.Subnet.Addr().Is4() || c.Subnet.Bits() != 30 {
		return invalid("subnet %s must be an IPv4 /30 (host end .1, server .2)", c.Subnet)
	}
	if c.Subnet.Masked() != c.Subnet {
		return invalid("subnet %s is not a network address (did you mean %s?)", c.Subnet, c.Subnet.Masked())
	}
	for _, d := range []struct{ what, v string }{{"export dir", c.ExportDir}, {"state dir", c.StateDir}} {
		if !filepath.IsAbs(d.v) || filepath.Clean(d.v) == "/" {
			return invalid("%s %q must be an absolute path other than /", d.what, d.v)
		}
	}
	if c.ExportSize != 0 && (c.ExportSize < 1<<20 || !strings.HasPrefix(filepath.Clean(c.ExportDir), DefaultExport+"/")) {
		return invalid("export size %d needs at least 1 MiB and an export dir below %s (got %q)", c.ExportSize, DefaultExport, c.ExportDir)
	}
	if c.ExportFS != "" && !slices.Contains(ExportFSes, c.ExportFS) {
		return invalid("export filesystem %q (want one of %s)", c.ExportFS, strings.Join(ExportFSes, ", "))
	}
	if c.ExportFS == ExportExt4 && c.ExportSize < 16<<20 {
		return invalid("export filesystem ext4 needs an export size of at least 16 MiB (got %d)", c.ExportSize)
	}
	if c.Threads < 1 || c.Threads > 256 {
		return invalid("threads %d must be 1..256", c.Threads)
	}
	if c.GraceTime < 10*time.Second || c.LeaseTime < 10*time.Second {
		return invalid("grace time %s and lease time %s must be at least 10s (the kernel's minimum)", c.GraceTime, c.LeaseTime)
	}
	return nil
}

// HostAddr is the client end of the veth (.1), ServerAddr the server (.2).
func (c NetnsConfig) HostAddr() netip.Addr   { return c.Subnet.Addr().Next() }
func (c NetnsConfig) ServerAddr() netip.Addr { return c.Subnet.Addr().Next().Next() }

func (c NetnsConfig) mntnsDir() string  { return filepath.Join(c.StateDir, "ns") }
func (c NetnsConfig) mntnsFile() string { return filepath.Join(c.mntnsDir(), "mnt") }
func (c NetnsConfig) netnsFile() string { return filepath.Join("/run/netns", c.Name) }

// exportOptions are the export's options: a lab export, writable by root.
func (c NetnsConfig) exportOptions() string {
	return "rw,sync,no_subtree_check,no_root_squash,insecure,fsid=" + strconv.Itoa(c.FSID)
}

// NetnsServer is knfsd in a network namespace of nfslab's own.
type NetnsServer struct {
	cfg  NetnsConfig
	host Host
}

// NewNetns returns a netns server; cfg gets its defaults and is validated.
func NewNetns(cfg NetnsConfig, h Host) (*NetnsServer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &NetnsServer{cfg: cfg, host: h}, nil
}

func (s *NetnsServer) Kind() string        { return KindNetns }
func (s *NetnsServer) Config() NetnsConfig { return s.cfg }

// ip runs ip(8), in HostNetns when set.
func (s *NetnsServer) ip(ctx context.Context, args ...string) error {
	if s.cfg.HostNetns != "" {
		args = append([]string{"-n", s.cfg.HostNetns}, args...)
	}
	_, err := s.host.Run(ctx, "ip", args...)
	return err
}

// inServer runs a command inside the server's network and mount namespace.
// Equivalent to: `nsenter --mount=STATE/ns/mnt --net=/run/netns/NAME CMD...`.
func (s *NetnsServer) inServer(ctx context.Context, name string, args ...string) ([]byte, error) {
	full := append([]string{"--mount=" + s.cfg.mntnsFile(), "--net=" + s.cfg.netnsFile(), name}, args...)
	return s.host.Run(ctx, "nsenter", full...)
}

// CheckKernel returns ErrNoKernelNFSD, with what to do, when this kernel
// cannot run knfsd, after trying `modprobe nfsd` once. It also checks the
// nfs-utils and util-linux tools.
func (s *NetnsServer) CheckKernel(ctx context.Context) error {
	if !hasNFSD(s.host) {
		_, merr := s.host.Run(ctx, "modprobe", "nfsd")
		if !hasNFSD(s.host) {
			return fmt.Errorf("%w: /proc/filesystems lists no nfsd and /sys/module/nfsd is missing; `modprobe nfsd` failed (%v). "+
				"Run the NFS experiment in the lab VM (nfslab vm run: a Debian guest with nfs-kernel-server), or boot a kernel with CONFIG_NFSD", ErrNoKernelNFSD, merr)
		}
	}
	var missing []string
	for _, t := range []string{"rpc.nfsd", "rpc.mountd", "exportfs", "nsenter", "unshare", "ip", "mount", "umount"} {
		if _, err := s.host.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing tools %s (apt-get install nfs-kernel-server util-linux iproute2)", ErrNoKernelNFSD, strings.Join(missing, ", "))
	}
	return nil
}

func hasNFSD(h Host) bool {
	b, err := h.ReadFile("/proc/filesystems")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[len(f)-1] == "nfsd" {
				return true
			}
		}
	}
	// Not /proc/fs/nfsd: procfs creates that mount point on every kernel,
	// with or without nfsd.
	return h.Exists("/sys/module/nfsd")
}

// Start creates the namespace, the veth pair, the mount namespace with the
// namespace's nfsd filesystem, starts rpc.mountd and knfsd (NFSv4 only),
// exports ExportDir to the host end, and checks that port 2049 answers.
// Leftovers of an earlier run are removed first. On failure everything
// created is removed again.
func (s *NetnsServer) Start(ctx context.Context) (Endpoint, error) {
	c := s.cfg
	if err := s.CheckKernel(ctx); err != nil {
		return Endpoint{}, err
	}
	// The server is local: LOCALIO would short-circuit the veth.
	if !c.AllowLocalIO {
		if err := RequireNoLocalIO(s.host, c.DisableLocalIO); err != nil {
			return Endpoint{}, err
		}
	}
	if err := s.Stop(ctx); err != nil {
		return Endpoint{}, fmt.Errorf("removing leftovers of an earlier netns server: %w", err)
	}
	ep := Endpoint{Addr: c.ServerAddr(), Port: NFSPort, Export: c.ExportDir, ClientAddr: c.HostAddr()}
	if err := s.start(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if serr := s.Stop(cctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up after failed start: %w", serr))
		}
		return Endpoint{}, err
	}
	return ep, nil
}

// SetupNetwork creates the namespace and the veth pair with addresses.
// Equivalent to:
//
//	ip netns add NAME
//	ip link add HOSTVETH type veth peer name PEERVETH netns NAME
//	ip addr add 10.213.0.1/30 dev HOSTVETH; ip link set HOSTVETH up
//	ip -n NAME addr add 10.213.0.2/30 dev PEERVETH; ip -n NAME link set PEERVETH up; ip -n NAME link set lo up
func (s *NetnsServer) SetupNetwork(ctx context.Context) error {
	c := s.cfg
	bits := strconv.Itoa(c.Subnet.Bits())
	steps := []struct {
		what string
		run  func() error
	}{
		{"creating network namespace " + c.Name, func() error { _, err := s.host.Run(ctx, "ip", "netns", "add", c.Name); return err }},
		{"creating veth " + c.HostVeth + "/" + c.PeerVeth, func() error {
			return s.ip(ctx, "link", "add", c.HostVeth, "type", "veth", "peer", "name", c.PeerVeth, "netns", c.Name)
		}},
		{"addressing " + c.HostVeth, func() error { return s.ip(ctx, "addr", "add", c.HostAddr().String()+"/"+bits, "dev", c.HostVeth) }},
		{"bringing up " + c.HostVeth, func() error { return s.ip(ctx, "link", "set", c.HostVeth, "up") }},
		{"addressing " + c.PeerVeth, func() error {
			_, err := s.host.Run(ctx, "ip", "-n", c.Name, "addr", "add", c.ServerAddr().String()+"/"+bits, "dev", c.PeerVeth)
			return err
		}},
		{"bringing up " + c.PeerVeth, func() error {
			_, err := s.host.Run(ctx, "ip", "-n", c.Name, "link", "set", c.PeerVeth, "up")
			return err
		}},
		{"bringing up lo in " + c.Name, func() error { _, err := s.host.Run(ctx, "ip", "-n", c.Name, "link", "set", "lo", "up"); return err }},
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

func (s *NetnsServer) start(ctx context.Context) error {
	c := s.cfg
	if err := s.SetupNetwork(ctx); err != nil {
		return err
	}
	for _, d := range []string{c.ExportDir, c.mntnsDir()} {
		if err := s.host.MkdirAll(d); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	switch {
	case c.ExportSize > 0 && c.ExportFS == ExportExt4:
		if err := s.startBlockExport(ctx); err != nil {
			return err
		}
	case c.ExportSize > 0:
		// In the caller's mount namespace, before the server's is made
		// from it: both see the same tmpfs, so FaultFill can fill it
		// from here.
		if _, err := s.host.Run(ctx, "mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(c.ExportSize, 10)+",mode=0755", exportFSSource, c.ExportDir); err != nil {
			return fmt.Errorf("mounting a %d-byte tmpfs on %s: %w", c.ExportSize, c.ExportDir, err)
		}
	}
	type step struct {
		what string
		name string
		args []string
		in   bool // inside the server's namespaces
	}
	steps := []step{
		// A namespace file may only be bind-mounted on a private mount.
		{"making " + c.mntnsDir() + " a private mount", "mount", []string{"--bind", c.mntnsDir(), c.mntnsDir()}, false},
		{"making " + c.mntnsDir() + " a private mount", "mount", []string{"--make-private", c.mntnsDir()}, false},
		{"creating the server's mount namespace", "unshare", []string{"--mount=" + c.mntnsFile(), "--propagation", "private", "true"}, false},
		// Mounted from inside the network namespace, this nfsd filesystem
		// is that namespace's knfsd instance.
		{"mounting the namespace's nfsd filesystem", "mount", []string{"-t", "nfsd", "nfsd", "/proc/fs/nfsd"}, true},
		// mountd answers the kernel's export upcalls even for NFSv4; with
		// -N 2 -N 3 it opens no MOUNT listeners, so no rpcbind is needed.
		// It daemonizes; Stop finds it with `ip netns pids`.
		{"starting rpc.mountd", "rpc.mountd", []string{"-N", "2", "-N", "3"}, true},
		{"exporting " + c.ExportDir, "exportfs", c.exportArgs(), true},
		{"starting knfsd", "rpc.nfsd", c.nfsdArgs(), true},
	}
	for _, st := range steps {
		if st.name == "unshare" {
			// unshare --mount=FILE bind-mounts onto an existing file only.
			if err := s.host.CreateFile(c.mntnsFile()); err != nil {
				return fmt.Errorf("creating %s: %w", c.mntnsFile(), err)
			}
		}
		var err error
		if st.in {
			_, err = s.inServer(ctx, st.name, st.args...)
		} else {
			_, err = s.host.Run(ctx, st.name, st.args...)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	threads, err := s.threads(ctx)
	if err != nil {
		return err
	}
	if threads == 0 {
		return fmt.Errorf("starting knfsd in %s: /proc/fs/nfsd/threads is 0 after rpc.nfsd", c.Name)
	}
	ap := netip.AddrPortFrom(c.ServerAddr(), NFSPort)
	if c.HostNetns != "" {
		return nil // the host end is not in our namespace; the caller checks
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return dialCheck(dctx, s.host, ap)
}

// exportArgs are exportfs's arguments adding the export (Start and
// Export): `exportfs -i -o OPTIONS HOSTADDR:EXPORTDIR`.
func (c NetnsConfig) exportArgs() []string {
	return []string{"-i", "-o", c.exportOptions(), c.exportClient()}
}

// exportClient is the export's "CLIENT:DIR" as exportfs names it.
func (c NetnsConfig) exportClient() string { return c.HostAddr().String() + ":" + c.ExportDir }

// nfsdArgs are rpc.nfsd's arguments starting knfsd (Start and
// StartThreads): NFSv4 over TCP only, short grace and lease.
func (c NetnsConfig) nfsdArgs() []string {
	return []string{"-N", "3", "-V", "4", "--no-udp",
		"-G", secs(c.GraceTime), "-L", secs(c.LeaseTime),
		"-H", c.ServerAddr().String(), "-p", strconv.Itoa(NFSPort), strconv.Itoa(c.Threads)}
}

func secs(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

func (s *NetnsServer) threads(ctx context.Context) (int, error) {
	out, err := s.inServer(ctx, "cat", "/proc/fs/nfsd/threads")
	if err != nil {
		return 0, fmt.Errorf("reading knfsd threads in %s: %w", s.cfg.Name, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("reading knfsd threads in %s: %q is not a number", s.cfg.Name, strings.TrimSpace(string(out)))
	}
	return n, nil
}

// notFound reports whether a cleanup step failed only because its object
// is already gone.
func notFound(err error) bool {
	if err == nil {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"cannot find device", "no such file", "does not exist", "not mounted", "no mount point",
		"could not find", "cannot open network namespace", "not found"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Stop removes everything Start created, in reverse order, treating "not
// found" as done: knfsd threads (`rpc.nfsd 0`), the export, the processes
// in the namespace (rpc.mountd), the nfsd and mount-namespace mounts, the
// size-bounded export's mount, its dm and loop devices (ext4), the
// veth, the namespace, the state directory and, when it is nfslab's own,
// the export directory. The client must have unmounted first: a mount of
// a stopped server hangs until its soft timeout.
func (s *NetnsServer) Stop(ctx context.Context) error {
	c := s.cfg
	var errs []error
	keep := func(what string, err error) {
		if !notFound(err) {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	nsUp := s.host.Exists(c.netnsFile())
	if nsUp && s.host.Exists(c.mntnsFile()) {
		_, err := s.inServer(ctx, "rpc.nfsd", "0")
		keep("stopping knfsd threads", err)
		_, err = s.inServer(ctx, "exportfs", "-u", c.exportClient())
		keep("removing export", err)
		keep("removing the placeholder export", s.removePlaceholder(ctx))
	}
	if nsUp {
		keep("ending processes in "+c.Name, s.killNamespaceProcs(ctx))
	}
	if s.host.Exists(c.mntnsFile()) {
		_, err := s.host.Run(ctx, "umount", c.mntnsFile())
		keep("unmounting the server's mount namespace", err)
	}
	if s.host.Exists(c.mntnsDir()) {
		_, err := s.host.Run(ctx, "umount", c.mntnsDir())
		keep("unmounting "+c.mntnsDir(), err)
	}
	if s.exportMounted() {
		_, err := s.host.Run(ctx, "umount", c.ExportDir)
		keep("unmounting the size-bounded export "+c.ExportDir, err)
	}
	keep("removing the export's block devices", s.stopBlockExport(ctx))
	keep("removing veth "+c.HostVeth, s.ip(ctx, "link", "del", c.HostVeth))
	if nsUp {
		_, err := s.host.Run(ctx, "ip", "netns", "del", c.Name)
		keep("removing network namespace "+c.Name, err)
	}
	keep("removing "+c.StateDir, s.host.RemoveAll(c.StateDir))
	if strings.HasPrefix(filepath.Clean(c.ExportDir), DefaultExport+"/") {
		keep("removing "+c.ExportDir, s.host.RemoveAll(c.ExportDir))
	}
	return errors.Join(errs...)
}

// killNamespaceProcs ends the processes inside nfslab's namespace (only
// nfslab starts processes there: rpc.mountd), by PID: SIGTERM, a bounded
// wait, then SIGKILL.
func (s *NetnsServer) killNamespaceProcs(ctx context.Context) error {
	pids, err := s.namespacePIDs(ctx)
	if err != nil || len(pids) == 0 {
		return err
	}
	for _, pid := range pids {
		if err := s.host.Signal(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signalling pid %d: %w", pid, err)
		}
	}
	for i := 0; i < 30; i++ {
		left := 0
		for _, pid := range pids {
			if s.host.Exists("/proc/" + strconv.Itoa(pid)) {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, pid := range pids {
		if err := s.host.Signal(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("killing pid %d: %w", pid, err)
		}
	}
	return nil
}

func (s *NetnsServer) namespacePIDs(ctx context.Context) ([]int, error) {
	out, err := s.host.Run(ctx, "ip", "netns", "pids", s.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", s.cfg.Name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 {
			return nil, fmt.Errorf("listing processes in %s: bad pid %q", s.cfg.Name, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// NetnsStatus is what Status finds.
type NetnsStatus struct {
	Netns    bool     `json:"netns"`    // /run/netns/NAME exists
	Veth     bool     `json:"veth"`     // the host end exists
	Threads  int      `json:"threads"`  // knfsd threads in the namespace
	Exports  []string `json:"exports"`  // /proc/fs/nfsd/exports of the namespace
	PIDs     []int    `json:"pids"`     // processes in the namespace (rpc.mountd)
	Endpoint Endpoint `json:"endpoint"` // where it serves when running
	Running  bool     `json:"running"`  // threads > 0
	Problems []string `json:"problems,omitempty"`
}

// Status reports the server's state without changing it.
func (s *NetnsServer) Status(ctx context.Context) NetnsStatus {
	c := s.cfg
	st := NetnsStatus{Endpoint: Endpoint{Addr: c.ServerAddr(), Port: NFSPort, Export: c.ExportDir, ClientAddr: c.HostAddr()}}
	st.Netns = s.host.Exists(c.netnsFile())
	st.Veth = s.ip(ctx, "link", "show", c.HostVeth) == nil
	if !st.Netns {
		return st
	}
	var err error
	if st.PIDs, err = s.namespacePIDs(ctx); err != nil {
		st.Problems = append(st.Problems, err.Error())
	}
	if !s.host.Exists(c.mntnsFile()) {
		st.Problems = append(st.Problems, "mount namespace file "+c.mntnsFile()+" is missing")
		return st
	}
	if st.Threads, err = s.threads(ctx); err != nil {
		st.Problems = append(st.Problems, err.Error())
	}
	// The export table, not /proc/fs/nfsd/exports: that file is knfsd's
	// export cache, which mountd fills on a client's first access, so it
	// is empty right after Start (seen in the lab VM). exportfs -v reads
	// the table (etab) that mountd answers from; /var/lib/nfs is shared
	// with other servers of the machine, so keep only this ExportDir.
	if out, err := s.inServer(ctx, "exportfs", "-v"); err != nil {
		st.Problems = append(st.Problems, fmt.Sprintf("listing exports in %s: %v", c.Name, err))
	} else {
		st.Exports = parseExportfs(string(out), c.ExportDir)
	}
	st.Running = st.Threads > 0
	return st
}

// parseExportfs turns `exportfs -v` output into "DIR CLIENT(OPTIONS)"
// entries for dir. exportfs puts a long path on a line of its own and the
// client on the next one, so it is read as a stream of fields: a path
// (starts with /) followed by one or more CLIENT(OPTIONS) fields.
func parseExportfs(out, dir string) []string {
	var entries []string
	path := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "/") {
			path = f
			continue
		}
		if path != "" && filepath.Clean(path) == filepath.Clean(dir) {
			entries = append(entries, path+" "+f)
		}
	}
	return entries
}
